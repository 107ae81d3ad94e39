"""Building and dropping indexes without blocking writes."""

from __future__ import annotations

from collections.abc import Iterator

from bot.analysis.model import (
    Action,
    ActionKind,
    Family,
    Finding,
    RuleInfo,
    Severity,
    Statement,
)
from bot.analysis.rule import PointsAt, Rule, Stage
from bot.analysis.rules.base import (
    AUTOCOMMIT_HINT,
    AnalysisOptions,
    actions_of,
    column_list,
    finding,
    py_list,
)
from bot.analysis.state import StreamState

CREATE_INDEX_NON_CONCURRENTLY = RuleInfo(
    id="create-index-non-concurrently",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="CREATE INDEX without CONCURRENTLY on an existing table",
    explanation=(
        "A plain CREATE INDEX holds a SHARE lock on the table for the whole build: reads go "
        "on, but every INSERT, UPDATE and DELETE waits until the index is built, which on a big "
        "table takes minutes. CREATE INDEX CONCURRENTLY builds it without blocking writes. It "
        "cannot run inside a transaction, so in Alembic wrap it in "
        "`with op.get_context().autocommit_block():` and pass "
        "`postgresql_concurrently=True` to `op.create_index`. If it fails it leaves an INVALID "
        "index behind: drop it and retry."
    ),
)

DROP_INDEX_NON_CONCURRENTLY = RuleInfo(
    id="drop-index-non-concurrently",
    family=Family.LOCKING,
    default_severity=Severity.WARNING,
    summary="DROP INDEX without CONCURRENTLY of an index that existed before this change",
    explanation=(
        "A plain DROP INDEX takes an ACCESS EXCLUSIVE lock on the index's table: while it "
        "waits for running queries to finish, every later query on the table queues behind "
        "it. DROP INDEX CONCURRENTLY waits without blocking them. It cannot run inside a "
        "transaction: in Alembic use `with op.get_context().autocommit_block():` and "
        "`op.drop_index(..., postgresql_concurrently=True)`."
    ),
)

CONCURRENTLY_IN_TRANSACTION = RuleInfo(
    id="concurrently-in-transaction",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="CREATE/DROP INDEX CONCURRENTLY inside a transaction block (PostgreSQL refuses it)",
    explanation=(
        "PostgreSQL refuses CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY and REINDEX "
        "CONCURRENTLY inside a transaction block, and Alembic runs migrations inside one by "
        "default: the migration fails when it is deployed. Run the statement in "
        "`with op.get_context().autocommit_block():`, which commits the migration's "
        "transaction before it and opens a new one after it (a session SET such as "
        "lock_timeout survives; SET LOCAL does not)."
    ),
)


def _index_call(action: Action) -> str:
    columns = py_list(action.columns) if action.columns else "[<columns>]"
    unique = ", unique=True" if action.unique else ""
    return (
        f'op.create_index("{action.name or "<name>"}", "{action.table}", {columns}'
        f"{unique}, postgresql_concurrently=True)"
    )


def check_create_index(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.CREATE_INDEX):
        if action.concurrently or not state.is_existing_table(action.table):
            continue
        unique = "UNIQUE " if action.unique else ""
        name = action.name or "<name>"
        columns = column_list(action.columns) or "<columns>"
        yield finding(
            CREATE_INDEX_NON_CONCURRENTLY,
            stmt,
            f"CREATE {unique}INDEX {name} on {action.table} without CONCURRENTLY blocks writes "
            f"to {action.table} for the whole build",
            advice=(
                f"CREATE {unique}INDEX CONCURRENTLY {name} ON {action.table} ({columns});\n"
                f"# in Alembic:\n"
                f"{AUTOCOMMIT_HINT}\n"
                f"    {_index_call(action)}"
            ),
        )


def check_drop_index(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.DROP_INDEX):
        if action.concurrently or not action.name or state.is_new_index(action.name):
            continue
        table = f', table_name="{action.table}"' if action.table else ""
        yield finding(
            DROP_INDEX_NON_CONCURRENTLY,
            stmt,
            f"DROP INDEX {action.name} without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on "
            f"its table",
            advice=(
                f"DROP INDEX CONCURRENTLY IF EXISTS {action.name};\n"
                f"# in Alembic:\n"
                f"{AUTOCOMMIT_HINT}\n"
                f'    op.drop_index("{action.name}"{table}, postgresql_concurrently=True)'
            ),
        )


# (DETACH PARTITION ... CONCURRENTLY is refused inside a transaction block too.)
_CONCURRENT_KINDS = (
    ActionKind.CREATE_INDEX,
    ActionKind.DROP_INDEX,
    ActionKind.REINDEX,
    ActionKind.DETACH_PARTITION,
)


def check_concurrently_in_transaction(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    if not state.in_transaction:
        return
    for action in stmt.actions:
        if action.concurrently and action.kind in _CONCURRENT_KINDS:
            verb = action.kind.value.replace("_", " ").upper()
            call = (
                _index_call(action)
                if action.kind is ActionKind.CREATE_INDEX
                else f"op.execute({stmt.sql.strip().rstrip(';')!r})"
            )
            yield finding(
                CONCURRENTLY_IN_TRANSACTION,
                stmt,
                f"{verb} CONCURRENTLY {action.name or action.table} runs inside a "
                f"transaction block: PostgreSQL refuses it",
                advice=f"{AUTOCOMMIT_HINT}\n    {call}",
            )


RULES: tuple[Rule, ...] = (
    Rule(
        CREATE_INDEX_NON_CONCURRENTLY,
        Stage.SQL,
        "CREATE INDEX CONCURRENTLY, in an autocommit block",
        judges=(ActionKind.CREATE_INDEX,),
        check=check_create_index,
        points_at=PointsAt.CREATE_INDEX,
    ),
    Rule(
        DROP_INDEX_NON_CONCURRENTLY,
        Stage.SQL,
        "DROP INDEX CONCURRENTLY, in an autocommit block",
        judges=(ActionKind.DROP_INDEX,),
        check=check_drop_index,
        points_at=PointsAt.DROP_INDEX,
    ),
    Rule(
        CONCURRENTLY_IN_TRANSACTION,
        Stage.SQL,
        "run the CONCURRENTLY statement in `with op.get_context().autocommit_block():`",
        judges=_CONCURRENT_KINDS,
        check=check_concurrently_in_transaction,
    ),
)
