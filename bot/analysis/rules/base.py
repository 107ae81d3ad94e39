"""What every statement rule shares: its options, the check signature, building a finding."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.analysis.model import Action, ActionKind, Finding, RuleInfo, Statement
from bot.analysis.options import AnalysisOptions as AnalysisOptions  # the checks' signature
from bot.analysis.state import StreamState

Check = Callable[[Statement, StreamState, AnalysisOptions], Iterable[Finding]]

AUTOCOMMIT_HINT = "with op.get_context().autocommit_block():"


def finding(info: RuleInfo, stmt: Statement, message: str, advice: str | None = None) -> Finding:
    """A finding of `info` at `stmt`, with the rule's default severity."""
    return Finding(
        rule=info.id,
        severity=info.default_severity,
        message=message,
        path=stmt.path,
        line=stmt.line,
        revision=stmt.revision,
        statement=stmt.sql,
        phase=stmt.phase,
        advice=advice,
        source="sql",
    )


def actions_of(stmt: Statement, kind: ActionKind) -> Iterable[Action]:
    return (action for action in stmt.actions if action.kind is kind)


def tables_of(action: Action) -> tuple[str, ...]:
    """The tables an action names: `tables` for TRUNCATE / DROP TABLE a, b, else `table`."""
    if action.tables:
        return action.tables
    return (action.table,) if action.table else ()


def column_list(columns: Iterable[str]) -> str:
    return ", ".join(columns)


def py_list(columns: Iterable[str]) -> str:
    return "[" + ", ".join(repr(column) for column in columns) + "]"


def bare_name(name: str | None) -> str:
    """A name without schema or quotes: what a rename or a catalog lookup takes."""
    return (name or "").rsplit(".", 1)[-1].replace('"', "")
