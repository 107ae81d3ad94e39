"""Runs the statement rules over the dry-run's statement streams.

Statements must already be classified (`bot.analysis.parse.parse_statements`).
Findings carry each rule's default severity; the caller applies the environment
matrix. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from bot.analysis.model import ActionKind, Finding, Statement
from bot.analysis.options import AnalysisOptions as AnalysisOptions
from bot.analysis.rules import RULE_KINDS, STATEMENT_RULES
from bot.analysis.rules.base import Check
from bot.analysis.rules.downgrade import DESTRUCTIVE_DOWNGRADE, destructive_downgrade_findings
from bot.analysis.rules.timeouts import with_revision_counts
from bot.analysis.state import StreamState, name_key, rebuilt_indexes

Dispatch = dict[ActionKind, tuple[Check, ...]]


def analyze_upgrade(
    statements: Iterable[Statement], options: AnalysisOptions | None = None
) -> list[Finding]:
    """Findings of the statement rules over the upgrade stream, in statement order.

    The timeout rules report once per revision (at its first offending statement)."""
    options = options or AnalysisOptions()
    dispatch = _dispatch(options.enabled)
    state = StreamState()
    findings: list[Finding] = []
    stream = [s for s in statements if s.actions and not _is_bookkeeping(s, options.version_table)]
    rebuilds = rebuilt_indexes(stream)
    for position, stmt in enumerate(stream):
        actions = stmt.actions
        state.enter(stmt)
        state.rebuilding = rebuilds.get(position, {})
        checks = (
            dispatch.get(actions[0].kind, ())
            if len(actions) == 1
            else _checks_for_all(stmt, dispatch)
        )
        for check in checks:
            findings.extend(check(stmt, state, options))
        state.apply(stmt)
    return with_revision_counts(findings, state.per_revision)


def analyze_downgrade(
    upgrade: Iterable[Statement],
    downgrade: Iterable[Statement],
    options: AnalysisOptions | None = None,
) -> list[Finding]:
    """destructive-downgrade: the downgrade drops or truncates what the upgrade did not create."""
    options = options or AnalysisOptions()
    if options.enabled is not None and DESTRUCTIVE_DOWNGRADE.id not in options.enabled:
        return []
    version_table = options.version_table
    return destructive_downgrade_findings(
        (s for s in upgrade if not _is_bookkeeping(s, version_table)),
        (s for s in downgrade if not _is_bookkeeping(s, version_table)),
    )


@lru_cache(maxsize=32)
def _dispatch(enabled: frozenset[str] | None) -> Dispatch:
    """Action kind -> the checks interested in it, in STATEMENT_RULES order."""
    by_kind: dict[ActionKind, list[Check]] = {}
    for info, check in STATEMENT_RULES:
        if enabled is not None and info.id not in enabled:
            continue
        for kind in RULE_KINDS[info.id]:
            by_kind.setdefault(kind, []).append(check)
    return {kind: tuple(checks) for kind, checks in by_kind.items()}


def _checks_for_all(stmt: Statement, dispatch: Dispatch) -> tuple[Check, ...]:
    """The checks for a multi-clause statement, each once, in rule order."""
    seen: list[Check] = []
    for action in stmt.actions:
        for check in dispatch.get(action.kind, ()):
            if check not in seen:
                seen.append(check)
    order = _rule_order()
    return tuple(sorted(seen, key=order.__getitem__))


@lru_cache(maxsize=1)
def _rule_order() -> dict[Check, int]:
    return {check: position for position, (_, check) in enumerate(STATEMENT_RULES)}


def _is_bookkeeping(stmt: Statement, version_table: str) -> bool:
    """Alembic's own CREATE TABLE / INSERT / UPDATE / DELETE on its version table."""
    table = stmt.actions[0].table if stmt.actions else None
    if table is None or version_table not in table:  # the cheap test first
        return False
    return name_key(table).rsplit(".", 1)[-1] == version_table
