"""One check of a repository's new Alembic revisions: the pipeline behind `migsafe check`.

Reading (project, revisions, git) and the dry-run child are the I/O here; the
analysis itself is pure and lives in `bot.analysis`. Over 400 lines: the pipeline's stages
in the order they run (policy, revisions, dry-run beside the sandbox, judging), each a
short function; the working copy, the sandbox's connection and the timeout reconciliation
live in their own modules.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.analysis import origins
from bot.analysis.batch import onto_batch_calls
from bot.analysis.catalog import RULES
from bot.analysis.engine import (
    AnalysisOptions,
    analyze_downgrade,
    analyze_project,
    analyze_upgrade,
)
from bot.analysis.evidence import one_per_operation
from bot.analysis.migration_model import DryRun, MigrationFile
from bot.analysis.model import Finding, Statement
from bot.analysis.options import PgVersion, parse_pg_version
from bot.analysis.parse import parse_statements
from bot.analysis.revision_graph import RevisionGraph
from bot.analysis.rule import ProjectFacts
from bot.analysis.rule import Stage as RuleStage
from bot.analysis.rules.sandbox import (
    SANDBOX_FAILED,
)
from bot.analysis.rules.static import static_findings
from bot.analysis.sandbox_model import SandboxReport, Step
from bot.analysis.suppress import apply_suppressions
from bot.analysis.timeouts_in_effect import reconcile_timeouts
from bot.errors import UserError
from bot.migrations.gitref import scan_files_at_ref
from bot.migrations.project import AlembicProject, find_project
from bot.migrations.scan import scan_project
from bot.policy.config import Policy
from bot.policy.environments import apply_policy, check_environment, timeout_limits_ms
from bot.progress import Stage
from bot.result import CheckResult, EnvironmentChoice, Judged, NewRevisions, PolicyOrigin
from bot.sandbox.child import ContainedChild
from bot.sandbox.connect import connected_server
from bot.sandbox.database import SANDBOX_URL_VARIABLE, SandboxServer
from bot.sandbox.dryrun import dry_run
from bot.sandbox.environment import PreparedEnvironment, prepare_environment
from bot.sandbox.isolation import ContainmentUnavailable, containment_mode
from bot.sandbox.rls import RlsSettings
from bot.sandbox.run import SandboxOutcome, SandboxRequest, run_sandbox, sandbox_child
from bot.scope import (
    GitBase,
    NoGitBase,
    choose_environment,
    default_base,
    explicit_base,
    load_check_policy,
)
from bot.working_copy import folder_in_repository, named_as_user_gave, working_copy

# A password in a URL (scheme://user:password@) or a key=value string (password=...).

# Folders never copied into the dry-run's working copy: large, and never migration code.


@dataclass
class CheckOptions:
    path: Path = Path(".")
    base_ref: str | None = None  # git ref: new = revisions at head but not at this ref
    from_revision: str | None = None  # Alembic revision: new = everything after it
    head_ref: str | None = None  # git ref to check instead of the work tree
    all_revisions: bool = False  # every revision is new (--all)
    base_tree: Path | None = None  # new = revisions not in this tree (the service's base)
    policy: Policy | None = None  # already read (the service reads it from the base branch)
    environment: str | None = None
    environment_reason: str | None = None  # where a given `environment` came from; None: --env
    config: Path | None = None  # policy file; default: found from PATH up (bot.scope)
    sandbox: bool = True  # apply the change to a throwaway PostgreSQL
    database_url: str | None = None  # sandbox server; default MIGSAFE_SANDBOX_URL / embedded
    database_url_origin: str = "--database-url"  # how errors name where the URL came from
    dry_run_timeout_s: float = 120.0
    sandbox_timeout_s: float = 300.0
    progress: Stage | None = None  # told each stage as it starts (the CLI's stderr line)
    pg_version: PgVersion | None = None  # --pg-version; else the policy's, else the sandbox's


def run_check(options: CheckOptions) -> CheckResult:
    repo_root = options.path.resolve()
    if not repo_root.is_dir():
        raise UserError("not a directory", path=str(options.path))
    starts = [options.base_ref, options.from_revision, options.all_revisions]
    if sum(bool(start) for start in starts) > 1:
        raise UserError("--base, --from and --all each say which revisions are new: give one")
    stage = options.progress or _quiet
    stage("reading the project")
    git_base = _git_base(repo_root, options)
    policy, policy_origin = _policy(repo_root, options, git_base)
    environment = _environment(policy, policy_origin, options, git_base)
    with (
        working_copy(repo_root, options.head_ref) as work_root,
        named_as_user_gave(
            work_root, f"{options.head_ref}:" if options.head_ref else str(repo_root)
        ),
    ):
        project = find_project(
            work_root,
            alembic_ini=policy.alembic.config,
            script_location=policy.alembic.script_location,
            section=policy.alembic.ini_section,
            policy_source=policy.source,
        )
        files = scan_project(project)
        graph = RevisionGraph(files)
        new_ids, revisions_origin = _new_revisions(
            graph, project, repo_root, options, policy, policy_origin, git_base
        )
        for file in files:
            file.new = file.revision in new_ids
        base = graph.base_point(new_ids)
        heads = tuple(graph.heads())
        # Repository code runs only contained: where that cannot be had, neither the
        # dry-run nor the sandbox runs (nor the setup), and the static analysis still does.
        refused = _containment_refused() if new_ids else None
        # One environment for both children: the policy's setup virtualenv, if any.
        if new_ids and not refused and policy.sandbox.setup:
            stage("preparing the repository's virtualenv (sandbox.setup)")
        prepared = _prepared(work_root, policy, options) if new_ids and not refused else None
        # The dry-run runs alongside the sandbox run, which needs its SQL only near the end
        # (to tell undeclared changes): the two children's start-up costs overlap.
        with (
            _planned_sandbox(
                work_root, project, files, base, policy, options, refused, prepared
            ) as plan,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="migsafe-dry-run") as pool,
        ):
            if new_ids and not refused:
                stage(f"dry-run of {len(new_ids)} new revision(s)")
            pending = (
                pool.submit(_dry_run, work_root, project, base, heads, policy, options, prepared)
                if new_ids and not refused
                else None
            )
            sandbox, skipped = _sandbox(plan, lambda: _awaited(pending).upgrade, options)
            dry = _awaited(pending)
    stage("judging")
    # The dry-run's child says which file:line emitted each statement: only the lines the
    # parent's own scan can vouch for stay (suppressions and comments are read at them).
    by_path = {f.path: f for f in files}
    unvouched = origins.vouch_statements([*dry.upgrade, *dry.downgrade], by_path)
    ordered = [graph.by_id[rev] for rev in graph.upgrade_order()]
    pg_version = target_version(options.pg_version, policy, sandbox.report if sandbox else None)
    findings = _analyze(ordered, graph, dry, policy, environment.name, pg_version)
    findings = origins.with_notes(findings, unvouched)
    if refused:
        findings.append(_not_contained(refused))
    if sandbox is not None:
        observed = _apply_policy(sandbox.findings, policy, environment.name)
        lock_ms, statement_ms = timeout_limits_ms(policy)
        findings = reconcile_timeouts(findings, observed, sandbox.report, lock_ms, statement_ms)
    unvouched += sandbox.unvouched if sandbox is not None else []
    findings = _suppressed(findings, ordered, policy, environment.name, unvouched)
    findings = one_per_operation(findings)
    findings.sort(key=_finding_order)
    return CheckResult(
        project=str(options.path),
        environment=environment.name,
        revisions=ordered,
        base=base,
        heads=heads,
        findings=findings,
        dry_run=dry,
        rules=RULES,
        approvals_required=_approvals_required(findings),
        script_location=_relative(project.script_location, work_root),
        sandbox=sandbox.report if sandbox else None,
        sandbox_skipped=skipped,
        judged=Judged(policy_origin, environment, revisions_origin),
        contacts=[(role, policy.team_for(role)) for role in policy.contacts],
        folder_in_repository=folder_in_repository(repo_root),
    )


def _suppressed(
    findings: list[Finding],
    ordered: list[MigrationFile],
    policy: Policy,
    environment: str,
    unvouched: list[origins.Refused],
) -> list[Finding]:
    """Suppressions marked (not at lines no one vouched for), and the policy applied to the
    findings about malformed suppressions (only those: the others already had it, and some
    were changed since)."""
    new_files = {f.path: f for f in ordered if f.new}
    marked = apply_suppressions(findings, new_files, set(RULES), origins.unsuppressible(unvouched))
    problems = marked[len(findings) :]
    return marked[: len(findings)] + _apply_policy(problems, policy, environment)


def _git_base(repo_root: Path, options: CheckOptions) -> GitBase | NoGitBase | None:
    """`--base`; else, when nothing else says which revisions are new, the merge-base with
    the default branch (or why there is none); None when --from / --all / a base tree say."""
    if options.base_ref:
        return explicit_base(repo_root, options.base_ref)
    if options.from_revision or options.all_revisions or options.base_tree is not None:
        return None
    return default_base(repo_root, options.head_ref)


def _policy(
    repo_root: Path, options: CheckOptions, git_base: GitBase | NoGitBase | None
) -> tuple[Policy, PolicyOrigin]:
    if options.policy is not None:
        return options.policy, PolicyOrigin(None, None, "given to the check by its caller")
    return load_check_policy(repo_root, options.config, git_base, set(RULES))


def _environment(
    policy: Policy,
    policy_origin: PolicyOrigin,
    options: CheckOptions,
    git_base: GitBase | NoGitBase | None,
) -> EnvironmentChoice:
    if options.environment is not None and options.environment_reason is not None:
        name = check_environment(options.environment)
        return EnvironmentChoice(name, "caller", options.environment_reason)
    return choose_environment(policy, policy_origin, flag=options.environment, base=git_base)


def _new_revisions(
    graph: RevisionGraph,
    project: AlembicProject,
    repo_root: Path,
    options: CheckOptions,
    policy: Policy,
    policy_origin: PolicyOrigin,
    git_base: GitBase | NoGitBase | None,
) -> tuple[set[str], NewRevisions]:
    """The revisions the rules judge, and against what: --all, --from, --base, the service's
    base tree, the policy's `alembic.base_revision`, the merge-base with the default branch,
    else (no git base) the latest revision of each head."""
    new: set[str]
    total = len(graph.by_id)
    if options.all_revisions:
        new = set(graph.by_id)
        return new, NewRevisions("all", len(new), 0, f"{len(new)} new (--all); 0 existing")
    if options.from_revision:
        new = set(graph.new_since(graph.resolve(options.from_revision)))
        text = f"{len(new)} new after {options.from_revision} (--from); {total - len(new)} existing"
        return new, NewRevisions(
            "from", len(new), total - len(new), text, revision=options.from_revision
        )
    if isinstance(git_base, GitBase) and (options.base_ref or not policy.alembic.base_revision):
        at_base = scan_files_at_ref(repo_root, git_base.commit, project)
        new = set(graph.new_compared_to({f.revision for f in at_base}))
        existing = total - len(new)
        return new, NewRevisions(
            "base" if options.base_ref else "merge-base",
            len(new),
            existing,
            f"{len(new)} new since {git_base.describe()}; {existing} existing",
            git_ref=git_base.ref,
            commit=git_base.commit,
        )
    if options.base_tree is not None:
        base_project = find_project(
            options.base_tree,
            alembic_ini=policy.alembic.config,
            script_location=policy.alembic.script_location,
            section=policy.alembic.ini_section,
        )
        at_base = scan_project(base_project)
        new = set(graph.new_compared_to({f.revision for f in at_base}))
        existing = total - len(new)
        text = f"{len(new)} new against the base branch's tree; {existing} existing"
        return new, NewRevisions("base-tree", len(new), existing, text)
    if policy.alembic.base_revision:
        revision = policy.alembic.base_revision
        new = set(graph.new_since(graph.resolve(revision)))
        existing = total - len(new)
        where = f" in {policy_origin.path}" if policy_origin.path else ""
        text = (
            f"{len(new)} new after {revision} (alembic.base_revision{where}); {existing} existing"
        )
        return new, NewRevisions("base-revision", len(new), existing, text, revision=revision)
    new = set(graph.mark_new(graph.heads()))
    existing = total - len(new)
    why = git_base.reason if isinstance(git_base, NoGitBase) else "no base to compare with"
    text = (
        f"{len(new)} new: the latest revision of each head ({why}; --base, --from or --all"
        f" say otherwise); {existing} existing"
    )
    return new, NewRevisions("latest", len(new), existing, text)


def _awaited(pending: Future[DryRun] | None) -> DryRun:
    return pending.result() if pending is not None else DryRun()


def _prepared(work_root: Path, policy: Policy, options: CheckOptions) -> PreparedEnvironment | None:
    """The policy's setup virtualenv (built or reused) for both children; None without setup."""
    if not policy.sandbox.setup:
        return None
    return prepare_environment(work_root, policy.sandbox, timeout_s=options.sandbox_timeout_s)


def _dry_run(
    work_root: Path,
    project: AlembicProject,
    base: tuple[str, ...],
    heads: tuple[str, ...],
    policy: Policy,
    options: CheckOptions,
    prepared: PreparedEnvironment | None,
) -> DryRun:
    """Alembic offline, run as the sandbox runs it: same working directory, section, `-x`
    arguments, variables (`sandbox.env`) and interpreter (the setup virtualenv)."""
    dry = dry_run(
        work_root,
        ini_path=project.ini_path,
        script_location=project.script_location,
        versions_dirs=project.versions_dirs,
        base=base,
        heads=heads,
        timeout_s=options.dry_run_timeout_s,
        python=prepared.python if prepared else sys.executable,
        working_dir=project.run_dir,
        ini_section=project.section,
        x_arguments=policy.alembic.x_arguments,
        sandbox_env=policy.sandbox.env,
    )
    if dry.error and prepared and prepared.error:
        dry.error += (
            "\n(the policy's sandbox.setup failed, see sandbox-failed: the dry-run ran with "
            "migsafe's own interpreter)"
        )
    parse_statements([*dry.upgrade, *dry.downgrade])
    return dry


@dataclass
class _SandboxPlan:
    """The sandbox run as known before the dry-run: its child already starting, or why
    there is no run (skipped, or the setup commands failed)."""

    request: SandboxRequest | None = None
    child: ContainedChild | None = None
    skipped: str | None = None
    setup_failed: SandboxOutcome | None = None
    setup_protections: list[str] = field(default_factory=list)


@contextmanager
def _planned_sandbox(
    work_root: Path,
    project: AlembicProject,
    files: list[MigrationFile],
    base: tuple[str, ...],
    policy: Policy,
    options: CheckOptions,
    refused: str | None,
    prepared: PreparedEnvironment | None,
) -> Iterator[_SandboxPlan]:
    if refused:
        yield _SandboxPlan(skipped=f"not run: {refused}")
        return
    if not options.sandbox:
        yield _SandboxPlan(skipped="not requested (--no-sandbox)")
        return
    if not any(f.new for f in files):
        yield _SandboxPlan(skipped="no new revisions")
        return
    if _sandbox_url(options) is not None:
        # A bad or unreachable server is bad input, said before anything runs.
        _sandbox_server(options)
    settings = policy.sandbox
    if prepared and prepared.error:
        yield _SandboxPlan(setup_failed=_setup_failed(prepared.error))
        return
    lock_ms, statement_ms = timeout_limits_ms(policy)
    request = SandboxRequest(
        progress=options.progress,
        work_root=work_root,
        ini_path=project.ini_path,
        script_location=project.script_location,
        versions_dirs=project.versions_dirs,
        base=base,
        revision_by_path={f.path: f.revision for f in files},
        files={f.path: f for f in files},
        lock_timeout_max_ms=lock_ms,
        statement_timeout_max_ms=statement_ms,
        rls=RlsSettings(
            tables=settings.tenant_tables,
            setting=settings.tenant_setting,
            column=settings.tenant_column,
        ),
        child_env=dict(settings.env),
        timeout_s=options.sandbox_timeout_s,
        python=prepared.python if prepared else sys.executable,
        max_database_bytes=settings.max_database_bytes,
        working_dir=project.run_dir,
        ini_section=project.section,
        x_arguments=list(policy.alembic.x_arguments),
    )
    setup = [f"setup: {p}" for p in prepared.protections] if prepared else []
    with sandbox_child(request) as child:
        yield _SandboxPlan(request, child, setup_protections=setup)


def _sandbox(
    plan: _SandboxPlan, declared: Callable[[], list[Statement]], options: CheckOptions
) -> tuple[SandboxOutcome | None, str | None]:
    if plan.request is None or plan.child is None:
        return plan.setup_failed, plan.skipped
    plan.request.pending_dry_run = declared
    outcome = run_sandbox(plan.request, _sandbox_server(options), plan.child)
    outcome.report.protections += plan.setup_protections
    return outcome, None


def _quiet(_stage: str) -> None:
    """No progress wanted."""


def _containment_refused() -> str | None:
    """Why repository code may not run here, if it may not."""
    try:
        containment_mode()
    except ContainmentUnavailable as error:
        return str(error)
    return None


def _not_contained(reason: str) -> Finding:
    info = SANDBOX_FAILED
    return Finding(
        rule=info.id,
        severity=info.default_severity,
        message=(
            "the repository's code was not run (no dry-run SQL, no sandbox): it runs only "
            f"contained, and {reason}. Only the static analysis ran. On your own machine, "
            "`migsafe check --trust-repository` runs your own code without containment."
        ),
        source="sandbox",
    )


def _sandbox_url(options: CheckOptions) -> str | None:
    return options.database_url or os.environ.get(SANDBOX_URL_VARIABLE) or None


def _sandbox_server(options: CheckOptions) -> SandboxServer:
    """The sandbox's server, connected (UserError, one line, no password, when it cannot be)."""
    url = _sandbox_url(options)
    if options.database_url:
        named = options.database_url_origin
    elif url:
        named = f"${SANDBOX_URL_VARIABLE}"
    else:
        named = "the embedded PostgreSQL cluster"
    return connected_server(url, named)


def _setup_failed(error: str) -> SandboxOutcome:
    """The policy's setup commands failed: the run cannot start, and the report says why."""
    report = SandboxReport(steps=[Step("setup", "failed", detail=error)])
    info = SANDBOX_FAILED
    finding = Finding(
        rule=info.id,
        severity=info.default_severity,
        message=f"the sandbox setup failed: {error}",
        source="sandbox",
    )
    return SandboxOutcome(report, [finding])


def target_version(
    flag: PgVersion | None, policy: Policy, sandbox: SandboxReport | None
) -> PgVersion | None:
    """The PostgreSQL version the rules judge for: `--pg-version`, else the policy's
    `postgres_version`, else the sandbox server's (its major version at least should match
    production's); None when none is known."""
    if flag is not None:
        return flag
    if policy.postgres_version is not None:
        return parse_pg_version(policy.postgres_version)
    if sandbox is not None and sandbox.server_version:
        return parse_pg_version(sandbox.server_version)
    return None


def _analyze(
    ordered: list[MigrationFile],
    graph: RevisionGraph,
    dry: DryRun,
    policy: Policy,
    environment: str,
    pg_version: PgVersion | None,
) -> list[Finding]:
    new_files = [f for f in ordered if f.new]
    lock_ms, statement_ms = timeout_limits_ms(policy)
    options = AnalysisOptions(
        lock_timeout_max_ms=lock_ms,
        statement_timeout_max_ms=statement_ms,
        version_table=dry.version_table,
        pg_version=pg_version,
    )
    findings = analyze_upgrade(dry.upgrade, options)
    findings += analyze_downgrade(dry.upgrade, dry.downgrade, options)
    findings = onto_batch_calls(findings, new_files)
    # The SQL rules' destructive findings read from the source: they stand where the
    # dry-run could not run (not a stage: they carry the SQL rules' ids).
    findings += _not_in_sql(static_findings(new_files), findings, dry)
    facts = ProjectFacts(files=new_files, graph=graph, dry_run=dry, findings=findings)
    findings += analyze_project(RuleStage.STATIC, facts)
    findings += analyze_project(RuleStage.META, replace(facts, findings=findings))
    return _apply_policy(findings, policy, environment)


def _not_in_sql(static: list[Finding], sql: list[Finding], dry: DryRun) -> list[Finding]:
    """Static findings the dry-run already reported at the same place are the same finding.

    The static scan stands on its own where the dry-run could not run."""
    seen = {(f.rule, f.path, f.line) for f in sql}
    return [f for f in static if (f.rule, f.path, f.line) not in seen]


def _apply_policy(findings: list[Finding], policy: Policy, environment: str) -> list[Finding]:
    return apply_policy(findings, policy, environment, RULES)


def _approvals_required(findings: list[Finding]) -> list[str]:
    roles: list[str] = []
    for finding in findings:
        roles += [r for r in finding.approval_roles if r not in roles]
    return roles


def _finding_order(finding: Finding) -> tuple[str, int, int, str]:
    return (finding.path or "~", finding.line or 0, -finding.severity.rank, finding.rule)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
