"""Column types that outgrow themselves: 32-bit keys and `json`.

Judged on new tables too: that is where the type is chosen, and changing it later is a
rewrite of a big table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import Action, ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import PointsAt, Rule, Stage
from bot.analysis.rules.base import actions_of, finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

PREFER_BIGINT = RuleInfo(
    id="prefer-bigint",
    family=Family.COMPATIBILITY,
    default_severity=Severity.WARNING,
    summary="a new integer / smallint primary key, identity or serial column",
    explanation=(
        "A 32-bit key runs out at 2,147,483,647 (a smallint at 32,767): inserts then fail "
        "until the column is converted, and converting a big table's key to bigint rewrites "
        "it and every index and foreign key that uses it, under an ACCESS EXCLUSIVE lock. "
        "Sequences also advance on rolled-back inserts, so the limit comes sooner than the "
        "row count suggests. bigint costs 4 more bytes per row: use bigint (bigserial, "
        "`GENERATED ... AS IDENTITY` on bigint; in SQLAlchemy `sa.BigInteger`) for keys."
    ),
)

PREFER_JSONB = RuleInfo(
    id="prefer-jsonb",
    family=Family.COMPATIBILITY,
    default_severity=Severity.NOTICE,
    summary="a column of type `json` rather than `jsonb`",
    explanation=(
        "`json` stores the text as given and re-parses it on every access; it has no "
        "equality operator (so no DISTINCT, GROUP BY or UNIQUE on it) and cannot be indexed "
        "with GIN. `jsonb` stores the parsed form, supports containment (`@>`) and GIN "
        "indexes, and is what PostgreSQL recommends unless the exact text (key order, "
        "duplicate keys, whitespace) must be kept. In SQLAlchemy: "
        "`sqlalchemy.dialects.postgresql.JSONB`."
    ),
)

# 32- and 16-bit integer types as the classifier writes them, with their 64-bit form
_SMALL_INTEGERS = {
    "INT": "bigint",
    "INTEGER": "bigint",
    "INT4": "bigint",
    "SMALLINT": "bigint",
    "INT2": "bigint",
    "SERIAL": "bigserial",
    "SERIAL4": "bigserial",
    "SMALLSERIAL": "bigserial",
    "SERIAL2": "bigserial",
}
_SERIALS = frozenset({"SERIAL", "SERIAL4", "SMALLSERIAL", "SERIAL2"})
_COLUMN_KINDS = (ActionKind.ADD_COLUMN, ActionKind.ALTER_COLUMN_TYPE)


def _base_type(action: Action) -> str:
    return (action.data_type or "").upper().split("(", 1)[0].strip()


def check_prefer_bigint(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    # The table's own key: a primary key of one column. A composite key (an association
    # table's pair of foreign keys) takes its columns' type from the tables they reference.
    keys = {
        action.columns[0]
        for action in actions_of(stmt, ActionKind.ADD_CONSTRAINT)
        if action.constraint_type == "primary_key" and len(action.columns) == 1
    }
    for action in actions_of(stmt, ActionKind.ADD_COLUMN):
        base = _base_type(action)
        wider = _SMALL_INTEGERS.get(base)
        if wider is None:
            continue
        if action.identity:
            role = "an identity column"
        elif base in _SERIALS:
            role = f"a {base.lower()} column"
        elif action.column in keys:
            role = "the primary key"
        else:
            continue
        yield finding(
            PREFER_BIGINT,
            stmt,
            f"{action.table}.{action.column} is {role} of type {base.lower()}: it runs out of "
            f"values long before the table stops growing",
            advice=(
                f"Declare {action.column} as {wider} (in SQLAlchemy: sa.BigInteger); "
                f"columns that reference it should be bigint too."
            ),
        )


def check_prefer_jsonb(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in stmt.actions:
        if action.kind not in _COLUMN_KINDS or _base_type(action).split("[", 1)[0] != "JSON":
            continue
        yield finding(
            PREFER_JSONB,
            stmt,
            f"{action.table}.{action.column} is `json`: prefer jsonb",
            advice=(
                f"Use jsonb for {action.table}.{action.column} (in SQLAlchemy: "
                f"sqlalchemy.dialects.postgresql.JSONB)."
            ),
        )


RULES: tuple[Rule, ...] = (
    Rule(
        PREFER_BIGINT,
        Stage.SQL,
        "bigint (BigInteger, or Identity on a bigint) for keys",
        judges=(ActionKind.ADD_COLUMN,),
        check=check_prefer_bigint,
        points_at=PointsAt.ADD_COLUMN,
    ),
    Rule(
        PREFER_JSONB,
        Stage.SQL,
        "jsonb (postgresql.JSONB)",
        judges=_COLUMN_KINDS,
        check=check_prefer_jsonb,
        points_at=PointsAt.TYPED_COLUMN,
    ),
)
