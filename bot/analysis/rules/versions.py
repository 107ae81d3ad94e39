"""Rules that depend on the PostgreSQL version the migrations will run on.

The version comes from `--pg-version`, the policy's `postgres_version`, or the sandbox
server's (`AnalysisOptions.pg_version`); unknown, these rules stay quiet. (The other
version-dependent judgements sit with their rules: a constant default rewriting the table
before 11 in `volatile-default`, ADD VALUE in a transaction before 12 in
`add-enum-value-in-transaction`, and the advice of `reindex-non-concurrently` before 12
and `require-concurrent-partition-detach` before 14.)
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.options import AnalysisOptions, PgVersion
from bot.analysis.rule import PointsAt, Rule, Stage
from bot.analysis.rules.base import finding
from bot.analysis.state import StreamState

CONCURRENT_INDEX_CORRUPTION = RuleInfo(
    id="concurrent-index-corruption",
    family=Family.LOCKING,
    default_severity=Severity.ERROR,
    summary="CREATE INDEX / REINDEX CONCURRENTLY on PostgreSQL 14.0 to 14.3 (silent corruption)",
    explanation=(
        "PostgreSQL 14.0 to 14.3 had a bug (fixed in 14.4) by which CREATE INDEX CONCURRENTLY "
        "and REINDEX CONCURRENTLY could miss rows updated while the index was built: the "
        "index silently lacks them, and queries using it return wrong results. Upgrade the "
        "server to 14.4 or later before building indexes concurrently; indexes built "
        "concurrently on an affected version should be checked (`pg_amcheck "
        "--heapallindexed`) and rebuilt."
    ),
)

_LAST_AFFECTED_MINOR = 3  # 14.0 to 14.3; fixed in 14.4


def _affected(version: PgVersion | None) -> bool:
    """A known 14.0 to 14.3. A bare "14" (minor unknown) does not count: in practice it
    names a current 14.x, long past the fix."""
    if version is None or version.major != 14 or version.minor is None:
        return False
    return version.minor <= _LAST_AFFECTED_MINOR


def check_concurrent_index_corruption(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    if not _affected(options.pg_version):
        return
    for action in stmt.actions:
        if action.kind in _KINDS and action.concurrently:
            verb = "REINDEX" if action.kind is ActionKind.REINDEX else "CREATE INDEX"
            yield finding(
                CONCURRENT_INDEX_CORRUPTION,
                stmt,
                f"{verb} CONCURRENTLY of {action.name or action.table} on PostgreSQL "
                f"{options.pg_version}: 14.0 to 14.3 can build the index without rows "
                f"updated meanwhile (fixed in 14.4)",
                advice=(
                    "Upgrade the server to PostgreSQL 14.4 or later before this migration "
                    "runs; then check indexes built concurrently before the upgrade with "
                    "`pg_amcheck --heapallindexed` and REINDEX those it reports."
                ),
            )


_KINDS = (ActionKind.CREATE_INDEX, ActionKind.REINDEX)

RULES: tuple[Rule, ...] = (
    Rule(
        CONCURRENT_INDEX_CORRUPTION,
        Stage.SQL,
        "upgrade the server to 14.4 or later before building indexes concurrently",
        judges=_KINDS,
        check=check_concurrent_index_corruption,
        points_at=PointsAt.CREATE_INDEX,
    ),
)
