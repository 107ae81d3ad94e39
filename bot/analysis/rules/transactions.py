"""Transaction boundaries: what must not share a transaction, and what must not end one.

Alembic runs the whole upgrade in one transaction by default (all new revisions
together, unless env.py sets `transaction_per_migration=True`); offline SQL shows it
as one BEGIN ... COMMIT, and `autocommit_block()` as a COMMIT ... BEGIN around its
statements. `StreamState.in_transaction` follows them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import Rule, Stage
from bot.analysis.rules.base import AUTOCOMMIT_HINT, actions_of, finding
from bot.analysis.state import ROLLBACKS, StreamState, name_key

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

VALIDATE_IN_SAME_TRANSACTION = RuleInfo(
    id="validate-in-same-transaction",
    family=Family.LOCKING,
    default_severity=Severity.WARNING,
    summary="VALIDATE CONSTRAINT in the same transaction as the ADD ... NOT VALID it follows",
    explanation=(
        "Adding a constraint NOT VALID is instant, and VALIDATE CONSTRAINT then scans the "
        "table under a SHARE UPDATE EXCLUSIVE lock that lets reads and writes go on. But the "
        "ADD took a stronger lock (ACCESS EXCLUSIVE for a CHECK, SHARE ROW EXCLUSIVE for a "
        "foreign key) that is held until the transaction ends: validating in the same "
        "transaction scans the whole table while that lock still blocks writes, so the "
        "two-step pattern gains nothing. Alembic runs every new revision in one transaction "
        "by default, so a VALIDATE in the next revision is still in it. Commit in between: "
        "`with op.get_context().autocommit_block():` around the VALIDATE, or "
        "`transaction_per_migration=True` in env.py with the VALIDATE in a later revision."
    ),
)

TRANSACTION_NESTING = RuleInfo(
    id="transaction-nesting",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="BEGIN, COMMIT or ROLLBACK written into the migration's SQL",
    explanation=(
        "Alembic wraps the migration in its own transaction. A COMMIT in `op.execute` ends "
        "it early: the statements before it are committed even if a later one fails, those "
        "after it run without a transaction, and Alembic's own COMMIT at the end finds no "
        "transaction. A BEGIN inside the transaction is ignored with a warning (so its COMMIT "
        "ends Alembic's transaction), and a ROLLBACK silently undoes the work done so far "
        "while the migration carries on and stamps the version table. To run a statement "
        "outside the transaction, use `with op.get_context().autocommit_block():`."
    ),
)

VACUUM_IN_TRANSACTION = RuleInfo(
    id="vacuum-in-transaction",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="VACUUM inside a transaction block (PostgreSQL refuses it)",
    explanation=(
        "PostgreSQL refuses VACUUM inside a transaction block (and inside a multi-statement "
        "string, which runs as one), and Alembic runs migrations inside one by default: the "
        "migration fails when it is deployed. Autovacuum usually makes a manual VACUUM "
        "unnecessary; if it is needed, run it in `with op.get_context().autocommit_block():` "
        "or outside the migration, after the deploy."
    ),
)


def check_validate_in_same_transaction(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    added_here = {
        (name_key(action.table), action.name)
        for action in actions_of(stmt, ActionKind.ADD_CONSTRAINT)
        if action.not_valid and action.table and action.name
    }
    for action in actions_of(stmt, ActionKind.VALIDATE_CONSTRAINT):
        if not action.table or not action.name:
            continue
        key = (name_key(action.table), action.name)
        if key not in added_here and key not in state.not_valid_in_transaction:
            continue
        yield finding(
            VALIDATE_IN_SAME_TRANSACTION,
            stmt,
            f"VALIDATE CONSTRAINT {action.name} on {action.table} runs in the transaction that "
            f"added it NOT VALID: the scan runs while the ADD's lock still blocks writes",
            advice=(
                f"Commit between the two steps, e.g. in Alembic:\n"
                f"{AUTOCOMMIT_HINT}\n"
                f'    op.execute("ALTER TABLE {action.table} VALIDATE CONSTRAINT {action.name}")\n'
                f"or move the VALIDATE to a later revision with "
                f"transaction_per_migration=True in env.py."
            ),
        )


def check_transaction_nesting(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    several = len(stmt.actions) > 1
    for action in stmt.actions:
        if action.kind is ActionKind.OTHER and action.detail in ROLLBACKS:
            yield _nesting(stmt, "ROLLBACK undoes the migration's work so far, and it carries on")
        elif action.kind is ActionKind.BEGIN and (state.in_transaction or several):
            yield _nesting(
                stmt, "BEGIN inside the migration's transaction is ignored; its COMMIT ends it"
            )
        elif action.kind is ActionKind.COMMIT and several:
            yield _nesting(stmt, "COMMIT inside op.execute ends the migration's transaction")
        elif action.kind is ActionKind.COMMIT and state.last_commit is not None:
            # Two COMMITs without a BEGIN between them: the earlier one was written into the
            # migration (Alembic's own, and autocommit_block's, come in BEGIN/COMMIT pairs).
            yield _nesting(
                state.last_commit,
                "COMMIT ends the migration's transaction early: the statements after it run "
                "without one",
            )


def _nesting(stmt: Statement, message: str) -> Finding:
    return finding(
        TRANSACTION_NESTING,
        stmt,
        message,
        advice=(
            "Remove the transaction control from the migration. To run statements outside "
            f"Alembic's transaction:\n{AUTOCOMMIT_HINT}\n    op.execute(...)"
        ),
    )


def check_vacuum_in_transaction(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    if not state.in_transaction and len(stmt.actions) == 1:
        return
    for action in stmt.actions:
        if action.kind in _VACUUM_KINDS:
            target = f" {action.table}" if action.table else ""
            yield finding(
                VACUUM_IN_TRANSACTION,
                stmt,
                f"VACUUM{target} runs inside a transaction block: PostgreSQL refuses it",
                advice=f"{AUTOCOMMIT_HINT}\n    op.execute({stmt.sql.strip().rstrip(';')!r})",
            )


_VACUUM_KINDS = (ActionKind.VACUUM, ActionKind.VACUUM_FULL)

RULES: tuple[Rule, ...] = (
    Rule(
        VALIDATE_IN_SAME_TRANSACTION,
        Stage.SQL,
        "VALIDATE CONSTRAINT in a later transaction (transaction_per_migration, a later revision)",
        judges=(ActionKind.VALIDATE_CONSTRAINT,),
        check=check_validate_in_same_transaction,
    ),
    Rule(
        TRANSACTION_NESTING,
        Stage.SQL,
        "let Alembic manage the transaction; use autocommit_block() for what must run outside it",
        judges=(ActionKind.BEGIN, ActionKind.COMMIT, ActionKind.OTHER),
        check=check_transaction_nesting,
    ),
    Rule(
        VACUUM_IN_TRANSACTION,
        Stage.SQL,
        "run VACUUM outside the migration, or in an autocommit_block()",
        judges=_VACUUM_KINDS,
        check=check_vacuum_in_transaction,
    ),
)
