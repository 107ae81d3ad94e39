"""What a run of the statement rules is told: the timeout limits, the rules switched on,
the PostgreSQL version the SQL will run on.

Its own module, below both the engine and the rules (each rule's check takes it), so that
neither imports the other for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple


class PgVersion(NamedTuple):
    """A PostgreSQL server version: major, and minor when known (9.6 is (9, 6))."""

    major: int
    minor: int | None = None

    def __str__(self) -> str:
        return str(self.major) if self.minor is None else f"{self.major}.{self.minor}"


_VERSION = re.compile(r"(?:PostgreSQL\s+)?(\d+)(?:\.(\d+))?")


def parse_pg_version(text: str) -> PgVersion | None:
    """ "14", "14.2", "9.6", or a server's own "15.18 (Debian 15.18-0+deb12u1)"; None when
    `text` does not start with a version."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    major, minor = int(match.group(1)), match.group(2)
    return PgVersion(major, int(minor) if minor is not None else None)


@dataclass(frozen=True)
class AnalysisOptions:
    lock_timeout_max_ms: float = 30_000  # the checklist's SET lock_timeout = '30s'
    statement_timeout_max_ms: float = 300_000  # the checklist's SET statement_timeout = '5min'
    enabled: frozenset[str] | None = None  # rule ids to run; None = all
    version_table: str = "alembic_version"  # Alembic's bookkeeping table, never judged
    # The server the migrations will run on (--pg-version, the policy's postgres_version,
    # else the sandbox server's): None when unknown, and the rules then assume a current one.
    pg_version: PgVersion | None = None
