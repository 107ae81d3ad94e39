"""The sandbox run: apply the change to a throwaway database, watch it, roll it back.

Steps (each reported with its outcome and duration):
1. upgrade to the base, snapshot the schema, seed rows and checksum them;
2. upgrade to the heads, traced statement by statement;
3. post-migration checks: schema diff, new indexes valid and usable, RLS / tenant isolation;
4. downgrade to the base: schema and seeded data must come back;
5. upgrade again (a migration that works only once);
6. findings from the trace: locks, rewrites, timeouts as observed.
The parent reads the catalogs itself: what gates the merge never rests on what the
migration code says about itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bot.analysis.model import ActionKind, Finding, Statement
from bot.analysis.rules import sandbox as rules
from bot.sandbox.database import Sandbox, SandboxServer, create_sandbox
from bot.sandbox.isolation import Limits, run_python_script, scrubbed_env
from bot.sandbox.model import SandboxReport, Step, TracedStatement
from bot.sandbox.rls import RlsSettings, check_rls
from bot.sandbox.schema import SchemaSnapshot, describe, diff_schema, new_indexes
from bot.sandbox.seed import compare_checksums, seed_rows, table_checksums
from bot.sandbox.snapshot import take_snapshot
from bot.sandbox.trace import lock_spans, traced_statements

_CHILD = Path(__file__).with_name("_online_child.py")


@dataclass
class SandboxRequest:
    work_root: Path  # private working copy of the repository
    ini_path: Path | None
    script_location: Path
    versions_dirs: list[Path]
    base: tuple[str, ...]  # revisions before the change; () = empty database
    revision_by_path: dict[str, str]  # repository-relative migration path -> revision
    dry_run_upgrade: list[Statement] = field(default_factory=list)  # parsed, for undeclared
    lock_timeout_max_ms: float = 30_000
    statement_timeout_max_ms: float = 300_000
    rls: RlsSettings = field(default_factory=RlsSettings)
    child_env: dict[str, str] = field(default_factory=dict)  # the policy file's sandbox.env
    timeout_s: float = 300.0  # wall clock per child run
    limits: Limits = field(default_factory=Limits)


@dataclass
class SandboxOutcome:
    report: SandboxReport
    findings: list[Finding]


@dataclass
class _ChildRun:
    ok: bool
    error: str | None
    statements: list[dict[str, Any]] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)


class _Run:
    """State of one sandbox run; each step appends to the report and the findings."""

    def __init__(
        self,
        request: SandboxRequest,
        sandbox: Sandbox,
        report: SandboxReport,
        findings: list[Finding],
    ) -> None:
        self.request = request
        self.sandbox = sandbox
        self.report = report
        self.findings = findings

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name=name, outcome="passed")
        started = time.perf_counter()
        try:
            yield step
        finally:
            step.duration_s = time.perf_counter() - started
            self.report.steps.append(step)

    def skip(self, *names: str, reason: str) -> None:
        self.report.steps += [Step(n, "skipped", detail=reason) for n in names]

    def child(self, command: str, target: str, *, trace: bool) -> _ChildRun:
        request = self.request
        payload = {
            "project_dir": str(request.work_root),
            "ini_path": str(request.ini_path) if request.ini_path else None,
            "script_location": str(request.script_location),
            "versions_dirs": [str(d) for d in request.versions_dirs],
            "url": self.sandbox.url,
            "command": command,
            "target": target,
            "trace": trace,
        }
        raw, outcome = run_python_script(
            _CHILD,
            payload,
            cwd=request.ini_path.parent if request.ini_path else request.work_root,
            env=scrubbed_env({**request.child_env, "DATABASE_URL": self.sandbox.url}),
            timeout_s=request.timeout_s,
            limits=request.limits,
            needs="alembic, sqlalchemy, psycopg",
        )
        if not self.report.protections:
            self.report.protections = outcome.protections
        if outcome.timed_out:
            return _ChildRun(False, f"killed after {request.timeout_s:.0f} s (wall clock limit)")
        try:
            result = json.loads(raw or b"")
        except ValueError:
            tail = outcome.stderr.strip()[-2000:] or f"exit status {outcome.returncode}"
            return _ChildRun(False, f"the child ended without a result: {tail}")
        return _ChildRun(result["ok"], result["error"], result["statements"], result["commits"])

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.sandbox.admin_conninfo, autocommit=True)

    def fail(self, rule_id: str, message: str, statement: dict[str, Any] | None = None) -> None:
        info = rules.RULE_INFOS[rule_id]
        finding = Finding(
            rule=rule_id, severity=info.default_severity, message=message, source="sandbox"
        )
        if statement:
            path = statement.get("path")
            finding.path, finding.line = path, statement.get("line")
            finding.revision = self.request.revision_by_path.get(path) if path else None
            finding.statement = statement.get("sql")
        self.findings.append(finding)


def run_sandbox(request: SandboxRequest, server: SandboxServer) -> SandboxOutcome:
    started = time.perf_counter()
    report = SandboxReport(server_version=server.server_version())
    findings: list[Finding] = []
    try:
        with create_sandbox(server) as sandbox:
            _run_steps(_Run(request, sandbox, report, findings))
    except psycopg.Error as error:  # the server, not the migration: say so plainly
        info = rules.SANDBOX_FAILED
        findings.append(
            Finding(
                rule=info.id,
                severity=info.default_severity,
                message=f"sandbox database error: {str(error).strip()}",
                source="sandbox",
            )
        )
    report.duration_s = time.perf_counter() - started
    return SandboxOutcome(report, findings)


def _run_steps(run: _Run) -> None:
    request = run.request
    base_target = _target(request.base)
    with run.step("upgrade to the base") as step:
        for base_revision in request.base:
            result = run.child("upgrade", base_revision, trace=False)
            if not result.ok:
                step.outcome, step.detail = "failed", result.error
                run.fail(
                    "sandbox-failed",
                    f"the base revisions do not apply: {result.error}",
                    _failed_statement(result),
                )
                run.skip(
                    "upgrade to head",
                    "post-migration checks",
                    "rollback to the base",
                    "upgrade again",
                    reason="the base could not be built",
                )
                return
        if not request.base:
            step.detail = "no base revisions: the change starts from an empty database"
    with run.admin() as admin:
        base_schema = take_snapshot(admin)
        seeded = seed_rows(admin, base_schema)
        run.report.seeded, run.report.seed_failures = seeded.seeded, seeded.failed
        base_sums = table_checksums(admin, list(base_schema.tables))

    with run.step("upgrade to head") as step:
        result = run.child("upgrade", "heads", trace=True)
        trace = traced_statements(result.statements, request.revision_by_path)
        run.report.trace = trace
        run.report.lock_spans = lock_spans(trace, result.commits)
        if not result.ok:
            step.outcome, step.detail = "failed", result.error
            run.fail(
                "upgrade-failed", f"the upgrade failed: {result.error}", _failed_statement(result)
            )
            run.skip(
                "post-migration checks",
                "rollback to the base",
                "upgrade again",
                reason="the upgrade failed",
            )
            return
    with run.admin() as admin:
        head_schema = take_snapshot(admin)
    run.report.schema_diff = [describe(c) for c in diff_schema(base_schema, head_schema)]
    run.findings += rules.observed_findings(
        trace,
        run.report.lock_spans,
        set(base_schema.tables),
        lock_timeout_max_ms=request.lock_timeout_max_ms,
        statement_timeout_max_ms=request.statement_timeout_max_ms,
    )
    _undeclared(run, base_schema, head_schema)

    with run.step("post-migration checks") as step:
        with run.admin() as admin:
            problems = _check_indexes(run, admin, base_schema, head_schema)
            problems += check_rls(admin, head_schema, request.rls, run.fail, trace)
        step.detail = "; ".join(problems) or "indexes valid and usable; row level security ok"
        step.outcome = "failed" if problems else "passed"

    with run.step("rollback to the base") as step:
        result = run.child("downgrade", base_target or "base", trace=False)
        if not result.ok:
            step.outcome, step.detail = "failed", result.error
            run.fail(
                "downgrade-failed",
                f"downgrade to {base_target or 'base'} failed: {result.error}",
                _failed_statement(result),
            )
            run.skip("upgrade again", reason="the rollback failed")
            return
        with run.admin() as admin:
            rolled_back = take_snapshot(admin)
            lost = compare_checksums(base_sums, table_checksums(admin, list(base_schema.tables)))
        run.report.rollback_diff = [describe(c) for c in diff_schema(base_schema, rolled_back)]
        details = _rollback_findings(run, lost)
        if details:
            step.outcome, step.detail = "failed", "; ".join(details)
        else:
            step.detail = "schema restored, seeded data intact"

    with run.step("upgrade again") as step:
        result = run.child("upgrade", "heads", trace=False)
        if not result.ok:
            step.outcome, step.detail = "failed", result.error
            run.fail(
                "reupgrade-failed",
                f"upgrading again after the rollback failed: {result.error}",
                _failed_statement(result),
            )


def _target(base: tuple[str, ...]) -> str:
    """Alembic's target for 'the base'; a change starting from several heads is rolled
    back to the first (Alembic downgrades to one revision at a time)."""
    return base[0] if base else ""


def _failed_statement(result: _ChildRun) -> dict[str, Any] | None:
    return next((s for s in reversed(result.statements) if s.get("error")), None)


def _rollback_findings(run: _Run, lost: list[Any]) -> list[str]:
    details = []
    if run.report.rollback_diff:
        shown = "; ".join(run.report.rollback_diff[:5])
        run.fail(
            "rollback-schema-mismatch",
            f"after the downgrade the schema differs from the base: {shown}",
        )
        details.append(f"{len(run.report.rollback_diff)} schema difference(s)")
    for loss in lost:
        run.fail("rollback-data-loss", _describe_loss(loss))
        details.append(f"data lost in {loss.table}")
    return details


def _describe_loss(loss: Any) -> str:
    if loss.rows_after < loss.rows_before:
        return (
            f"table {loss.table}: {loss.rows_before - loss.rows_after} of "
            f"{loss.rows_before} seeded rows are gone after the rollback"
        )
    return (
        f"table {loss.table}: the {loss.rows_before} seeded rows came back changed "
        "(a column's data was lost)"
    )


def _undeclared(run: _Run, base: SchemaSnapshot, head: SchemaSnapshot) -> None:
    """A table or column that vanished without a DROP (or rename) in the dry-run's SQL."""
    declared_tables, declared_columns = _declared_drops(run.request.dry_run_upgrade)
    for change in diff_schema(base, head):
        if change.kind != "removed" or change.object_type not in ("table", "column"):
            continue
        name = rules.bare(change.name)
        if change.object_type == "table" and name not in declared_tables:
            run.fail(
                "undeclared-change",
                f"table {name} disappeared, but the dry-run's SQL never dropped or renamed it",
            )
        if change.object_type == "column" and name not in declared_columns:
            table = name.rsplit(".", 1)[0]
            if table not in declared_tables:
                run.fail(
                    "undeclared-change",
                    f"column {name} disappeared, but the dry-run's SQL never dropped or renamed it",
                )


def _declared_drops(statements: list[Statement]) -> tuple[set[str], set[str]]:
    tables: set[str] = set()
    columns: set[str] = set()
    for statement in statements:
        for action in statement.actions:
            table = rules.bare(action.table or "")
            if action.kind in (ActionKind.DROP_TABLE, ActionKind.RENAME_TABLE):
                tables.add(table)
            elif action.kind in (ActionKind.DROP_COLUMN, ActionKind.RENAME_COLUMN):
                columns.add(f"{table}.{action.column}")
    return tables, columns


def _check_indexes(
    run: _Run, admin: psycopg.Connection[Any], base: SchemaSnapshot, head: SchemaSnapshot
) -> list[str]:
    problems = []
    for index in new_indexes(base, head):
        name = index.name
        if not index.valid:
            run.fail(
                "invalid-index",
                f"index {name} is invalid (indisvalid = false) after the upgrade",
                _statement_creating(run.report.trace, name),
            )
            problems.append(f"index {name} invalid")
        elif not _index_usable(admin, name, index.table):
            run.fail(
                "index-unusable",
                f"the planner did not use index {name} for a query on its leading column",
                _statement_creating(run.report.trace, name),
            )
            problems.append(f"index {name} not used")
    return problems


def _statement_creating(trace: list[TracedStatement], index: str) -> dict[str, Any] | None:
    short = rules.bare(index).lower()
    for statement in trace:
        if "index" in statement.sql.lower() and short in statement.sql.lower():
            return {"sql": statement.sql, "path": statement.path, "line": statement.line}
    return None


def _index_usable(admin: psycopg.Connection[Any], index: str, table: str) -> bool:
    """ANALYZE, then EXPLAIN an equality lookup on the leading column with seq scans off."""
    row = admin.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = i.indkey[0] WHERE i.indexrelid = %s::regclass",
        (index,),
    ).fetchone()
    if row is None:  # an expression index: no plain leading column to query
        return True
    column = psycopg.sql.Identifier(row[0])
    relation = psycopg.sql.SQL(table)
    with admin.transaction():
        admin.execute(psycopg.sql.SQL("ANALYZE {}").format(relation))
        admin.execute("SET LOCAL enable_seqscan = off")
        query = psycopg.sql.SQL("EXPLAIN (FORMAT JSON) SELECT * FROM {} WHERE {} = {}").format(
            relation,
            column,
            psycopg.sql.SQL("(SELECT {} FROM {} LIMIT 1)").format(column, relation),
        )
        plan = admin.execute(query).fetchone()
    return plan is not None and index.split(".")[-1] in json.dumps(plan[0])
