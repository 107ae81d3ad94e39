"""What a sandbox run observed: plain data, rendered by the reports and judged by the rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StepOutcome = Literal["passed", "failed", "skipped"]


@dataclass
class TracedStatement:
    """One statement as it really ran on the sandbox database."""

    sql: str
    start_s: float  # seconds since the child started
    duration_s: float
    path: str | None = None
    line: int | None = None
    revision: str | None = None
    locks: list[tuple[str, str]] = field(default_factory=list)  # (relation, mode) newly held
    rewritten: list[str] = field(default_factory=list)  # tables whose relfilenode changed
    lock_timeout: str | None = None  # current_setting() when it ran; '0' = none
    statement_timeout: str | None = None
    autocommit: bool = False
    error: str | None = None


@dataclass
class LockSpan:
    """A lock held from the statement that took it until the transaction ended."""

    relation: str
    mode: str
    first_statement: int  # index into the trace
    last_statement: int  # the last statement that ran while it was held
    start_s: float
    end_s: float

    @property
    def held_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


@dataclass
class Step:
    name: str  # e.g. "upgrade to base", "upgrade to head", "rollback to base"
    outcome: StepOutcome
    duration_s: float = 0.0
    detail: str | None = None  # PostgreSQL's own error, or what was checked


@dataclass
class SandboxReport:
    server_version: str = ""
    steps: list[Step] = field(default_factory=list)
    trace: list[TracedStatement] = field(default_factory=list)
    lock_spans: list[LockSpan] = field(default_factory=list)
    schema_diff: list[str] = field(default_factory=list)  # base -> head, one line each
    rollback_diff: list[str] = field(default_factory=list)  # base -> after rollback
    seeded: dict[str, int] = field(default_factory=dict)
    seed_failures: dict[str, str] = field(default_factory=dict)
    protections: list[str] = field(default_factory=list)
    duration_s: float = 0.0
