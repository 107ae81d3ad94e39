"""The sandbox run as the report page draws it: a bar per blocking lock on the run's time
axis, and the trace of statements as they really ran. Built from the stored report's JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.report.sandbox_view import mode_name
from bot.web.links import Link, Links

_LOW_LOCKS = ("AccessShareLock", "RowShareLock")
_STRONG_LOCKS = ("AccessExclusiveLock", "ExclusiveLock")
_SHARE_LOCKS = ("ShareLock", "ShareRowExclusiveLock", "ShareUpdateExclusiveLock")


@dataclass(frozen=True)
class LockBar:
    relation: str
    mode: str
    strength: str  # strong | share | row: the bar's colour
    left: int  # percent of the timeline, a stylesheet class each
    width: int
    start_ms: str
    held: str
    first: int  # statement numbers (1-based) in the trace table
    last: int
    first_place: Link | None
    last_place: Link | None


@dataclass(frozen=True)
class TraceRow:
    number: int
    start_ms: str
    duration: str
    sql: str
    place: Link | None
    locks: list[str]
    rewritten: list[str]
    lock_timeout: str | None
    statement_timeout: str | None
    error: str | None


def lock_timeline(sandbox: Mapping[str, Any], links: Links) -> list[LockBar]:
    """One bar per lock that blocks something (SHARE and up, ROW EXCLUSIVE), placed on the
    run's time axis: from the statement that took it until the transaction ended."""
    trace = sandbox.get("trace") or []
    start, total = timeline_bounds(sandbox)
    bars = []
    for span in sandbox.get("locks") or []:
        relation, mode = str(span.get("relation") or ""), str(span.get("mode") or "")
        first, last = int(span.get("first_statement", 0)), int(span.get("last_statement", 0))
        if mode in _LOW_LOCKS or relation.isdigit() or relation.startswith("pg_toast."):
            continue
        if not 0 <= first < len(trace) or not 0 <= last < len(trace):
            continue
        taken = float(trace[first].get("start_s") or 0.0) - start
        held = float(span.get("held_s") or 0.0)
        left, width = bar_geometry(taken, held, total)
        bars.append(
            LockBar(
                relation=relation,
                mode=mode_name(mode),
                strength=_strength(mode),
                left=left,
                width=width,
                start_ms=duration(taken),
                held=duration(held),
                first=first + 1,
                last=last + 1,
                first_place=links.place(trace[first].get("path"), trace[first].get("line")),
                last_place=links.place(trace[last].get("path"), trace[last].get("line")),
            )
        )
    return sorted(bars, key=lambda b: (b.first, -_rank(b.strength), b.relation))


def bar_geometry(start_s: float, held_s: float, total_s: float) -> tuple[int, int]:
    """(left, width) in whole percent: every bar at least 1 % wide and inside the axis."""
    if total_s <= 0:
        return 0, 100
    # Rounded to 1e-6 first: 0.05 / 0.2 * 100 must be 25, not 24.999999999999996.
    left = min(99, max(0, math.floor(round(start_s / total_s * 100, 6))))
    width = max(1, math.ceil(round(held_s / total_s * 100, 6)))
    return left, min(width, 100 - left)


def timeline_bounds(sandbox: Mapping[str, Any]) -> tuple[float, float]:
    """(when the first statement started, the axis length in seconds)."""
    trace = sandbox.get("trace") or []
    if not trace:
        return 0.0, 0.0
    start = min(float(s.get("start_s") or 0.0) for s in trace)
    end = max(float(s.get("start_s") or 0.0) + float(s.get("duration_s") or 0.0) for s in trace)
    for span in sandbox.get("locks") or []:
        first = int(span.get("first_statement", 0))
        if 0 <= first < len(trace):
            taken = float(trace[first].get("start_s") or 0.0)
            end = max(end, taken + float(span.get("held_s") or 0.0))
    return start, end - start


def _strength(mode: str) -> str:
    if mode in _STRONG_LOCKS:
        return "strong"
    return "share" if mode in _SHARE_LOCKS else "row"


def _rank(strength: str) -> int:
    return {"strong": 2, "share": 1}.get(strength, 0)


def trace_rows(sandbox: Mapping[str, Any], links: Links) -> list[TraceRow]:
    trace = sandbox.get("trace") or []
    start, _ = timeline_bounds(sandbox)
    return [
        TraceRow(
            number=index + 1,
            start_ms=duration(float(s.get("start_s") or 0.0) - start),
            duration=duration(float(s.get("duration_s") or 0.0)),
            sql=str(s.get("sql") or ""),
            place=links.place(s.get("path"), s.get("line")),
            locks=[
                f"{lock.get('relation')} {mode_name(str(lock.get('mode')))}"
                for lock in s.get("locks") or []
                if lock.get("mode") not in _LOW_LOCKS
            ],
            rewritten=[str(t) for t in s.get("rewritten") or []],
            lock_timeout=setting(s.get("lock_timeout")),
            statement_timeout=setting(s.get("statement_timeout")),
            error=s.get("error"),
        )
        for index, s in enumerate(trace)
    ]


def duration(seconds: float) -> str:
    if seconds < 1:
        precise = 0 < seconds < 0.001  # sub-millisecond statements: one decimal
        return f"{seconds * 1000:.1f} ms" if precise else f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def setting(value: object) -> str | None:
    """A timeout as PostgreSQL reports it; 0 disables it."""
    if value is None:
        return None
    return "0 (no limit)" if str(value) == "0" else str(value)
