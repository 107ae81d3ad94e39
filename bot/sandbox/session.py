"""One sandbox run's state: its requests to the child, the parent's own sessions, findings.

The sandbox role may hold one connection (`bot.sandbox.database.CONNECTION_LIMIT`). Before
each request to the child and each of the parent's own sessions as the role, no session of
the role is left (`Sandbox.settle`); one the child left open after its request is ended and is
`sandbox-side-connection`, like a second connection the server refused while Alembic's was
open. Whatever the child replies is checked field by field and redacted of the role's password.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from bot.analysis.model import Finding
from bot.analysis.origins import Refused
from bot.analysis.rules import sandbox as rules
from bot.analysis.sandbox_model import SandboxReport, Step
from bot.migrations.childscript import alembic_spec
from bot.migrations.database_env import (
    DatabaseParams,
    child_variables,
    redact,
    redacted,
    sandbox_params,
)
from bot.progress import REVISION_MARK
from bot.sandbox.child import ContainedChild
from bot.sandbox.database import CONNECTION_LIMIT, Sandbox
from bot.sandbox.request import SandboxRequest, format_bytes

# migsafe's own sessions never wait long: a transaction a migration left open (a thread of
# its own in the long-lived child) must not hang the checks until the wall clock kills it.
OWN_LIMITS = "-c lock_timeout=10s -c statement_timeout=60s"
# The role owns schema public: an operator, function or cast it puts there can match a
# catalog query's types better than pg_catalog's, and would run with the admin's rights.
# The owner can also ALTER DATABASE ... SET settings for every session of its database;
# startup options take precedence, so the admin pins what it relies on: where names
# resolve, and that it may write (roles).
ADMIN_OPTIONS = (
    f"{OWN_LIMITS} -c search_path=pg_catalog,pg_temp -c default_transaction_read_only=off"
)
STEP_NAMES = (
    "upgrade to the base",
    "upgrade to head",
    "post-migration checks",
    "rollback to the base",
    "upgrade again",
)
# PostgreSQL's words (SQLSTATE 53300) when a role's CONNECTION LIMIT refuses a connection.
REFUSED = "too many connections for role"
_DRIFT_LINES = 200  # kept from the child at most
_DRIFT_LINE_CHARS = 300


@dataclass
class ChildRun:
    ok: bool
    error: str | None
    statements: list[Any] = field(default_factory=list)  # the child's records, unchecked
    commits: list[float] = field(default_factory=list)
    version_table: str = "alembic_version"  # as env.py configured it
    external_transaction: bool = False  # env.py's connection was in a transaction already


class Run:
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
        self.unvouched: list[Refused] = []  # locations the child reported and the parent refused

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
        if error and REFUSED in error and "refused" not in self.side_connections:
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

    def child(self, command: str, target: str, *, trace: bool) -> ChildRun:
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
            },
            on_note=self._revision_progress(command, target),
        )
        self.settle(f"after the {command} to {target}")
        if reply.timed_out:
            return ChildRun(False, f"killed after {request.timeout_s:.0f} s (wall clock limit)")
        result = redacted(reply.message, self.sandbox.password)
        if not isinstance(result, dict):
            return ChildRun(False, self.secret(reply.ended))
        self.version_table = _text(result.get("version_table")) or self.version_table
        self.refused(_text(result.get("error")))
        return ChildRun(
            result.get("ok") is True,
            _text(result.get("error")),
            _list(result.get("statements")),
            [float(c) for c in _list(result.get("commits")) if _is_time(c)],
            self.version_table,
            result.get("external_transaction") is True,
        )

    def _revision_progress(self, command: str, target: str) -> Callable[[object], None] | None:
        """For the upgrade to the heads: "revision n/N" on the progress line as each new
        revision's file starts running (the child's note names the file; only files of new
        revisions the parent knows count, so a note can show nothing else)."""
        tell = self.request.progress
        new = {path for path, f in self.request.files.items() if f.new}
        if tell is None or command != "upgrade" or target != "heads" or not new:
            return None
        seen: list[str] = []

        def on_note(note: object) -> None:
            path = note.get("file") if isinstance(note, dict) else None
            if isinstance(path, str) and path in new and path not in seen:
                seen.append(path)
                revision = self.request.revision_by_path.get(path, path)
                step = self.report.steps[-1].name if self.report.steps else "upgrade"
                tell(f"sandbox: {step}{REVISION_MARK}{len(seen)}/{len(new)} ({revision})")

        return on_note

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
        with psycopg.connect(self.sandbox.conninfo, autocommit=True, options=OWN_LIMITS) as owner:
            return _versions(owner, self.version_table)

    def uncommitted(self, result: ChildRun, before: frozenset[str]) -> str | None:
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
                self.sandbox.conninfo, autocommit=True, options=OWN_LIMITS
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
        psycopg.sql.SQL("SELECT version_num FROM {}").format(identifier(relation[0]))
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def identifier(name: str) -> psycopg.sql.Identifier:
    """A catalog name ("schema.table" as regclass or a snapshot prints it) as SQL."""
    return psycopg.sql.Identifier(*(part.strip('"') for part in name.split(".", 1)))


def checked(result: ChildRun, uncommitted: str | None) -> ChildRun:
    if uncommitted is None:
        return result
    return replace(result, ok=False, error=uncommitted)
