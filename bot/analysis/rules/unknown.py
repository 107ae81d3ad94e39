"""Statements migsafe does not know: a notice to review them by hand, never silence.

A statement that could not be parsed at all is `unparsed-statement`'s (decided where the
dry-run's statements are collected); this rule takes the ones that parsed but whose
effect no rule understands, e.g. `ALTER TABLE ... OWNER TO` or `ALTER INDEX ... SET
TABLESPACE`, which lock or rewrite without any rule judging them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import Rule, Stage
from bot.analysis.rules.base import actions_of, finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

UNKNOWN_STATEMENT = RuleInfo(
    id="unknown-statement",
    family=Family.META,
    default_severity=Severity.NOTICE,
    summary="a statement whose effect no migsafe rule understands",
    explanation=(
        "migsafe classifies each statement of the migration (what it creates, drops, "
        "rewrites or locks) and judges it with its rules. A statement it parsed but does not "
        "know (an unusual ALTER TABLE clause, ALTER INDEX, CREATE RULE, ...) is judged by no "
        "rule, though it may take a lock or rewrite a table: review it by hand, and report "
        "it to migsafe if a rule should know it."
    ),
)

# Leading keywords of statements that are known and need no rule: no table lock worth
# reviewing, or code migsafe deliberately does not look into.
KNOWN_HARMLESS = frozenset(
    {
        "empty",
        "ROLLBACK",  # transaction-nesting's
        "ROLLBACK AND CHAIN",  # transaction-nesting's
        "ROLLBACK TO SAVEPOINT",
        "GRANT",
        "REVOKE",
        "ANALYZE",
        "DO",
        "CALL",
        "SAVEPOINT",
        "RELEASE",
        "NOTIFY",
        "LISTEN",
        "UNLISTEN",
        "SHOW",
        "EXPLAIN",
        "CHECKPOINT",
        "DISCARD",
        "SET TRANSACTION",
        "SET CONSTRAINTS",
        "SET SESSION",
        "CREATE SCHEMA",
        "CREATE FUNCTION",
        "CREATE OR REPLACE FUNCTION",
        "CREATE PROCEDURE",
        "CREATE OR REPLACE PROCEDURE",
        "CREATE DOMAIN",
        "CREATE ROLE",
        "CREATE USER",
        "ALTER ROLE",
        "ALTER USER",
        "ALTER DEFAULT PRIVILEGES",
        "CREATE COLLATION",
        "ALTER FUNCTION",
        "ALTER PROCEDURE",
        # catalog-only: volatile-default's advice adds the identity this way
        "ALTER TABLE ALTER COLUMN ADD GENERATED",
        "ALTER TABLE ALTER COLUMN SET STATISTICS",  # SHARE UPDATE EXCLUSIVE
    }
)


def check_unknown_statement(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    if stmt.parse_error is not None:
        return  # unparsed-statement reports it
    details = [
        action.detail or "?"
        for action in actions_of(stmt, ActionKind.OTHER)
        if not _known(action.detail)
    ]
    if details:
        what = ", ".join(dict.fromkeys(details))
        yield finding(
            UNKNOWN_STATEMENT,
            stmt,
            f"migsafe does not know what {what} does: no rule judged its locks or rewrites",
            advice=(
                "Check the PostgreSQL documentation of the statement for the lock it takes "
                "and whether it rewrites the table, and review it by hand."
            ),
        )


def _known(detail: str | None) -> bool:
    if detail is None:
        return False
    return detail in KNOWN_HARMLESS or " ".join(detail.split()[:3]) in KNOWN_HARMLESS


RULES: tuple[Rule, ...] = (
    Rule(
        UNKNOWN_STATEMENT,
        Stage.SQL,
        "check what the statement locks and rewrites by hand, or suppress it with a reason",
        judges=(ActionKind.OTHER,),
        check=check_unknown_statement,
    ),
)
