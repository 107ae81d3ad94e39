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

The sandbox role may hold one connection (`bot.sandbox.database.CONNECTION_LIMIT`). Before
each request to the child and each of the parent's own sessions as the role, no session of
the role is left (`Sandbox.settle`); one the child left open after its request is ended and is
`sandbox-side-connection`, like a second connection the server refused while Alembic's was
open.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from bot.analysis.model import Finding, Statement
from bot.analysis.rules import sandbox as rules
from bot.analysis.sandbox_model import SandboxReport, Step, TracedStatement
from bot.migrations.childscript import alembic_spec, inlined_source
from bot.migrations.database_env import (
    DatabaseParams,
    child_variables,
    redact,
    redacted,
    sandbox_params,
    variable_names,
)
from bot.sandbox.child import ContainedChild, contained_python
from bot.sandbox.database import (
    CONNECTION_LIMIT,
    Sandbox,
    SandboxDatabaseError,
    SandboxServer,
    create_sandbox,
)
from bot.sandbox.declared import undeclared_changes
from bot.sandbox.isolation import Limits, scrubbed_env
from bot.sandbox.rls import RlsSettings, check_rls
from bot.sandbox.schema import (
    DEFAULT_IGNORED_TABLES,
    SchemaSnapshot,
    describe,
    diff_schema,
    new_indexes,
)
from bot.sandbox.seed import DataLoss, compare_checksums, seed_rows, table_checksums
from bot.sandbox.snapshot import take_snapshot
from bot.sandbox.trace import clean_record, lock_spans, read_trace

# migsafe's own sessions never wait long: a transaction a migration left open (a thread of
# its own in the long-lived child) must not hang the checks until the wall clock kills it.
_OWN_LIMITS = "-c lock_timeout=10s -c statement_timeout=60s"
# The role owns schema public: an operator, function or cast it puts there can match a
# catalog query's types better than pg_catalog's, and would run with the admin's rights.
# The owner can also ALTER DATABASE ... SET settings for every session of its database;
# startup options take precedence, so the admin pins what it relies on: where names
# resolve, and that it may write (roles).
ADMIN_OPTIONS = (
    f"{_OWN_LIMITS} -c search_path=pg_catalog,pg_temp -c default_transaction_read_only=off"
)
_CHILD = Path(__file__).with_name("_online_child.py")
DEFAULT_MAX_DATABASE_BYTES = 1024**3  # the policy's sandbox.max_database_size
STEP_NAMES = (
    "upgrade to the base",
    "upgrade to head",
    "post-migration checks",
    "rollback to the base",
    "upgrade again",
)
# PostgreSQL's words (SQLSTATE 53300) when a role's CONNECTION LIMIT refuses a connection.
_REFUSED = "too many connections for role"


@dataclass
class SandboxRequest:
    work_root: Path  # private working copy of the repository
    ini_path: Path | None
    script_location: Path
    versions_dirs: list[Path]
    base: tuple[str, ...]  # revisions before the change; () = empty database
    revision_by_path: dict[str, str]  # repository-relative migration path -> revision
    dry_run_upgrade: list[Statement] = field(default_factory=list)  # parsed, for undeclared
    # Where the dry-run still runs alongside the sandbox: waits for its parsed upgrade SQL.
    pending_dry_run: Callable[[], list[Statement]] | None = None
    lock_timeout_max_ms: float = 30_000
    statement_timeout_max_ms: float = 300_000
    rls: RlsSettings = field(default_factory=RlsSettings)
    child_env: dict[str, str] = field(default_factory=dict)  # the policy file's sandbox.env
    timeout_s: float = 300.0  # wall clock per step of the child
    limits: Limits = field(default_factory=Limits)
    python: str = sys.executable  # the repository's prepared virtualenv, when it has setup
    progress: Callable[[str], None] | None = None  # told each step as it starts
    max_database_bytes: int = DEFAULT_MAX_DATABASE_BYTES  # checked after each step
    # How the team runs Alembic (as the dry-run does): its working directory (default: the
    # ini's folder, else work_root), the ini section (`-n`), the `-x` arguments.
    working_dir: Path | None = None
    ini_section: str = "alembic"
    x_arguments: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        if self.working_dir is not None:
            return self.working_dir
        return self.ini_path.parent if self.ini_path else self.work_root


@dataclass
class SandboxOutcome:
    report: SandboxReport
    findings: list[Finding]


@dataclass
class _ChildRun:
    ok: bool
    error: str | None
    statements: list[Any] = field(default_factory=list)  # the child's records, unchecked
    commits: list[float] = field(default_factory=list)
    version_table: str = "alembic_version"  # as env.py configured it
    external_transaction: bool = False  # env.py's connection was in a transaction already


class _Run:
    """State of one sandbox run; each step appends to the report and the findings."""

    def __init__(
        self,
        request: SandboxRequest,
        sandbox: Sandbox,
        process: ContainedChild,
        report: SandboxReport,
        findings: list[Finding],
        fresh_child: Callable[[], ContainedChild],
    ) -> None:
        self.request = request
        self.sandbox = sandbox
        self.process = process
        self.fresh_child = fresh_child
        self.report = report
        self.findings = findings
        self.version_table = "alembic_version"  # as env.py configures it; seen on each run
        self.oversized = False  # the database outgrew request.max_database_bytes
        self.side_connections: set[str] = set()  # what was reported already

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """A step of the report, timed; afterwards the database's size is measured (not
        when the step raised: the run is over then)."""
        step = Step(name=name, outcome="passed")
        self.report.steps.append(step)  # now: the steps it skips come after it
        if self.request.progress is not None:
            self.request.progress(f"sandbox: {name}")
        started = time.perf_counter()
        try:
            yield step
        finally:
            step.duration_s = time.perf_counter() - started
        self.measure_size(step)

    def measure_size(self, step: Step) -> None:
        """pg_database_size, by the parent over its admin connection, against the limit."""
        if self.oversized:
            return
        size, limit = self.sandbox.size(), self.request.max_database_bytes
        if size <= limit:
            return
        self.oversized = True
        message = (
            f"the sandbox database measured {format_bytes(size)} after the step '{step.name}', "
            f"over the limit of {format_bytes(limit)} (sandbox.max_database_size)"
        )
        step.outcome = "failed"
        step.detail = "; ".join(filter(None, [step.detail, message]))
        self.fail("sandbox-size-limit", message)

    def stop_if_oversized(self) -> bool:
        """After a step: when the database outgrew the limit, the steps not run are skipped."""
        if not self.oversized:
            return False
        done = {step.name for step in self.report.steps}
        remaining = [name for name in STEP_NAMES if name not in done]
        self.skip(*remaining, reason="the database outgrew the size limit")
        return True

    def settle(self, when: str) -> None:
        """No session of the role is left before the next one (the child's or the parent's);
        one the child's process kept open is ended, and reported once."""
        ended = self.sandbox.settle()
        if ended and "left open" not in self.side_connections:
            self.side_connections.add("left open")
            self.fail(
                "sandbox-side-connection",
                f"{ended} connection(s) of the migration's process to the sandbox database "
                f"were still open {when}, after Alembic's had closed: migsafe ended them",
            )

    def refused(self, error: str | None) -> None:
        """The server refused a connection of the child's beyond the role's limit."""
        if error and _REFUSED in error and "refused" not in self.side_connections:
            self.side_connections.add("refused")
            self.fail(
                "sandbox-side-connection",
                "the migration opened a second database connection while Alembic's was open, "
                f"and the server refused it (the sandbox role may hold {CONNECTION_LIMIT}): "
                "what a migration does outside Alembic's connection is outside its "
                "transaction, its offline SQL and the trace",
            )

    def skip(self, *names: str, reason: str) -> None:
        self.report.steps += [Step(n, "skipped", detail=reason) for n in names]

    @property
    def database(self) -> DatabaseParams:
        """The sandbox database as the contained child reaches it: through its relay socket
        (a new child, after one was lost, has a relay of its own)."""
        relay = self.process.relay
        if relay is None:
            return sandbox_params(self.sandbox.conninfo)
        relay.connect_to(*self.sandbox.server.address())
        return sandbox_params(self.sandbox.conninfo_via(relay.directory))

    def secret(self, text: str | None) -> str | None:
        """Whatever the child says, without the sandbox role's password."""
        return None if text is None else redact(text, self.sandbox.password)

    def child(self, command: str, target: str, *, trace: bool) -> _ChildRun:
        request = self.request
        self.settle(f"before the {command} to {target}")
        database = self.database
        spec = alembic_spec(
            working_dir=request.run_dir,
            ini_path=request.ini_path,
            script_location=request.script_location,
            section=request.ini_section,
            x_arguments=request.x_arguments,
            url=database.url,
            env=child_variables(database, request.child_env),
        )
        reply = self.process.request(
            {
                "command": command,
                "target": target,
                "trace": trace,
                "project_dir": str(request.work_root),
                "alembic": spec,
                "versions_dirs": [str(d) for d in request.versions_dirs],
                "socket_dir": database.socket_dir,
            }
        )
        self.settle(f"after the {command} to {target}")
        if reply.timed_out:
            return _ChildRun(False, f"killed after {request.timeout_s:.0f} s (wall clock limit)")
        result = redacted(reply.message, self.sandbox.password)
        if not isinstance(result, dict):
            return _ChildRun(False, self.secret(reply.ended))
        self.version_table = _text(result.get("version_table")) or self.version_table
        self.refused(_text(result.get("error")))
        return _ChildRun(
            result.get("ok") is True,
            _text(result.get("error")),
            _list(result.get("statements")),
            [float(c) for c in _list(result.get("commits")) if _is_time(c)],
            self.version_table,
            result.get("external_transaction") is True,
        )

    def model_drift(self) -> tuple[list[str] | None, str | None]:
        """The database against env.py's target_metadata, compared in the child as `alembic
        check` does: (differences, or None when env.py sets no target_metadata; error)."""
        self.settle("before the comparison with the models")
        reply = self.process.request({"command": "compare", "url": self.database.url})
        self.settle("after the comparison with the models")
        message = redacted(reply.message, self.sandbox.password)
        if not isinstance(message, dict):
            # The models' code (include_object...) took the child down: the rollback steps
            # still run, in a new child, so that hanging the comparison skips none of them.
            self.process = self.fresh_child()
            if reply.timed_out:
                return None, f"killed after {self.request.timeout_s:.0f} s (wall clock limit)"
            return None, self.secret(reply.ended)
        if message.get("ok") is not True:
            return None, _text(message.get("error")) or "the comparison failed"
        drift = message.get("drift")
        if drift is None:
            return None, None
        lines = [line[:_DRIFT_LINE_CHARS] for line in _list(drift) if isinstance(line, str)]
        return lines[:_DRIFT_LINES], None

    def versions(self) -> frozenset[str]:
        """The revisions the database is at, read by the parent itself (as the owner: the
        version table could be anything, a view calling a function included)."""
        self.settle("when migsafe read the version table")
        with psycopg.connect(self.sandbox.conninfo, autocommit=True, options=_OWN_LIMITS) as owner:
            return _versions(owner, self.version_table)

    def uncommitted(self, result: _ChildRun, before: frozenset[str]) -> str | None:
        """Alembic said it succeeded, yet the version table did not move: nothing was
        committed. Then the schema is not what the revisions say, and neither would a deploy's
        be; every later step would compare the wrong things."""
        if not result.ok or self.versions() != before:
            return None
        message = (
            f"alembic reported success, but {result.version_table} still holds "
            f"{', '.join(sorted(before)) or 'no revision'}: nothing was committed"
        )
        if result.external_transaction:
            message += (
                " (env.py ran a statement on the connection before context.configure() and "
                "never committed it, so Alembic left the transaction to env.py and it was "
                "rolled back when the connection closed: call connection.commit() after it)"
            )
        return message

    def admin(self) -> psycopg.Connection[Any]:
        """For the catalogs (snapshots) and roles only: whatever touches the migrations'
        tables can run their code (triggers, defaults, policies, functions the planner
        folds), and that must never run in an admin session."""
        return admin_connection(self.sandbox)

    @contextmanager
    def owner(self) -> Iterator[psycopg.Connection[Any]]:
        """A session as the sandbox's own role, owner of all the migrations created: seeding,
        checksums, EXPLAIN, the tenant test. BYPASSRLS meanwhile, so that FORCE ROW LEVEL
        SECURITY hides no row from the checks (and is off again for the migration runs)."""
        self.settle("when migsafe's checks began")
        bypass = self._bypass_rls(True)
        try:
            with psycopg.connect(
                self.sandbox.conninfo, autocommit=True, options=_OWN_LIMITS
            ) as connection:
                yield connection
        finally:
            if bypass:
                self._bypass_rls(False)

    def _bypass_rls(self, on: bool) -> bool:
        """Where the admin may not grant it (a managed server), the checks go without."""
        attribute = psycopg.sql.SQL("BYPASSRLS" if on else "NOBYPASSRLS")
        statement = psycopg.sql.SQL("ALTER ROLE {} {}").format(
            psycopg.sql.Identifier(self.sandbox.role), attribute
        )
        try:
            with self.admin() as admin:
                admin.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return False
        return True

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


def admin_connection(sandbox: Sandbox) -> psycopg.Connection[Any]:
    """A superuser session on the sandbox database that resolves names in pg_catalog only."""
    return psycopg.connect(sandbox.admin_conninfo, autocommit=True, options=ADMIN_OPTIONS)


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
                _run_steps(_Run(request, sandbox, process, report, findings, fresh_child))
        except (psycopg.Error, SandboxDatabaseError) as error:
            findings.append(database_failure(str(error).strip()))
    report.duration_s = time.perf_counter() - started
    return SandboxOutcome(report, findings)


def database_failure(error: str) -> Finding:
    """The run ended on a database error: the server's, not the migration's (sandbox-failed),
    unless the role's one connection was taken when migsafe's own session needed it."""
    if _REFUSED in error:
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


def _run_steps(run: _Run) -> None:
    request = run.request
    base_target = _target(request.base)
    with run.step("upgrade to the base") as step:
        for base_revision in request.base:
            before = run.versions()
            result = run.child("upgrade", base_revision, trace=False)
            result = _checked(result, run.uncommitted(result, before))
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
    with run.step("upgrade to head") as step:
        result = run.child("upgrade", "heads", trace=True)
        result = _checked(result, run.uncommitted(result, base_versions))
        traced = read_trace(result.statements, request.revision_by_path, result.version_table)
        trace = run.report.trace = traced.statements
        run.report.lock_spans = lock_spans(trace, result.commits)
        if traced.malformed:
            step.detail = (
                f"{traced.malformed} traced record(s) from the child were malformed "
                "(dropped, or their bad fields ignored)"
            )
        if not result.ok:
            step.outcome = "failed"
            step.detail = "; ".join(filter(None, [result.error, step.detail]))
            run.fail(
                "upgrade-failed", f"the upgrade failed: {result.error}", _failed_statement(result)
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
        _measure_failed_upgrade(run, base_schema)
        return
    head_versions = run.versions()
    head_schema = _head_schema(run, base_schema)
    run.findings += rules.observed_findings(
        trace,
        run.report.lock_spans,
        set(base_schema.tables),
        lock_timeout_max_ms=request.lock_timeout_max_ms,
        statement_timeout_max_ms=request.statement_timeout_max_ms,
    )
    _undeclared(run, base_schema, head_schema)
    if run.stop_if_oversized():  # the head's changes are judged all the same
        return

    with run.step("post-migration checks") as step:
        problems, models = _check_models(run)
        with run.admin() as admin, run.owner() as owner:
            problems += _check_indexes(run, owner, base_schema, head_schema)
            problems += check_rls(
                admin, owner, head_schema, request.rls, run.fail, trace, server=run.sandbox.server
            )
        step.detail = "; ".join([*(problems or [_CHECKS_PASSED]), *([models] if models else [])])
        step.outcome = "failed" if problems else "passed"
    if run.stop_if_oversized():
        return

    with run.step("rollback to the base") as step:
        result = run.child("downgrade", base_target or "base", trace=False)
        result = _checked(result, run.uncommitted(result, head_versions))
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
        with run.owner() as owner:
            lost = compare_checksums(base_sums, table_checksums(owner, data_tables))
        run.report.rollback_diff = [
            describe(c) for c in diff_schema(base_schema, rolled_back, ignore_tables=ignored)
        ]
        details = _rollback_findings(run, lost)
        if details:
            step.outcome, step.detail = "failed", "; ".join(details)
        else:
            step.detail = "schema restored, seeded data intact"
    if run.stop_if_oversized():
        return

    with run.step("upgrade again") as step:
        result = run.child("upgrade", "heads", trace=False)
        result = _checked(result, run.uncommitted(result, base_versions))
        if not result.ok:
            step.outcome, step.detail = "failed", result.error
            run.fail(
                "reupgrade-failed",
                f"upgrading again after the rollback failed: {result.error}",
                _failed_statement(result),
            )


_CHECKS_PASSED = "indexes valid and usable; row level security ok"
_DRIFT_SHOWN = 5  # differences named in the finding's message
_DRIFT_LINES = 200  # kept from the child at most
_DRIFT_LINE_CHARS = 300


def _check_models(run: _Run) -> tuple[list[str], str | None]:
    """`schema-drift`: (problems, what the step says about the models otherwise)."""
    drift, error = run.model_drift()
    if error:
        return [], f"models not compared: {error}"
    if drift is None:
        return [], "no models to compare (env.py sets no target_metadata)"
    if not drift:
        return [], "schema matches the models (target_metadata)"
    unmodelled = [
        line.removeprefix(_NOT_IN_MODELS) for line in drift if line.startswith(_NOT_IN_MODELS)
    ]
    if len(unmodelled) * 2 > len(drift):
        # Mostly tables the models lack: target_metadata loads only part of the models.
        others = [line for line in drift if not line.startswith(_NOT_IN_MODELS)]
        rest = f"; the other {len(others)}: {_first(others)}" if others else ""
        summary = (
            f"{len(unmodelled)} of the {len(drift)} difference(s) are tables the database has "
            f"and the models do not ({_first(unmodelled)}): env.py's target_metadata seems to "
            f"load only part of the models (import every models module in env.py){rest}"
        )
        run.fail(
            "schema-drift",
            f"after the upgrade the database differs from the models (env.py's target_metadata) "
            f"in {len(drift)} place(s), as `alembic check` would report: {summary}",
        )
        return [f"{len(drift)} difference(s) from the models: {summary}"], None
    shown = _first(drift)
    run.fail(
        "schema-drift",
        f"after the upgrade the database differs from the models (env.py's target_metadata) "
        f"in {len(drift)} place(s), as `alembic check` would report: {shown}",
    )
    return [f"{len(drift)} difference(s) from the models: {shown}"], None


_NOT_IN_MODELS = "remove_table "  # what `alembic check` would drop: a table without a model


def _first(items: list[str]) -> str:
    """The first _DRIFT_SHOWN items, and how many more."""
    more = f"; and {len(items) - _DRIFT_SHOWN} more" if len(items) > _DRIFT_SHOWN else ""
    return "; ".join(items[:_DRIFT_SHOWN]) + more


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_time(value: object) -> bool:
    """A commit's time as the child sends it (the child is not trusted to)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _versions(owner: psycopg.Connection[Any], table: str) -> frozenset[str]:
    relation = owner.execute("SELECT to_regclass(%s)::text", (table,)).fetchone()
    if relation is None or relation[0] is None:
        return frozenset()
    rows = owner.execute(
        psycopg.sql.SQL("SELECT version_num FROM {}").format(_identifier(relation[0]))
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def _identifier(name: str) -> psycopg.sql.Identifier:
    """A catalog name ("schema.table" as regclass or a snapshot prints it) as SQL."""
    return psycopg.sql.Identifier(*(part.strip('"') for part in name.split(".", 1)))


def _checked(result: _ChildRun, uncommitted: str | None) -> _ChildRun:
    if uncommitted is None:
        return result
    return replace(result, ok=False, error=uncommitted)


def _target(base: tuple[str, ...]) -> str:
    """Alembic's target for 'the base'; a change starting from several heads is rolled
    back to the first (Alembic downgrades to one revision at a time)."""
    return base[0] if base else ""


def _failed_statement(result: _ChildRun) -> dict[str, Any] | None:
    for record in reversed(result.statements):
        statement, _ = clean_record(record, {})
        if statement is not None and statement.error:
            return {"sql": statement.sql, "path": statement.path, "line": statement.line}
    return None


def _rollback_findings(run: _Run, lost: list[DataLoss]) -> list[str]:
    details = []
    if run.report.rollback_diff:
        shown = "; ".join(run.report.rollback_diff[:5])
        run.fail(
            "rollback-schema-mismatch",
            f"after the downgrade the schema differs from the base: {shown}",
        )
        details.append(f"{len(run.report.rollback_diff)} schema difference(s)")
    for loss in lost:
        run.fail("rollback-data-loss", loss.describe())
        details.append(f"data lost in {loss.table}")
    return details


def _head_schema(
    run: _Run, base: SchemaSnapshot, *, lock_timeout: str | None = None
) -> SchemaSnapshot:
    """The schema after the upgrade to head, and its difference from the base's."""
    run.settle("when migsafe read the schema")
    with run.admin() as admin:
        if lock_timeout:
            admin.execute(psycopg.sql.SQL("SET lock_timeout = {}").format(lock_timeout))
        head = take_snapshot(admin)
    # Alembic's version table, whatever env.py called it, is bookkeeping (seen on each run).
    ignored = {*DEFAULT_IGNORED_TABLES, run.version_table, rules.bare(run.version_table)}
    run.report.schema_diff = [describe(c) for c in diff_schema(base, head, ignore_tables=ignored)]
    return head


_FAILED_UPGRADE_LOCK_TIMEOUT = "3s"


def _measure_failed_upgrade(run: _Run, base: SchemaSnapshot) -> None:
    """undeclared-change for what a failed upgrade left behind. The child's sessions are
    ended first, so only a session from outside the check can make the catalogs wait: then
    the measurement is given up, and that is a finding too (fail closed)."""
    try:
        head = _head_schema(run, base, lock_timeout=_FAILED_UPGRADE_LOCK_TIMEOUT)
    except psycopg.errors.LockNotAvailable as error:
        run.fail(
            "sandbox-failed",
            "what the failed upgrade left in the database could not be compared with the "
            f"dry-run's SQL: {str(error).strip()}",
        )
        return
    _undeclared(run, base, head)


def _undeclared(run: _Run, base: SchemaSnapshot, head: SchemaSnapshot) -> None:
    """Every change of the schema (measured: the parent's snapshots) that the dry-run's
    offline SQL did not declare (see `bot.sandbox.declared`). The trace only names the
    statement that most likely made it."""
    request = run.request
    declared = request.pending_dry_run() if request.pending_dry_run else request.dry_run_upgrade
    upgrade = [statement for statement in declared if statement.phase == "upgrade"]
    for found in undeclared_changes(diff_schema(base, head), upgrade, base, head):
        run.fail(
            "undeclared-change",
            found.message,
            _statement_mentioning(run.report.trace, *found.names),
        )


def _statement_mentioning(trace: list[TracedStatement], *names: str) -> dict[str, Any] | None:
    """The traced statement that most likely made a change: the last one naming it."""
    wanted = [rules.bare(n).rsplit(".", 1)[-1].lower() for n in names]
    for statement in reversed(trace):
        if all(name in statement.sql.lower() for name in wanted):
            return {"sql": statement.sql, "path": statement.path, "line": statement.line}
    return None


def format_bytes(size: int) -> str:
    """1073741824 -> "1 GiB", 1536 -> "1.5 KiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "B":
        return f"{size} B"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _check_indexes(
    run: _Run, owner: psycopg.Connection[Any], base: SchemaSnapshot, head: SchemaSnapshot
) -> list[str]:
    problems = []
    added = new_indexes(base, head)
    unusable = _unusable_indexes(owner, [(i.name, i.table) for i in added if i.valid])
    for index in added:
        name = index.name
        if not index.valid:
            run.fail(
                "invalid-index",
                f"index {name} is invalid (indisvalid = false) after the upgrade",
                _statement_creating(run.report.trace, name),
            )
            problems.append(f"index {name} invalid")
        elif name in unusable:
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


# Access methods whose operator classes answer `=` on the leading column; a GIN, GiST,
# BRIN or SP-GiST index serves other operators (@>, @@, &&, ...) and is not judged by this.
_EQUALITY_METHODS = ("btree", "hash")
# The shape of every index asked about, in one query: (schema, name) pairs as two arrays.
_INDEX_SHAPES = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), am.amname,
       pg_get_expr(i.indpred, i.indrelid)
FROM unnest(%s::text[], %s::text[]) AS asked(nspname, relname)
JOIN pg_namespace n ON n.nspname = asked.nspname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = asked.relname
JOIN pg_index i ON i.indexrelid = c.oid
JOIN pg_am am ON am.oid = c.relam
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
"""


def _unusable_indexes(owner: psycopg.Connection[Any], indexes: list[tuple[str, str]]) -> set[str]:
    """The indexes (name, table) the planner does not use: ANALYZE their tables (once, all
    together), then EXPLAIN an equality lookup on each one's leading column (inside its
    predicate, for a partial index) with sequential scans off: the plan must scan the index.
    The shapes in one query; the ANALYZE and the EXPLAINs in one transaction, pipelined where
    libpq can (one round trip for the lot).

    The compared value is an opaque parameter of no table (`(SELECT NULL::type)`): a
    subquery reading the table could itself use the index and pass the check."""
    if not indexes:
        return set()
    names: list[tuple[str, str]] = []
    for index, _ in indexes:
        schema, name = (part.strip('"') for part in index.split(".", 1))
        names.append((schema, name))
    shapes = {
        (schema, name): shape
        for schema, name, *shape in owner.execute(
            _INDEX_SHAPES, ([n[0] for n in names], [n[1] for n in names])
        ).fetchall()
    }
    explains: list[tuple[str, str, psycopg.sql.Composed]] = []
    tables: list[str] = []
    for (index, table), key in zip(indexes, names, strict=True):
        shape = shapes.get(key)
        if shape is None:  # an expression index: no plain leading column to query
            continue
        column, column_type, method, predicate = shape
        if method not in _EQUALITY_METHODS:
            continue
        condition = psycopg.sql.SQL("{} = (SELECT NULL::{})").format(
            psycopg.sql.Identifier(column), psycopg.sql.SQL(column_type)
        )
        if predicate:
            condition = psycopg.sql.SQL("{} AND ({})").format(condition, psycopg.sql.SQL(predicate))
        query = psycopg.sql.SQL("EXPLAIN (FORMAT JSON) SELECT * FROM {} WHERE {}").format(
            _identifier(table), condition
        )
        explains.append((index, key[1], query))
        if table not in tables:
            tables.append(table)
    if not explains:
        return set()
    analyze = psycopg.sql.SQL("ANALYZE {}").format(
        psycopg.sql.SQL(", ").join(_identifier(table) for table in tables)
    )
    pipelined = psycopg.Pipeline.is_supported()
    with ExitStack() as stack:
        if pipelined:
            stack.enter_context(owner.pipeline())
        with owner.transaction():
            owner.execute(analyze)
            owner.execute("SET LOCAL enable_seqscan = off")
            cursors = [owner.execute(query) for _, _, query in explains]
    plans = [cursor.fetchone() for cursor in cursors]
    return {
        index
        for (index, name, _), plan in zip(explains, plans, strict=True)
        if plan is None or name not in _indexes_scanned(plan[0])
    }


def _indexes_scanned(plan: Any) -> set[str]:
    """Every "Index Name" in an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(plan, list):
        return set().union(*(_indexes_scanned(item) for item in plan))
    if not isinstance(plan, dict):
        return set()
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    return found.union(*(_indexes_scanned(value) for value in plan.values()))
