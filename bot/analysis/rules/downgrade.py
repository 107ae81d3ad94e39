"""The downgrade path: rolling back must not destroy data that was there before the change."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bot.analysis.model import Action, ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import Rule, Stage
from bot.analysis.rules.base import finding, tables_of
from bot.analysis.state import StreamState, rebuilt_indexes

DESTRUCTIVE_DOWNGRADE = RuleInfo(
    id="destructive-downgrade",
    # Not DESTRUCTIVE: that family's severity follows approvals, and rollback safety needs none.
    family=Family.REVISION,
    default_severity=Severity.ERROR,
    summary="the downgrade drops or truncates something the upgrade did not create",
    explanation=(
        "A downgrade that drops the table, column or index its own upgrade added is routine, "
        "and so is one that restores what the upgrade dropped (a `DROP ... IF EXISTS` of it "
        "before re-creating it destroys nothing). "
        "One that drops or truncates something that existed before the change destroys data "
        "on rollback, exactly when an incident is already under way (the checklist: verify "
        "that rollback is safe and loses no data). Make the downgrade restore the previous "
        "state without dropping pre-existing data, or, where that is impossible, make it fail "
        "loudly (`raise RuntimeError(...)` explaining that rollback needs a restore from "
        "backup) instead of silently destroying data."
    ),
)

_DROPPING = frozenset(
    {ActionKind.DROP_TABLE, ActionKind.DROP_COLUMN, ActionKind.DROP_INDEX, ActionKind.TRUNCATE}
)


def destructive_downgrade_findings(
    upgrade: Iterable[Statement],
    downgrade: Iterable[Statement],
) -> list[Finding]:
    """Drops and truncates in `downgrade` of objects that neither stream created."""
    state = StreamState()
    for stmt in upgrade:
        state.enter(stmt)
        state.apply(stmt)
    findings: list[Finding] = []
    stream = list(downgrade)
    rebuilds = rebuilt_indexes(stream)
    for position, stmt in enumerate(stream):
        state.enter(stmt)
        state.rebuilding = rebuilds.get(position, {})
        findings.extend(_check(stmt, state))
        state.apply(stmt)
    return findings


def _check(stmt: Statement, state: StreamState) -> Iterator[Finding]:
    for action in stmt.actions:
        if action.kind not in _DROPPING:
            continue
        what = _destroyed(action, state)
        if what is not None:
            yield finding(
                DESTRUCTIVE_DOWNGRADE,
                stmt,
                f"the downgrade {what}, which existed before this change: rolling back destroys it",
                advice=(
                    "Restore the previous state without dropping pre-existing data, or make "
                    "the downgrade refuse to run:\n"
                    "def downgrade() -> None:\n"
                    '    raise RuntimeError("irreversible: restore from backup to roll back")'
                ),
            )


def _destroyed(action: Action, state: StreamState) -> str | None:
    """What the action destroys that existed before, described; None when nothing. What
    the upgrade (or the downgrade) created, or dropped and not created again, is not."""
    if action.kind is ActionKind.DROP_COLUMN:
        table, column = action.table, action.column
        if (
            state.is_existing_table(table)
            and not state.is_new_column(table, column)
            and not state.is_dropped_column(table, column)
        ):
            return f"drops column {table}.{column}"
        return None
    if action.kind is ActionKind.DROP_INDEX:
        name = action.name
        if state.is_new_index(name) or state.is_rebuilt_index(name) or state.is_dropped_index(name):
            return None
        return f"drops index {name}"
    existing = [
        t for t in tables_of(action) if state.is_existing_table(t) and not state.is_dropped_table(t)
    ]
    if not existing:
        return None
    verb = "drops table" if action.kind is ActionKind.DROP_TABLE else "truncates"
    return f"{verb} {', '.join(existing)}"


RULES: tuple[Rule, ...] = (
    Rule(
        DESTRUCTIVE_DOWNGRADE,
        Stage.DOWNGRADE,
        "restore the previous state without dropping pre-existing data, or make downgrade() raise",
        check=destructive_downgrade_findings,
    ),
)
