"""Column types that users of squawk and strong_migrations expect a hint about."""

from __future__ import annotations

from collections.abc import Iterator

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import PointsAt, Rule, Stage
from bot.analysis.rules.base import AnalysisOptions, finding
from bot.analysis.state import StreamState

PREFER_TIMESTAMPTZ = RuleInfo(
    id="prefer-timestamptz",
    family=Family.COMPATIBILITY,
    default_severity=Severity.NOTICE,
    summary="a column of type `timestamp without time zone`",
    explanation=(
        "`timestamp` (without time zone) stores a wall-clock time with no zone: values written "
        "by servers or sessions in different time zones can no longer be compared, and "
        "daylight-saving changes make some of them ambiguous. `timestamptz` stores an absolute "
        "instant (in UTC) at the same size and converts on input and output. In SQLAlchemy: "
        "`sa.DateTime(timezone=True)`."
    ),
)

_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE")


def _is_naive_timestamp(data_type: str | None) -> bool:
    if not data_type:
        return False
    # `timestamp(3)`, and arrays of it: `timestamp[]`, `timestamp(6)[][]`
    base = data_type.upper().split("[", 1)[0].split("(", 1)[0].strip()
    return base in _TIMESTAMP_TYPES


def check_timestamptz(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in stmt.actions:
        if action.kind not in _KINDS or not _is_naive_timestamp(action.data_type):
            continue
        yield finding(
            PREFER_TIMESTAMPTZ,
            stmt,
            f"{action.table}.{action.column} is `timestamp without time zone`: prefer timestamptz",
            advice=(
                f"Use timestamptz (in SQLAlchemy: sa.DateTime(timezone=True)) for "
                f"{action.table}.{action.column}."
            ),
        )


_KINDS = (ActionKind.ADD_COLUMN, ActionKind.ALTER_COLUMN_TYPE)

RULES: tuple[Rule, ...] = (
    Rule(
        PREFER_TIMESTAMPTZ,
        Stage.SQL,
        "timestamptz (in SQLAlchemy: sa.DateTime(timezone=True))",
        judges=_KINDS,
        check=check_timestamptz,
        points_at=PointsAt.TYPED_COLUMN,
    ),
)
