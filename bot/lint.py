"""`migsafe lint`: the SQL rules on plain SQL files (or standard input).

The SQL is data: it is read and parsed, never run (no Alembic, no child process, no
sandbox). Each file is judged on its own, as one migration run in one session: tables it
does not create count as existing, and its SET lock_timeout / statement_timeout hold for
its later statements. Reading the files and the policy is the only I/O; `lint_sources`
is pure.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bot.analysis.catalog import RULES
from bot.analysis.engine import AnalysisOptions, analyze_project, analyze_upgrade
from bot.analysis.migration_model import DryRun, MigrationFile, suppressions_in
from bot.analysis.model import Finding, Statement
from bot.analysis.options import PgVersion, parse_pg_version
from bot.analysis.parse import parse_statements, split_sql_located, sql_comments
from bot.analysis.rule import ProjectFacts, Stage
from bot.analysis.suppress import apply_suppressions
from bot.errors import UserError
from bot.policy.config import POLICY_PATH, Policy, load_policy
from bot.policy.environments import apply_policy, timeout_limits_ms
from bot.result import CheckResult, Judged, NewRevisions, PolicyOrigin
from bot.scope import DEFAULTS_TEXT, choose_environment

STDIN = "-"
STDIN_NAME = "<stdin>"  # how findings name standard input
MAX_SQL_BYTES = 20 * 1024 * 1024
NOT_RUN = "plain SQL is never run (migsafe lint)"


@dataclass(frozen=True)
class SqlSource:
    """One input: its name as findings show it, and its text."""

    name: str
    text: str


@dataclass
class LintOptions:
    files: Sequence[str]  # paths as given; "-" reads standard input
    environment: str | None = None  # --env
    config: Path | None = None  # --config; default: found from the current directory up
    pg_version: PgVersion | None = None  # --pg-version; else the policy's postgres_version
    cwd: Path | None = None  # where the policy search starts (default: the current directory)


def run_lint(options: LintOptions) -> CheckResult:
    """Read the inputs and the policy, then judge (UserError on bad input)."""
    if not options.files:
        raise UserError("give at least one SQL file, or - for standard input")
    sources = [_read(name) for name in options.files]
    policy, origin = find_policy(options.cwd or Path.cwd(), options.config)
    return lint_sources(
        sources, policy, origin, environment=options.environment, pg_version=options.pg_version
    )


def lint_sources(
    sources: Sequence[SqlSource],
    policy: Policy,
    origin: PolicyOrigin,
    *,
    environment: str | None = None,
    pg_version: PgVersion | None = None,
) -> CheckResult:
    """The findings of the SQL rules on `sources`, as a report renders them (pure).
    `pg_version`: `--pg-version`; else the policy's `postgres_version`; else unknown."""
    env = choose_environment(policy, origin, flag=environment, base=None)
    lock_ms, statement_ms = timeout_limits_ms(policy)
    if pg_version is None and policy.postgres_version is not None:
        pg_version = parse_pg_version(policy.postgres_version)
    options = AnalysisOptions(
        lock_timeout_max_ms=lock_ms, statement_timeout_max_ms=statement_ms, pg_version=pg_version
    )
    files = {source.name: _as_file(source) for source in sources}
    findings: list[Finding] = []
    statements: list[Statement] = []
    for source in sources:
        parsed = _statements(source, first_index=len(statements))
        statements += parsed
        found = analyze_upgrade(parsed, options)
        # The file stands in as a new revision, its statements as the dry-run's upgrade.
        facts = ProjectFacts(files=[files[source.name]], dry_run=DryRun(upgrade=parsed))
        found += analyze_project(Stage.STATIC, replace(facts, findings=found))
        found += analyze_project(Stage.META, replace(facts, findings=found))
        findings += _apply_policy(found, policy, env.name)
    marked = apply_suppressions(findings, files, known_rules=set(RULES))
    problems = _apply_policy(marked[len(findings) :], policy, env.name)
    judged = [_no_revision(f) for f in marked[: len(findings)] + problems]
    judged.sort(key=lambda f: (f.path or "", f.line or 0, -f.severity.rank, f.rule))
    count = len(statements)
    names = ", ".join(source.name for source in sources)
    text = f"{count} statement{'s' if count != 1 else ''} of plain SQL in {names}, all judged"
    roles: list[str] = []
    for finding in judged:
        roles += [role for role in finding.approval_roles if role not in roles]
    return CheckResult(
        project=names,
        environment=env.name,
        revisions=[],
        base=(),
        heads=(),
        findings=judged,
        dry_run=DryRun(upgrade=statements),
        rules=RULES,
        approvals_required=roles,
        sandbox_skipped=NOT_RUN,
        judged=Judged(origin, env, NewRevisions("sql", 0, 0, text)),
        contacts=[(role, policy.team_for(role)) for role in policy.contacts],
        source="sql",
    )


def find_policy(start: Path, config: Path | None) -> tuple[Policy, PolicyOrigin]:
    """`--config`, else the first `.github/migsafe.yml` from `start` up to the repository
    root (the first folder holding `.git`), else the checklist's defaults. No git is run:
    the file is read as it is in the work tree."""
    known = set(RULES)
    if config is not None:
        if not config.is_file():
            raise UserError("policy file not found", path=str(config))
        policy = load_policy(config, known_rule_ids=known)
        return policy, PolicyOrigin(str(config), None, f"{config} (--config)")
    start = start.resolve()
    for directory in (start, *start.parents):
        path = directory / POLICY_PATH
        if path.is_file():
            shown = str(path.relative_to(start)) if directory == start else str(path)
            policy = load_policy(path, source=shown, known_rule_ids=known)
            return policy, PolicyOrigin(shown, None, shown)
        if (directory / ".git").exists():
            break
    return Policy.default(), PolicyOrigin(None, None, DEFAULTS_TEXT)


def _read(name: str) -> SqlSource:
    shown = STDIN_NAME if name == STDIN else name
    try:
        data = sys.stdin.buffer.read() if name == STDIN else Path(name).read_bytes()
    except FileNotFoundError:
        raise UserError("no such file", path=shown) from None
    except IsADirectoryError:
        raise UserError("is a directory, not an SQL file", path=shown) from None
    except OSError as error:
        raise UserError(f"cannot read it: {error.strerror or error}", path=shown) from None
    if len(data) > MAX_SQL_BYTES:
        raise UserError(f"larger than {MAX_SQL_BYTES} bytes", path=shown)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"not UTF-8 text (byte {error.start}: {data[error.start : error.start + 1]!r})",
            path=shown,
        ) from None
    if "\x00" in text:
        raise UserError("not SQL text (it holds NUL bytes)", path=shown)
    return SqlSource(shown, text)


def _statements(source: SqlSource, first_index: int) -> list[Statement]:
    located = split_sql_located(source.text)
    return parse_statements(
        Statement(sql, "upgrade", first_index + number, path=source.name, line=line)
        for number, (line, sql) in enumerate(located)
    )


def _as_file(source: SqlSource) -> MigrationFile:
    """The file as the suppression and documentation checks read a migration file: its
    `--` comments in place of Python's `#` ones. Every input is new (judged)."""
    comments = sql_comments(source.text)
    lines = source.text.splitlines()
    only = {n for n in comments if lines[n - 1].lstrip().startswith("--")}
    return MigrationFile(
        path=source.name,
        revision="",
        down_revisions=(),
        comments=comments,
        comment_only_lines=only,
        suppressions=suppressions_in(comments),
        new=True,
    )


def _no_revision(finding: Finding) -> Finding:
    """Plain SQL has no revisions: the stand-in file's empty id is no id."""
    return replace(finding, revision=None) if finding.revision == "" else finding


def _apply_policy(findings: list[Finding], policy: Policy, environment: str) -> list[Finding]:
    return apply_policy(findings, policy, environment, RULES)
