"""Runs INSIDE the sandbox child: Alembic online against the throwaway database, traced.

Over 400 lines: migsafe is not importable in the child, so it carries its helpers.

Self-contained on purpose (stdlib, alembic, sqlalchemy, psycopg): it is started as
`python -I _online_child.py REQUESTS_FD REPLIES_FD` with a scrubbed environment and cannot
import migsafe. Alembic is set up as in the dry-run's child (`_alembic_config.py`, inlined
into this script when it is started: the import marked `# migsafe: inline`).
It imports Alembic once, then answers requests, one JSON line each way on
those two descriptors (never stdout: the migrations may print), until the channel closes.
For every statement it records the migration file and line that emitted it, its duration,
the relation locks its backend newly holds, the tables it rewrote (relfilenode changed) and
the timeouts in effect when it ran.

Request "upgrade" / "downgrade": project_dir, alembic (working directory, ini, section,
-x arguments, url, the variables env.py may read: see _alembic_config.py), versions_dirs,
target, trace (bool), socket_dir (the server's Unix socket directory, where SQLAlchemy's
connections to localhost go; null for a server on TCP).
Reply: ok, error, statements [...], commits [...], version_table, external_transaction,
tracing_queries (the tracer's own round trips: at most one after each statement, one
baseline).
Request "compare" (after an upgrade, the database as it left it): url. Reply: ok, error,
drift: the differences between the database and env.py's target_metadata, as `alembic check`
finds them, one line each; null when env.py set no target_metadata.

The sandbox role may hold one connection at a time, and migsafe's own sessions need it
between requests: after each request every Engine that connected during it is disposed, so
that no pooled connection (an env.py engine with a QueuePool) outlives the request.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import traceback
import weakref
from typing import Any

from bot.migrations._alembic_config import alembic_config, enter_project  # migsafe: inline

# What tracing reads, in ONE query after each statement (one round trip, reading only what
# changed):
# - the timeouts in effect, read after the statement: only a SET changes them and a SET
#   takes no lock; for a lock-taking statement what is in effect after it is what was in
#   effect while it ran;
# - the relation locks this backend newly holds: the pairs (relation, mode) it held already
#   in this transaction are sent along (one text, kept as it grows) and left out, so only the
#   new ones are joined to the catalog and named. Indexes, sequences and TOAST tables are
#   left out afterwards (their table's lock is what matters); a newly locked relation that no
#   longer exists is a table the statement dropped (named from what was seen before) or the
#   transient heap of a rewrite;
# - the relfilenodes of the tables it newly locked, and of the tables it held ACCESS
#   EXCLUSIVE already where they changed (a rewrite needs that lock and keeps it to the end
#   of the transaction, so a rewritten table is always among them; their relfilenodes as
#   last seen are sent along, the server returns only those that differ);
# - the tables created since the last look (oid above the highest seen: an index range scan,
#   usually no row), so that a table another session created has its relfilenode known
#   before it is rewritten.
# A row per relation (mode NULL: a table's relfilenode only); always one row for the settings.
_TRACE_SQL = """
WITH new AS (
  SELECT l.relation, l.mode FROM pg_locks l
  WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
    AND l.relation >= 16384
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.relation::text || ':' || l.mode NOT IN (SELECT unnest(string_to_array(%(held)s, ',')))
)
SELECT s.lock_timeout, s.statement_timeout, r.oid, r.kind, r.name, r.mode, r.filenode
FROM (SELECT current_setting('lock_timeout') AS lock_timeout,
             current_setting('statement_timeout') AS statement_timeout) s
LEFT JOIN (
  SELECT n.relation::bigint AS oid, c.relkind::text AS kind, n.relation::regclass::text AS name,
         n.mode, c.relfilenode::bigint AS filenode
  FROM new n LEFT JOIN pg_class c ON c.oid = n.relation
  UNION ALL
  SELECT c.oid::bigint, c.relkind::text, NULL, NULL, c.relfilenode::bigint
  FROM (SELECT split_part(x, ':', 1)::oid AS oid, split_part(x, ':', 2)::bigint AS node
        FROM unnest(string_to_array(%(exclusive)s, ',')) x) e
  JOIN pg_class c ON c.oid = e.oid
  WHERE c.relfilenode::bigint <> e.node
  UNION ALL
  SELECT c.oid::bigint, c.relkind::text, c.oid::regclass::text, NULL, c.relfilenode::bigint
  FROM pg_class c WHERE c.oid > %(since)s::bigint::oid AND c.relkind IN ('r', 'p', 'm')
) r ON true
"""
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_LOCKED_KINDS = frozenset({"r", "p", "m", "v"})
_TABLE_KINDS = frozenset({"r", "p", "m"})
_EXCLUSIVE = "AccessExclusiveLock"
# Below this every relation is initdb's (FirstNormalObjectId): "oid above it" is every table
# of the database's own.
_FIRST_NORMAL_OID = 16383
# Once per run, before the first traced statement: the relfilenode of every table, to compare
# the first rewrite of a table against.
_BASELINE_SQL = """
SELECT c.oid::bigint, c.oid::regclass::text, c.relfilenode::bigint FROM pg_class c
WHERE c.oid > %s::bigint::oid AND c.relkind IN ('r', 'p', 'm')
"""


class Tracer:
    def __init__(
        self,
        versions_dirs: list[str],
        project_dir: str,
        trace: bool,
        notify: Any = None,
    ) -> None:
        import alembic.runtime.migration

        # Told each migration file as its first statement runs: the parent's progress line
        # (revision n/N). Only for show: the parent reads nothing else from these notes.
        self.notify = notify
        self.last_path: str | None = None

        self.versions_dirs = [os.path.realpath(d) + os.sep for d in versions_dirs]
        # Alembic's own queries (version table) come from here, outside any migration file.
        self.alembic_runtime = os.path.realpath(alembic.runtime.migration.__file__)
        self.project_dir = os.path.realpath(project_dir)
        self.trace = trace
        self.started = time.monotonic()
        self.statements: list[dict[str, Any]] = []
        self.commits: list[float] = []
        # The relation locks held in the transaction, whatever the relation, as the query
        # takes them: "oid:mode,oid:mode..." (only grows until the transaction ends).
        self.held = ""
        # The tables held in ACCESS EXCLUSIVE mode in the transaction (rewritable), and as
        # the query takes them with their relfilenodes: "oid:relfilenode,...".
        self.exclusive: set[int] = set()
        self.exclusive_text = ""
        self.exclusive_count = 0  # how many tables exclusive_text holds
        # Alembic's own statements read after in this transaction, literals left out.
        self.bookkept: set[str] = set()
        # A migration file's path, by the name its code object carries.
        self.realpaths: dict[str, str] = {}
        # Every table seen, by oid: (name, relfilenode) as last seen.
        self.filenodes: dict[int, tuple[str, int]] = {}
        self.highest_oid: int | None = None  # the highest table oid seen; None: no baseline
        self.settings: tuple[str | None, str | None] = (None, None)  # as last read
        self.queries = 0  # the tracer's own round trips
        self.current: dict[str, Any] | None = None

    def now(self) -> float:
        return round(time.monotonic() - self.started, 6)

    def origin(self) -> tuple[str | None, int | None, bool]:
        """The migration file and line of the statement; else whether Alembic itself
        (the version table) or env.py (path None, not bookkeeping) emitted it."""
        frame = sys._getframe(2)
        bookkeeping = False
        while frame is not None:
            name = frame.f_code.co_filename
            filename = self.realpaths.get(name)
            if filename is None:
                filename = self.realpaths[name] = os.path.realpath(name)
            if any(filename.startswith(d) for d in self.versions_dirs):
                return os.path.relpath(filename, self.project_dir), frame.f_lineno, False
            bookkeeping = bookkeeping or filename == self.alembic_runtime
            frame = frame.f_back  # type: ignore[assignment]
        return None, None, bookkeeping

    def _query(self, cursor: Any, sql: str, params: Any) -> list[tuple[Any, ...]]:
        self.queries += 1
        with cursor.connection.cursor() as own:
            own.execute(sql, params)
            return list(own.fetchall())

    def before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        path, line, bookkeeping = self.origin()
        if path is not None and path != self.last_path:
            self.last_path = path
            if self.notify is not None:
                self.notify({"file": path})
        record: dict[str, Any] = {"sql": statement.strip(), "path": path, "line": line}
        if bookkeeping:
            record["bookkeeping"] = True
        if self.trace and _in_failed_transaction(cursor):
            # After an error only ROLLBACK (TO SAVEPOINT) can run: our own queries would
            # fail and take the migration's recovery down with them.
            record["untraced"] = True
        elif self.trace:
            # As last read (no query here): what a statement that fails ran with, unless it
            # is a SET. The after-hook reads them again.
            record["lock_timeout"], record["statement_timeout"] = self.settings
            if self.highest_oid is None:
                self._baseline(cursor)
        record["start"] = self.now()
        self.current = record
        self.statements.append(record)

    def after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        record = self.current
        if record is None:
            return
        record["duration"] = round(self.now() - record["start"], 6)
        autocommit = bool(getattr(cursor.connection, "autocommit", False))
        if self.trace and _in_failed_transaction(cursor):
            record["untraced"] = True
        elif self.trace and not autocommit and self._bookkept_already(record):
            # One of Alembic's own statements once more in this transaction, the same but
            # for its literals (the version-table UPDATE of every revision): the first one
            # took its locks (read after it), this one takes none anew, and the parent drops
            # both. No query: an upgrade is half such statements.
            pass
        elif self.trace:
            # In autocommit (op.get_context().autocommit_block()) every statement commits:
            # its locks are gone by now and nothing accumulates; what it rewrote is found
            # by looking at every table (autocommit statements are few).
            if autocommit:
                self.end_transaction()
            params = {
                "held": self.held,
                "exclusive": self.exclusive_text,
                "since": _FIRST_NORMAL_OID if autocommit else self.highest_oid,
            }
            rows = self._query(cursor, _TRACE_SQL, params)
            self.settings = (rows[0][0], rows[0][1])
            record["lock_timeout"], record["statement_timeout"] = self.settings
            locks, nodes = self._read(rows)
            record["locks"] = sorted(locks)
            record["autocommit"] = autocommit
            rewritten = {
                oid
                for oid, (_, node) in nodes.items()
                if oid in self.filenodes and self.filenodes[oid][1] != node
            }
            record["rewritten"] = sorted(nodes[oid][0] for oid in rewritten)
            self.filenodes.update(nodes)
            if autocommit:
                self.end_transaction()
            elif rewritten & self.exclusive or len(self.exclusive) != self.exclusive_count:
                self.exclusive_count = len(self.exclusive)
                self.exclusive_text = ",".join(
                    f"{oid}:{self.filenodes[oid][1]}"
                    for oid in sorted(self.exclusive)
                    if oid in self.filenodes
                )
        self.current = None

    def failed(self, context: Any) -> None:
        if self.current is not None:
            self.current["duration"] = round(self.now() - self.current["start"], 6)
            self.current["error"] = str(context.original_exception).strip()
            self.current = None

    def committed(self, conn: Any) -> None:
        self.commits.append(self.now())
        self.end_transaction()

    def end_transaction(self) -> None:
        """Its locks are gone: none held, none to send."""
        self.held = self.exclusive_text = ""
        self.exclusive = set()
        self.exclusive_count = 0
        self.bookkept = set()

    def _bookkept_already(self, record: dict[str, Any]) -> bool:
        """Whether this is Alembic's bookkeeping, seen already (else noted as seen)."""
        if record.get("bookkeeping") is not True:
            return False
        shape = _LITERAL.sub("''", record["sql"])
        if shape in self.bookkept:
            return True
        self.bookkept.add(shape)
        return False

    def _baseline(self, cursor: Any) -> None:
        self.highest_oid = _FIRST_NORMAL_OID
        for oid, name, node in self._query(cursor, _BASELINE_SQL, (_FIRST_NORMAL_OID,)):
            self.filenodes[oid] = (name, node)
            self.highest_oid = max(self.highest_oid, oid)

    def _read(
        self, rows: list[tuple[Any, ...]]
    ) -> tuple[set[tuple[str, str]], dict[int, tuple[str, int]]]:
        """(the relation locks new to the transaction, by name; the relfilenodes of the
        tables in the rows, by oid), the locks noted as held."""
        locks: set[tuple[str, str]] = set()
        nodes: dict[int, tuple[str, int]] = {}
        for _, _, oid, kind, name, mode, node in rows:
            if oid is None:  # the settings' row alone: no new lock, no table to look at
                continue
            if kind in _TABLE_KINDS and node is not None:
                known = self.filenodes.get(oid)
                nodes[oid] = (name or (known[0] if known else str(oid)), node)
            if mode is None:
                if name is not None:  # a table created since the last look
                    self.highest_oid = max(self.highest_oid or _FIRST_NORMAL_OID, oid)
                continue
            self.held += f"{',' if self.held else ''}{oid}:{mode}"
            if mode == _EXCLUSIVE and kind in _TABLE_KINDS:
                self.exclusive.add(oid)
            if kind is None and oid in self.filenodes:  # dropped by this statement
                locks.add((self.filenodes[oid][0], mode))
            elif kind in _LOCKED_KINDS:
                locks.add((name, mode))
        return locks, nodes


class Session:
    """The child's state across requests: the Engine listeners are installed once and
    forward to the tracer of the request at hand."""

    def __init__(self) -> None:
        from alembic.runtime.migration import MigrationContext
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self.tracer: Tracer | None = None
        self.notify: Any = None  # writes a {"note": ...} line to the parent (main sets it)
        self.contexts = _record_contexts(MigrationContext)
        self.compare_options: dict[str, Any] | None = None  # env.py's, at the last upgrade
        self.engines: weakref.WeakSet[Any] = weakref.WeakSet()  # connected during a request
        event.listen(Engine, "engine_connect", self.connected)
        self.socket_dir: str | None = None
        event.listen(Engine, "do_connect", self.route)
        event.listen(Engine, "before_cursor_execute", self.before)
        event.listen(Engine, "after_cursor_execute", self.after)
        event.listen(Engine, "handle_error", self.failed)
        event.listen(Engine, "commit", self.committed)

    def connected(self, conn: Any, *args: Any) -> None:
        self.engines.add(conn.engine)

    def route(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        """A server on a Unix socket only: env.py was told its host is "localhost" (a URL
        built from parts cannot hold a directory); its connections there go to the socket."""
        if self.socket_dir and cparams.get("host") == "localhost":
            cparams["host"] = self.socket_dir

    def before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.tracer is not None:
            self.tracer.before(conn, cursor, statement, *args)

    def after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.tracer is not None:
            self.tracer.after(conn, cursor, statement, *args)

    def failed(self, context: Any) -> None:
        if self.tracer is not None:
            self.tracer.failed(context)

    def committed(self, conn: Any) -> None:
        if self.tracer is not None:
            self.tracer.committed(conn)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            if request["command"] == "compare":
                return self.compare(request["url"])
            return self.migrate(request)
        finally:
            self.release()

    def release(self) -> None:
        """Close the pooled connections of every engine used during the request."""
        for engine in list(self.engines):
            with contextlib.suppress(Exception):  # an engine the migration broke: its own
                engine.dispose()
        self.engines.clear()

    def migrate(self, request: dict[str, Any]) -> dict[str, Any]:
        from alembic import command

        self.socket_dir = request.get("socket_dir")
        self.tracer = tracer = Tracer(
            request["versions_dirs"], request["project_dir"], request["trace"], self.notify
        )
        self.contexts.clear()
        result: dict[str, Any] = {"ok": True, "error": None}
        try:
            enter_project(request["alembic"])
            config = alembic_config(request["alembic"], [request["command"], request["target"]])
            if request["command"] == "upgrade":
                command.upgrade(config, request["target"])
            else:
                command.downgrade(config, request["target"])
        except BaseException as error:  # the migration's failure is the result, not a crash
            result["ok"] = False
            result["error"] = _error_text(error)
        finally:
            self.tracer = None
        result["statements"] = tracer.statements
        result["commits"] = tracer.commits
        result["tracing_queries"] = tracer.queries
        result.update(_version_table(self.contexts))
        self.compare_options = _compare_options(self.contexts)
        return result

    def compare(self, url: str) -> dict[str, Any]:
        """What `alembic check` does: the database against env.py's target_metadata, with
        env.py's own comparison options (include_object, compare_type, version table...)."""
        options = self.compare_options
        if not options or options.get("target_metadata") is None:
            return {"ok": True, "error": None, "drift": None}
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext
        from sqlalchemy import create_engine, pool

        try:
            engine = create_engine(url, poolclass=pool.NullPool)
            with engine.connect() as connection:
                context = MigrationContext.configure(connection, opts=dict(options))
                diffs = compare_metadata(context, options["target_metadata"])
            drift = [_describe_diff(diff) for diff in _flattened(diffs)]
        except BaseException as error:
            return {"ok": False, "error": _error_text(error), "drift": None}
        return {"ok": True, "error": None, "drift": drift}


def _in_failed_transaction(cursor: Any) -> bool:
    """psycopg's view of the session: in a transaction that an error aborted."""
    info = getattr(cursor.connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return getattr(status, "name", "") == "INERROR"


def _record_contexts(cls: Any) -> list[Any]:
    """Every MigrationContext env.py configures: which version table it keeps, and whether
    it found its connection already in a transaction (then Alembic never commits)."""
    contexts: list[Any] = []
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        contexts.append(self)

    cls.__init__ = init
    return contexts


def _version_table(contexts: list[Any]) -> dict[str, Any]:
    online = [c for c in contexts if not getattr(c, "as_sql", False)]
    if not online:
        return {"version_table": None, "external_transaction": False}
    context = online[-1]
    schema, name = context.version_table_schema, context.version_table
    return {
        "version_table": f"{schema}.{name}" if schema else name,
        "external_transaction": bool(getattr(context, "_in_external_transaction", False)),
    }


# The options of env.py's context.configure() that decide what a comparison reports.
_COMPARE_OPTIONS = (
    "target_metadata",
    "include_name",
    "include_object",
    "include_schemas",
    "compare_type",
    "compare_server_default",
    "version_table",
    "version_table_schema",
    "autogenerate_plugins",
)


def _compare_options(contexts: list[Any]) -> dict[str, Any] | None:
    online = [c for c in contexts if not getattr(c, "as_sql", False)]
    if not online:
        return None
    opts = online[-1].opts
    return {key: opts[key] for key in _COMPARE_OPTIONS if key in opts}


def _flattened(diffs: list[Any]) -> list[tuple[Any, ...]]:
    """Autogenerate groups a column's modifications in a list; one entry per change here."""
    flat: list[tuple[Any, ...]] = []
    for diff in diffs:
        flat.extend(diff if isinstance(diff, list) else [diff])
    return flat


def _describe_diff(diff: tuple[Any, ...]) -> str:
    """One line per difference: `add_column accounts.nickname`, `modify_nullable
    accounts.email: True -> False`, `remove_table legacy`..."""
    kind, args = diff[0], diff[1:]
    if kind.startswith("modify_") and len(args) == 6:
        schema, table, column, _existing, old, new = args
        name = ".".join(p for p in (schema, table, column) if p)
        return f"{kind} {name}: {_named(old)} -> {_named(new)}"
    if kind in ("add_column", "remove_column") and len(args) == 3:
        schema, table, column = args
        return f"{kind} {'.'.join(p for p in (schema, table) if p)}.{column.name}"
    return " ".join([kind, *(_named(arg) for arg in args if arg is not None)])


def _named(item: Any) -> str:
    """A schema item by its name (and its table's), anything else as it prints."""
    table = getattr(item, "table", None)
    name = getattr(item, "name", None)
    if getattr(item, "fullname", None):  # a Table
        return str(item.fullname)
    if isinstance(name, str) and table is not None and getattr(table, "fullname", None):
        return f"{name} on {table.fullname}"
    if isinstance(name, str):
        return name
    if hasattr(item, "arg"):  # a server default
        item = getattr(item.arg, "text", item.arg)
    text = repr(item) if not isinstance(item, str) else item
    return text if len(text) <= 120 else text[:117] + "..."


def _error_text(error: BaseException) -> str:
    """PostgreSQL's message and the statement, as SQLAlchemy words them; where it is not a
    database error, the exception and the innermost frame of the migration code."""
    text = str(error).strip() or type(error).__name__
    lines = [line for line in text.splitlines() if not line.startswith("(Background on")]
    if not hasattr(error, "orig"):
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            last = frames[-1]
            lines.append(f"at {os.path.basename(last.filename)}:{last.lineno}")
        lines[0] = f"{type(error).__name__}: {lines[0]}"
    return "\n".join(lines)


def main() -> int:
    requests_fd, replies_fd = int(sys.argv[1]), int(sys.argv[2])
    for fd in (requests_fd, replies_fd):
        os.set_inheritable(fd, False)  # not for the processes a migration may start
    sys.stdin.close()
    import psycopg  # noqa: F401  (imported once, before the first request, not during it)
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
    from alembic import command  # noqa: F401

    session = Session()
    with open(requests_fd, "rb") as requests, open(replies_fd, "wb") as replies:

        def notify(note: dict[str, Any]) -> None:
            replies.write(json.dumps({"note": note}).encode("utf-8") + b"\n")
            replies.flush()

        session.notify = notify
        for line in requests:
            reply = session.handle(json.loads(line))
            replies.write(json.dumps(reply, default=str).encode("utf-8") + b"\n")
            replies.flush()
    os._exit(0)  # the parent closed the channel: done, no interpreter teardown to wait for


if __name__ == "__main__":
    sys.exit(main())
