"""What migsafe knows about an Alembic project, read without running its code.

Part of the pure core: the rules read these values, the Alembic layer (`bot.migrations`)
fills them in. The `migsafe: ignore[...]` comment syntax is here beside `Suppression`, so
the scanner that reads it and the rule that judges it share one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from bot.analysis.model import Statement

Function = Literal["upgrade", "downgrade"]

# CallSite names for a `with op.batch_alter_table(...)` line (its block's SQL is emitted when
# the block exits), and for one with recreate="always" (the table is copied).
BATCH = "batch_alter_table"
BATCH_RECREATE = "batch_alter_table recreate"


@dataclass(frozen=True)
class CallSite:
    """A call that can emit SQL: the operation's name and the names it gives as string
    literals (found by `bot.migrations.callsites`, read with `ast`, never run)."""

    name: str
    words: tuple[str, ...] = ()
    # execute: the statements of its SQL when it is a string literal (or text("...")).
    sql: tuple[str, ...] = ()
    # What it emits cannot be told from the source (execute of a variable, names the scan
    # cannot read, a custom operation): its line is shown, but no suppression applies there.
    opaque: bool = False
    function: str | None = None  # the top-level function it is in: upgrade, downgrade, ...


_SUPPRESSION = re.compile(r"migsafe\s*:\s*ignore\s*\[([^\]]*)\]\s*(.*)$", re.IGNORECASE)
_REASON_LEAD = " \t-\u2013\u2014:;,"  # "-- reason", ": reason"


@dataclass(frozen=True)
class Suppression:
    """`# migsafe: ignore[rule-a, rule-b] reason` on `line` (applies to it and the next line)."""

    line: int
    rules: tuple[str, ...]
    reason: str  # empty when none was given (itself a finding)


def suppressions_in(comments: dict[int, str]) -> list[Suppression]:
    """The `migsafe: ignore[...]` comments among `comments` (line -> comment text); the
    scanner reads revision files with it, `migsafe lint` SQL comments."""
    suppressions: list[Suppression] = []
    for line, comment in sorted(comments.items()):
        match = _SUPPRESSION.search(comment)
        if match:
            rules = tuple(rule.strip() for rule in match.group(1).split(",") if rule.strip())
            reason = match.group(2).strip().lstrip(_REASON_LEAD).strip()
            suppressions.append(Suppression(line=line, rules=rules, reason=reason))
    return suppressions


def is_suppression_comment(comment: str) -> bool:
    return _SUPPRESSION.search(comment) is not None


@dataclass
class OpCall:
    """One `op.<name>(...)` call found by the static scan."""

    name: str  # e.g. "drop_column", "execute", "alter_column"
    function: Function
    line: int
    end_line: int
    args: list[object] = field(default_factory=list)  # literal values; None where not a literal
    kwargs: dict[str, object] = field(default_factory=dict)  # same, by keyword
    # Line of the enclosing `with op.batch_alter_table(...)` for a batch_op call: Alembic
    # emits the batch's SQL when the block exits, so the dry-run traces it to that line.
    batch_line: int | None = None


@dataclass
class MigrationFile:
    """One revision file, parsed with `ast` (never imported in migsafe's process)."""

    path: str  # repository-relative, '/' separated
    revision: str
    down_revisions: tuple[str, ...]  # () for a root revision; 2+ for a merge
    depends_on: tuple[str, ...] = ()
    branch_labels: tuple[str, ...] = ()
    message: str | None = None  # first line of the module docstring
    ops: list[OpCall] = field(default_factory=list)
    upgrade_line: int | None = None  # line of `def upgrade`
    downgrade_line: int | None = None  # line of `def downgrade`; None when absent
    downgrade_empty: bool = False  # absent, or only pass / docstring / raise NotImplementedError
    comments: dict[int, str] = field(default_factory=dict)  # line -> comment text without '#'
    comment_only_lines: set[int] = field(default_factory=set)  # lines with a comment and no code
    suppressions: list[Suppression] = field(default_factory=list)
    # line -> the calls that can emit SQL Python reports at that line (`migrations.callsites`)
    call_sites: dict[int, tuple[CallSite, ...]] = field(default_factory=dict)
    new: bool = False  # added by the change under check


@dataclass
class DryRun:
    """The offline SQL of the new revisions, traced to file and line."""

    upgrade: list[Statement] = field(default_factory=list)
    downgrade: list[Statement] = field(default_factory=list)
    upgrade_sql: str = ""  # the full text as `alembic upgrade --sql` prints it
    downgrade_sql: str = ""
    error: str | None = None  # the child's error text when it failed or was killed
    # One line about the failure: the exception and where, e.g. "KeyError: 'SECRET_KEY'
    # (at migrations/env.py:12, during upgrade)"; the deepest repository frame as path/line.
    error_summary: str | None = None
    error_path: str | None = None
    error_line: int | None = None
    protections: list[str] = field(default_factory=list)  # what the child ran under
    duration_s: float = 0.0
    version_table: str = "alembic_version"  # as env.py configured it (bare name)
