"""Names PostgreSQL would silently cut short."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import Action, ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import PointsAt, Rule, Stage
from bot.analysis.rules.base import finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

IDENTIFIER_TOO_LONG = RuleInfo(
    id="identifier-too-long",
    family=Family.COMPATIBILITY,
    default_severity=Severity.WARNING,
    summary="a new name longer than PostgreSQL's 63 bytes",
    explanation=(
        "PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1) with only a notice. "
        "The object then exists under a shorter name than the one in the migration and the "
        "models: a later `op.drop_constraint` or `op.drop_index` by the full name fails, "
        "autogenerate sees a difference on every run, and two long names that share their "
        "first 63 bytes collide. Choose a shorter name (SQLAlchemy's naming convention can "
        "use `%(column_0N_name)s`-style tokens, or a hash suffix)."
    ),
)

MAX_IDENTIFIER_BYTES = 63

# kind -> the field holding the name it creates
_NEW_NAMES = {
    ActionKind.CREATE_TABLE: "table",
    ActionKind.ADD_COLUMN: "column",
    ActionKind.CREATE_INDEX: "name",
    ActionKind.ADD_CONSTRAINT: "name",
    ActionKind.RENAME_TABLE: "name",
    ActionKind.RENAME_COLUMN: "name",
    ActionKind.CREATE_VIEW: "name",
    ActionKind.CREATE_SEQUENCE: "name",
    ActionKind.CREATE_TYPE: "name",
    ActionKind.CREATE_POLICY: "name",
}


def _new_name(action: Action) -> str | None:
    """The last part of the name the action creates (a schema is not created here)."""
    field = _NEW_NAMES.get(action.kind)
    value = getattr(action, field) if field else None
    return value.rsplit(".", 1)[-1].replace('"', "") if isinstance(value, str) else None


def check_identifier_length(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in stmt.actions:
        name = _new_name(action)
        if name is None:
            continue
        size = len(name.encode("utf-8"))
        if size <= MAX_IDENTIFIER_BYTES:
            continue
        kept = name.encode("utf-8")[:MAX_IDENTIFIER_BYTES].decode("utf-8", errors="ignore")
        yield finding(
            IDENTIFIER_TOO_LONG,
            stmt,
            f"the name {name} is {size} bytes: PostgreSQL keeps only the first "
            f"{MAX_IDENTIFIER_BYTES}, {kept}",
            advice=f"Choose a name of at most {MAX_IDENTIFIER_BYTES} bytes.",
        )


RULES: tuple[Rule, ...] = (
    Rule(
        IDENTIFIER_TOO_LONG,
        Stage.SQL,
        "a name of at most 63 bytes (PostgreSQL truncates longer ones)",
        judges=tuple(_NEW_NAMES),
        check=check_identifier_length,
        # It judges indexes, constraints and tables too: a batch finding stays on the `with`
        # line rather than landing on an unrelated add_column call.
        points_at=PointsAt.STATEMENT,
    ),
)
