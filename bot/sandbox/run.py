"""The sandbox run: apply the change to a throwaway database, watch it, roll it back.

Steps (each reported with its outcome and duration):
1. upgrade to the base, snapshot the schema, seed rows and checksum them;
2. upgrade to the heads, traced statement by statement;
3. post-migration checks: schema diff, new indexes valid and usable, RLS / tenant isolation;
4. downgrade to the base: schema and seeded data must come back;
5. upgrade again (a migration that works only once);
6. findings from the trace: locks, rewrites, timeouts as observed.
The parent reads the catalogs itself: what gates the merge never rests on what the
migration code says about itself. What the child reports (its trace, its drift lines, its
errors) can only add findings: the schema diff behind `undeclared-change`, the database's
size after each step (`sandbox-size-limit`), the rollback's schema and checksums, indexes and
row level security are all measured by the parent.

The modules: `request` (what is asked, what comes back), `session` (one run's state, its
requests to the child and the parent's own sessions), `judge` (findings from what the parent
measured), `indexes` (new indexes valid and used), `trace` (the child's records and the
locations the parent vouches for). This one runs the steps in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg

from bot.analysis.model import Finding
from bot.analysis.origins import Refused, with_notes
from bot.analysis.rules import sandbox as rules
from bot.analysis.sandbox_model import SandboxReport
from bot.migrations.childscript import inlined_source
from bot.migrations.database_env import variable_names
from bot.sandbox.child import ContainedChild, contained_python
from bot.sandbox.database import (
    CONNECTION_LIMIT,
    SandboxDatabaseError,
    SandboxServer,
    create_sandbox,
)
from bot.sandbox.indexes import check_indexes
from bot.sandbox.isolation import scrubbed_env
from bot.sandbox.judge import (
    check_models,
    failed_statement,
    measure_failed_upgrade,
    measure_head,
    rollback_findings,
    undeclared,
)
from bot.sandbox.request import (
    DEFAULT_MAX_DATABASE_BYTES,
    SandboxOutcome,
    SandboxRequest,
    format_bytes,
)
from bot.sandbox.rls import check_rls
from bot.sandbox.schema import DEFAULT_IGNORED_TABLES, describe, diff_schema
from bot.sandbox.seed import compare_checksums, seed_rows, table_checksums
from bot.sandbox.session import REFUSED, Run, admin_connection, checked
from bot.sandbox.snapshot import table_storage, take_snapshot
from bot.sandbox.trace import lock_spans, read_trace, vouch_trace

__all__ = [  # what other modules import from here
    "DEFAULT_MAX_DATABASE_BYTES",
    "SandboxOutcome",
    "SandboxRequest",
    "admin_connection",
    "database_failure",
    "format_bytes",
    "run_sandbox",
    "sandbox_child",
]

_CHILD = Path(__file__).with_name("_online_child.py")
_CHECKS_PASSED = "indexes valid and usable; row level security ok"


@contextmanager
def sandbox_child(request: SandboxRequest) -> Iterator[ContainedChild]:
    """The contained child that runs Alembic for every step of a sandbox run. Start it early
    (it spends its first ~0.4 s importing Alembic) and hand it to `run_sandbox`."""
    # The database's variables (and the policy's sandbox.env, templates filled in) come with
    # each request (the database does not exist yet); listed here so that the protections
    # name every variable the child will see.
    env = scrubbed_env(variable_names(request.child_env))
    with contained_python(
        _CHILD,
        source=inlined_source(_CHILD),
        cwd=request.run_dir,
        env=env,
        timeout_s=request.timeout_s,
        limits=request.limits,
        python=request.python,
        readable_paths=[request.work_root],
        database=True,
    ) as child:
        yield child


def run_sandbox(
    request: SandboxRequest, server: SandboxServer, child: ContainedChild | None = None
) -> SandboxOutcome:
    """Every step of the run; `child` from `sandbox_child(request)` if started already."""
    started = time.perf_counter()
    report = SandboxReport(server_version=server.server_version())
    findings: list[Finding] = []
    refused: list[Refused] = []  # the run's, filled as it goes
    with ExitStack() as stack:

        def fresh_child() -> ContainedChild:
            return stack.enter_context(sandbox_child(request))

        process = child or fresh_child()
        report.protections = list(process.protections)
        try:
            with create_sandbox(server) as sandbox:
                report.protections.append(
                    "database: a role of its own, verified in pg_roles (no superuser, "
                    "CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS), connection limit "
                    f"{CONNECTION_LIMIT}, size limit {format_bytes(request.max_database_bytes)}"
                )
                run = Run(request, sandbox, process, report, findings, fresh_child)
                refused = run.unvouched
                _run_steps(run)
        except (psycopg.Error, SandboxDatabaseError) as error:
            findings.append(database_failure(str(error).strip()))
    report.duration_s = time.perf_counter() - started
    return SandboxOutcome(report, with_notes(findings, refused), refused)


def database_failure(error: str) -> Finding:
    """The run ended on a database error: the server's, not the migration's (sandbox-failed),
    unless the role's one connection was taken when migsafe's own session needed it."""
    if REFUSED in error:
        # Between settling and connecting, the child's process took the role's connection:
        # a connection of the migration's own, outliving its step.
        info = rules.SANDBOX_SIDE_CONNECTION
        message = (
            "a process of the migration connected to the sandbox database between steps, "
            f"when migsafe's own checks needed the role's one connection: {error}"
        )
    else:
        info = rules.SANDBOX_FAILED
        message = f"sandbox database error: {error}"
    return Finding(rule=info.id, severity=info.default_severity, message=message, source="sandbox")


def _run_steps(run: Run) -> None:
    request = run.request
    base_target = _target(request.base)
    with run.step("upgrade to the base") as step:
        for base_revision in request.base:
            before = run.versions()
            result = run.child("upgrade", base_revision, trace=False)
            result = checked(result, run.uncommitted(result, before))
            if not result.ok:
                step.outcome, step.detail = "failed", result.error
                run.fail(
                    "sandbox-failed",
                    f"the base revisions do not apply: {result.error}",
                    failed_statement(run, result),
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
    if run.stop_if_oversized():
        return
    with run.admin() as admin:
        base_schema = take_snapshot(admin)
    # Alembic's version table, whatever env.py called it, is bookkeeping: never seeded,
    # checksummed or diffed (its rows are what the steps change on purpose).
    ignored = {*DEFAULT_IGNORED_TABLES, run.version_table, rules.bare(run.version_table)}
    data_tables = [
        t for t in base_schema.tables if t not in ignored and rules.bare(t) not in ignored
    ]
    with run.owner() as owner:
        seeded = seed_rows(owner, base_schema, ignore_tables=ignored)
        run.report.seeded, run.report.seed_failures = seeded.seeded, seeded.failed
        base_sums = table_checksums(owner, data_tables)

    base_versions = run.versions()
    with run.admin() as admin:
        base_storage = table_storage(admin)
    with run.step("upgrade to head") as step:
        result = run.child("upgrade", "heads", trace=True)
        result = checked(result, run.uncommitted(result, base_versions))
        traced = read_trace(result.statements, request.revision_by_path, result.version_table)
        trace = run.report.trace = traced.statements
        run.report.lock_spans = lock_spans(trace, result.commits)
        refused = vouch_trace(trace, request.files)
        run.unvouched += refused
        notes = [_malformed(traced.malformed), _unvouched(refused)]
        step.detail = "; ".join(note for note in notes if note) or None
        if not result.ok:
            step.outcome = "failed"
            step.detail = "; ".join(filter(None, [result.error, step.detail]))
            run.fail(
                "upgrade-failed",
                f"the upgrade failed: {result.error}",
                failed_statement(run, result),
            )
            run.skip(
                "post-migration checks",
                "rollback to the base",
                "upgrade again",
                reason="the upgrade failed",
            )
    if not result.ok:
        # Whether it failed is the child's word: what it left behind is measured all the
        # same (a connection of its own commits whatever Alembic's rolls back).
        measure_failed_upgrade(run, base_schema)
        return
    head_versions = run.versions()
    head_schema = measure_head(run, base_schema)
    run.findings += rules.observed_findings(
        trace,
        run.report.lock_spans,
        set(base_schema.tables),
        lock_timeout_max_ms=request.lock_timeout_max_ms,
        statement_timeout_max_ms=request.statement_timeout_max_ms,
    )
    with run.admin() as admin:
        run.findings += rules.unreported_rewrites(base_storage, table_storage(admin), trace)
    undeclared(run, base_schema, head_schema)
    if run.stop_if_oversized():  # the head's changes are judged all the same
        return

    with run.step("post-migration checks") as step:
        problems, models = check_models(run)
        with run.admin() as admin, run.owner() as owner:
            problems += check_indexes(run, owner, base_schema, head_schema)
            problems += check_rls(
                admin, owner, head_schema, request.rls, run.fail, trace, server=run.sandbox.server
            )
        step.detail = "; ".join([*(problems or [_CHECKS_PASSED]), *([models] if models else [])])
        step.outcome = "failed" if problems else "passed"
    if run.stop_if_oversized():
        return

    with run.step("rollback to the base") as step:
        result = run.child("downgrade", base_target or "base", trace=False)
        result = checked(result, run.uncommitted(result, head_versions))
        if not result.ok:
            step.outcome, step.detail = "failed", result.error
            run.fail(
                "downgrade-failed",
                f"downgrade to {base_target or 'base'} failed: {result.error}",
                failed_statement(run, result),
            )
            run.skip("upgrade again", reason="the rollback failed")
            return
        with run.admin() as admin:
            rolled_back = take_snapshot(admin)
        with run.owner() as owner:
            lost = compare_checksums(base_sums, table_checksums(owner, data_tables))
        run.report.rollback_diff = [
            describe(c) for c in diff_schema(base_schema, rolled_back, ignore_tables=ignored)
        ]
        details = rollback_findings(run, lost)
        if details:
            step.outcome, step.detail = "failed", "; ".join(details)
        else:
            step.detail = "schema restored, seeded data intact"
    if run.stop_if_oversized():
        return

    with run.step("upgrade again") as step:
        result = run.child("upgrade", "heads", trace=False)
        result = checked(result, run.uncommitted(result, base_versions))
        if not result.ok:
            step.outcome, step.detail = "failed", result.error
            run.fail(
                "reupgrade-failed",
                f"upgrading again after the rollback failed: {result.error}",
                failed_statement(run, result),
            )


def _target(base: tuple[str, ...]) -> str:
    """Alembic's target for 'the base'; a change starting from several heads is rolled
    back to the first (Alembic downgrades to one revision at a time)."""
    return base[0] if base else ""


def _malformed(count: int) -> str | None:
    if not count:
        return None
    return (
        f"{count} traced record(s) from the child were malformed "
        "(dropped, or their bad fields ignored)"
    )


def _unvouched(refused: list[Refused]) -> str | None:
    if not refused:
        return None
    return (
        f"{len(refused)} traced statement(s) came with a file:line where the revision file has "
        "no operation that could emit them: shown without the line, and no suppression "
        "comment applies to their findings"
    )
