"""What a run of the statement rules is told: the timeout limits, the rules switched on.

Its own module, below both the engine and the rules (each rule's check takes it), so that
neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnalysisOptions:
    lock_timeout_max_ms: float = 30_000  # the checklist's SET lock_timeout = '30s'
    statement_timeout_max_ms: float = 300_000  # the checklist's SET statement_timeout = '5min'
    enabled: frozenset[str] | None = None  # rule ids to run; None = all
    version_table: str = "alembic_version"  # Alembic's bookkeeping table, never judged
