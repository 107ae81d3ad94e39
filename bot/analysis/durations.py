"""PostgreSQL time settings ('30s', '5min', 30000) as milliseconds."""

from __future__ import annotations

import re

# PostgreSQL's units for time GUCs; a bare number means milliseconds for the timeouts.
_UNIT_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$", re.IGNORECASE)


def parse_duration_ms(value: str | int | float) -> float | None:
    """Milliseconds for a PostgreSQL duration, or None when it is not one.

    `0` is returned as 0.0: for lock_timeout / statement_timeout it means "no limit".
    """
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value.strip().strip("'\""))
    if match is None:
        return None
    number, unit = match.groups()
    return float(number) * _UNIT_MS[(unit or "ms").lower()]


def format_ms(ms: float) -> str:
    """The shortest exact PostgreSQL spelling: 30000 -> '30s', 300000 -> '5min'."""
    for unit in ("d", "h", "min", "s"):
        size = _UNIT_MS[unit]
        if ms >= size and ms % size == 0:
            return f"{int(ms // size)}{unit}"
    return f"{ms:g}ms"
