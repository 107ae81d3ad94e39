"""Runs INSIDE the sandbox child: Alembic online against the throwaway database, traced.

Self-contained on purpose (stdlib, alembic, sqlalchemy, psycopg): it is started as
`python -I _online_child.py REQUEST RESULT` with a scrubbed environment and cannot
import migsafe. For every statement it records the migration file and line that
emitted it, its duration, the relation locks its backend newly holds, the tables it
rewrote (relfilenode changed) and the timeouts in effect when it ran.

Request (JSON): project_dir, ini_path, script_location, versions_dirs, url,
command ("upgrade" | "downgrade"), target, trace (bool).
Result (JSON): ok, error, statements [...], commits [...], version_table,
external_transaction.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

# Relation locks of the migration's own backend. Indexes, sequences and TOAST tables are
# left out (their table's lock is what matters); a relation that no longer exists is either a
# table the statement dropped (named from the previous statement's view) or the transient
# heap of a rewrite (left out).
_LOCKS_SQL = """
SELECT l.relation::bigint, c.relkind::text, l.relation::regclass::text, l.mode FROM pg_locks l
LEFT JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND l.relation >= 16384
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_LOCKED_KINDS = frozenset({"r", "p", "m", "v"})
_FILENODES_SQL = """
SELECT c.oid, c.oid::regclass::text, c.relfilenode FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""
_SETTINGS_SQL = "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"


class Tracer:
    def __init__(self, versions_dirs: list[str], project_dir: str, trace: bool) -> None:
        import alembic.runtime.migration

        self.versions_dirs = [os.path.realpath(d) + os.sep for d in versions_dirs]
        # Alembic's own queries (version table) come from here, outside any migration file.
        self.alembic_runtime = os.path.realpath(alembic.runtime.migration.__file__)
        self.project_dir = os.path.realpath(project_dir)
        self.trace = trace
        self.started = time.monotonic()
        self.statements: list[dict[str, Any]] = []
        self.commits: list[float] = []
        self.held: set[tuple[str, str]] = set()
        self.filenodes: dict[int, tuple[str, int]] = {}
        self.current: dict[str, Any] | None = None

    def now(self) -> float:
        return round(time.monotonic() - self.started, 6)

    def origin(self) -> tuple[str | None, int | None, bool]:
        """The migration file and line of the statement; else whether Alembic itself
        (the version table) or env.py (path None, not bookkeeping) emitted it."""
        frame = sys._getframe(2)
        bookkeeping = False
        while frame is not None:
            filename = os.path.realpath(frame.f_code.co_filename)
            if any(filename.startswith(d) for d in self.versions_dirs):
                return os.path.relpath(filename, self.project_dir), frame.f_lineno, False
            bookkeeping = bookkeeping or filename == self.alembic_runtime
            frame = frame.f_back  # type: ignore[assignment]
        return None, None, bookkeeping

    def _query(self, cursor: Any, sql: str) -> list[tuple[Any, ...]]:
        with cursor.connection.cursor() as own:
            own.execute(sql)
            return list(own.fetchall())

    def before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        path, line, bookkeeping = self.origin()
        record: dict[str, Any] = {"sql": statement.strip(), "path": path, "line": line}
        if bookkeeping:
            record["bookkeeping"] = True
        if self.trace:
            lock_timeout, statement_timeout = self._query(cursor, _SETTINGS_SQL)[0]
            record["lock_timeout"] = lock_timeout
            record["statement_timeout"] = statement_timeout
            if not self.filenodes:
                self.filenodes = self._filenodes(cursor)
        record["start"] = self.now()
        self.current = record
        self.statements.append(record)

    def after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        record = self.current
        if record is None:
            return
        record["duration"] = round(self.now() - record["start"], 6)
        if self.trace:
            locks = self._locks(cursor)
            record["locks"] = sorted(locks - self.held)
            # In autocommit (op.get_context().autocommit_block()) every statement commits:
            # its locks are gone by now and nothing accumulates.
            record["autocommit"] = bool(getattr(cursor.connection, "autocommit", False))
            self.held = set() if record["autocommit"] else self.held | locks
            nodes = self._filenodes(cursor)
            record["rewritten"] = sorted(
                name
                for oid, (name, node) in nodes.items()
                if oid in self.filenodes and self.filenodes[oid][1] != node
            )
            self.filenodes = nodes
        self.current = None

    def failed(self, context: Any) -> None:
        if self.current is not None:
            self.current["duration"] = round(self.now() - self.current["start"], 6)
            self.current["error"] = str(context.original_exception).strip()
            self.current = None

    def committed(self, conn: Any) -> None:
        self.commits.append(self.now())
        self.held = set()

    def _locks(self, cursor: Any) -> set[tuple[str, str]]:
        locks = set()
        for oid, kind, name, mode in self._query(cursor, _LOCKS_SQL):
            if kind is None and oid in self.filenodes:  # dropped by this statement
                locks.add((self.filenodes[oid][0], mode))
            elif kind in _LOCKED_KINDS:
                locks.add((name, mode))
        return locks

    def _filenodes(self, cursor: Any) -> dict[int, tuple[str, int]]:
        return {oid: (name, node) for oid, name, node in self._query(cursor, _FILENODES_SQL)}


def run(request: dict[str, Any]) -> dict[str, Any]:
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    os.chdir(request["project_dir"])
    sys.path.insert(0, request["project_dir"])
    tracer = Tracer(request["versions_dirs"], request["project_dir"], request["trace"])
    contexts = _record_contexts(MigrationContext)
    event.listen(Engine, "before_cursor_execute", tracer.before)
    event.listen(Engine, "after_cursor_execute", tracer.after)
    event.listen(Engine, "handle_error", tracer.failed)
    event.listen(Engine, "commit", tracer.committed)

    config = Config(request["ini_path"]) if request["ini_path"] else Config()
    if not request["ini_path"]:
        config.set_main_option("script_location", request["script_location"])
    config.set_main_option("sqlalchemy.url", request["url"].replace("%", "%%"))
    result: dict[str, Any] = {"ok": True, "error": None}
    try:
        if request["command"] == "upgrade":
            command.upgrade(config, request["target"])
        else:
            command.downgrade(config, request["target"])
    except BaseException as error:  # the migration's failure is the result, not a crash
        result["ok"] = False
        result["error"] = _error_text(error)
    result["statements"] = tracer.statements
    result["commits"] = tracer.commits
    result.update(_version_table(contexts))
    return result


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
    request_path, result_path = sys.argv[1], sys.argv[2]
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    sys.stdin.close()
    result = run(request)
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
