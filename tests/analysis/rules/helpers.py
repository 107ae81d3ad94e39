"""Running the statement rules on SQL text, as the dry-run would hand it over."""

from __future__ import annotations

from collections.abc import Sequence

from bot.analysis.engine import AnalysisOptions, analyze_downgrade, analyze_upgrade
from bot.analysis.model import Finding, Phase, Severity, Statement
from bot.analysis.options import parse_pg_version
from bot.analysis.parse import parse_statements, split_sql

TIMEOUTS = "SET lock_timeout = '30s';\nSET statement_timeout = '5min';\n"


def statements(sql: str, phase: Phase = "upgrade", revision: str = "r1") -> list[Statement]:
    """The statements of `sql`, classified, all from one revision."""
    pieces = split_sql(sql)
    return parse_statements(
        Statement(sql=piece, phase=phase, index=i, revision=revision, path="m.py", line=i + 1)
        for i, piece in enumerate(pieces)
    )


def revisions(*parts: tuple[str, str], phase: Phase = "upgrade") -> list[Statement]:
    """Statements of several revisions in order: (revision, sql) pairs."""
    stream: list[Statement] = []
    for revision, sql in parts:
        stream += statements(sql, phase, revision)
    return stream


def run(
    sql: str | Sequence[Statement],
    *rules: str,
    lock_timeout_max_ms: float = 30_000,
    pg_version: str | None = None,
) -> list[Finding]:
    """Findings of `rules` (all when none are named) over the upgrade `sql`, for a server of
    `pg_version` (unknown when None)."""
    stream = statements(sql) if isinstance(sql, str) else list(sql)
    enabled = frozenset(rules) if rules else None
    options = AnalysisOptions(
        lock_timeout_max_ms=lock_timeout_max_ms,
        enabled=enabled,
        pg_version=parse_pg_version(pg_version) if pg_version else None,
    )
    return analyze_upgrade(stream, options)


def in_transaction(sql: str) -> str:
    """`sql` as Alembic's offline mode emits it: in BEGIN..COMMIT, with the checklist's timeouts."""
    return f"BEGIN;\n{TIMEOUTS}{sql}\nCOMMIT;"


def downgrade_findings(upgrade_sql: str, downgrade_sql: str) -> list[Finding]:
    return analyze_downgrade(
        statements(upgrade_sql), statements(downgrade_sql, phase="downgrade"), AnalysisOptions()
    )


def ids(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]
