"""The checklist's lock_timeout (≤ 30s) and statement_timeout (≤ 5min) requirements.

Only the first offending statement of each revision yields a finding; the others are
counted in `StreamState.per_revision`, and the engine adds the count to the message.
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.analysis.durations import format_ms
from bot.analysis.model import (
    Action,
    ActionKind,
    Family,
    Finding,
    RuleInfo,
    Severity,
    Statement,
)
from bot.analysis.rule import Rule, Stage
from bot.analysis.rules.base import AnalysisOptions, finding, tables_of
from bot.analysis.state import StreamState, Timeout

MISSING_LOCK_TIMEOUT = RuleInfo(
    id="missing-lock-timeout",
    family=Family.TIMEOUT,
    default_severity=Severity.ERROR,
    summary="a lock-taking statement runs without `SET lock_timeout` (≤ 30s) in effect",
    explanation=(
        "A statement that needs a lock on a busy table waits behind every running "
        "transaction, and while it waits every later query on that table queues behind it: "
        "one slow report can take the application down. `lock_timeout` makes the migration "
        "give up instead (and it can be retried). The checklist requires "
        "`SET lock_timeout = '30s';` before the first lock-taking statement, e.g. "
        "`op.execute(\"SET lock_timeout = '30s'\")` at the start of `upgrade()` (a session "
        "SET survives `autocommit_block()`, SET LOCAL does not)."
    ),
)

MISSING_STATEMENT_TIMEOUT = RuleInfo(
    id="missing-statement-timeout",
    family=Family.TIMEOUT,
    default_severity=Severity.ERROR,
    summary="a lock-taking statement runs without `SET statement_timeout` (≤ 5min) in effect",
    explanation=(
        "Without a statement timeout a rewrite, index build or backfill can run (and hold its "
        "locks) for as long as the table is big, with no point at which anyone intervenes. "
        "The checklist requires `SET statement_timeout = '5min';` before it, e.g. "
        "`op.execute(\"SET statement_timeout = '5min'\")` at the start of `upgrade()`. Work that "
        "legitimately takes longer belongs outside the migration (a batched backfill job)."
    ),
)

# Statement kinds that lock the table they name (when it already existed).
TABLE_LOCKING_KINDS = frozenset(
    {
        ActionKind.DROP_TABLE,
        ActionKind.RENAME_TABLE,
        ActionKind.ADD_COLUMN,
        ActionKind.DROP_COLUMN,
        ActionKind.RENAME_COLUMN,
        ActionKind.ALTER_COLUMN_TYPE,
        ActionKind.SET_NOT_NULL,
        ActionKind.DROP_NOT_NULL,
        ActionKind.SET_DEFAULT,
        ActionKind.DROP_DEFAULT,
        ActionKind.CREATE_INDEX,
        ActionKind.ADD_CONSTRAINT,
        ActionKind.DROP_CONSTRAINT,
        ActionKind.VALIDATE_CONSTRAINT,
        ActionKind.TRUNCATE,
        ActionKind.UPDATE,
        ActionKind.DELETE,
        ActionKind.ENABLE_RLS,
        ActionKind.DISABLE_RLS,
        ActionKind.FORCE_RLS,
        ActionKind.NO_FORCE_RLS,
        ActionKind.CREATE_POLICY,
        ActionKind.DROP_POLICY,
        ActionKind.ALTER_POLICY,
        ActionKind.VACUUM_FULL,
        ActionKind.CLUSTER,
        ActionKind.REINDEX,
        ActionKind.LOCK_TABLE,
        ActionKind.DROP_TRIGGER,
        ActionKind.ATTACH_PARTITION,
        ActionKind.DETACH_PARTITION,
        ActionKind.SET_LOGGED,
        ActionKind.SET_UNLOGGED,
    }
)
# Kinds that can lock another (referenced) table even when their own table is new.
LOCKING_KINDS = TABLE_LOCKING_KINDS | {ActionKind.CREATE_TABLE, ActionKind.DROP_INDEX}


def locked_table(action: Action, state: StreamState) -> str | None:
    """The existing table this action locks, or None when it locks none."""
    kind = action.kind
    if kind is ActionKind.DROP_INDEX:
        if state.is_new_index(action.name):
            return None
        return action.table or action.name or "<index>"
    if action.references and not state.is_existing_table(action.table):
        # FK from a new table: locks the referenced table SHARE ROW EXCLUSIVE
        return action.references if state.is_existing_table(action.references) else None
    if kind is ActionKind.CREATE_TABLE:
        return None
    for table in tables_of(action):
        if state.is_existing_table(table):
            return table
    return None if tables_of(action) else "<table>"


def _locking_action(stmt: Statement, state: StreamState) -> tuple[Action, str] | None:
    for action in stmt.actions:
        if action.kind in LOCKING_KINDS:
            table = locked_table(action, state)
            if table is not None:
                return action, table
    return None


def _problem(timeout: Timeout | None, setting: str, max_ms: float) -> str | None:
    """Why the timeout in effect does not meet the checklist, or None when it does."""
    if timeout is None:
        return f"no {setting} is set"
    if timeout.unlimited:
        return f"{setting} is {timeout.text} (no limit)"
    if timeout.ms is not None and timeout.ms > max_ms:
        return f"{setting} is {timeout.text}"
    return None


def _describe(action: Action, table: str) -> str:
    """The lock-taking operation, for a message: "ADD COLUMN on users"."""
    if action.kind is ActionKind.DROP_INDEX:
        return f"DROP INDEX {action.name}"
    if action.references == table and action.table != table:
        return f"a FOREIGN KEY from {action.table} to {table}"
    return f"{action.kind.value.replace('_', ' ').upper()} on {table}"


def _check(
    info: RuleInfo, setting: str, max_ms: float, stmt: Statement, state: StreamState
) -> Iterator[Finding]:
    problem = _problem(state.timeout(setting), setting, max_ms)
    if problem is None:
        return
    locking = _locking_action(stmt, state)
    if locking is None:
        return
    # One finding per revision: later offenders are only counted (see with_revision_counts).
    key = (info.id, stmt.revision)
    count = state.per_revision.get(key, 0)
    state.per_revision[key] = count + 1
    if count:
        return
    yield finding(
        info,
        stmt,
        f"{problem} at {_describe(*locking)}; the checklist requires ≤ {format_ms(max_ms)}",
        advice=(
            f"Set it before the first lock-taking statement of the migration:\n"
            f"SET {setting} = '{format_ms(max_ms)}';\n"
            f"-- in Alembic, at the start of upgrade():\n"
            f"op.execute(\"SET {setting} = '{format_ms(max_ms)}'\")"
        ),
    )


def check_lock_timeout(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    return _check(MISSING_LOCK_TIMEOUT, "lock_timeout", options.lock_timeout_max_ms, stmt, state)


def check_statement_timeout(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    return _check(
        MISSING_STATEMENT_TIMEOUT,
        "statement_timeout",
        options.statement_timeout_max_ms,
        stmt,
        state,
    )


PER_REVISION = frozenset({MISSING_LOCK_TIMEOUT.id, MISSING_STATEMENT_TIMEOUT.id})


def with_revision_counts(
    findings: list[Finding], counts: dict[tuple[str, str | None], int]
) -> list[Finding]:
    """Add to each once-per-revision finding how many statements of its revision it stands for."""
    for f in findings:
        if f.rule in PER_REVISION:
            f.message = _with_count(f, counts.get((f.rule, f.revision), 1))
    return findings


def _with_count(f: Finding, count: int) -> str:
    where = f"revision {f.revision}" if f.revision else "this migration"
    plural = "statement" if count == 1 else "statements"
    return f"{f.message} ({count} lock-taking {plural} in {where} without it)"


RULES: tuple[Rule, ...] = (
    Rule(
        MISSING_LOCK_TIMEOUT,
        Stage.SQL,
        "SET lock_timeout = '30s' (or less) before the first statement that takes a lock",
        judges=tuple(LOCKING_KINDS),
        check=check_lock_timeout,
    ),
    Rule(
        MISSING_STATEMENT_TIMEOUT,
        Stage.SQL,
        "SET statement_timeout = '5min' (or less) before the first statement that takes a lock",
        judges=tuple(LOCKING_KINDS),
        check=check_statement_timeout,
    ),
)
