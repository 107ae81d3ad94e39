"""One rule's declaration: what it catches, when it runs, where it points, what it needs.

Each rule is one `Rule(...)` next to its check, in its family file under
`bot/analysis/rules/`; `bot.analysis.registry` gathers them. This module holds only the
declaration's types, so family files can import it without importing the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bot import HOME_URL
from bot.analysis.migration_model import DryRun, MigrationFile
from bot.analysis.model import ActionKind, Finding, RuleInfo
from bot.analysis.revision_graph import RevisionGraph


class Stage(StrEnum):
    """When a rule's check runs, and so what its check reads."""

    STATIC = "static"  # the source of the new revision files and the history: ProjectCheck
    SQL = "sql"  # each statement of the upgrade's SQL, in order: rules.base.Check
    DOWNGRADE = "downgrade"  # the downgrade's SQL against the upgrade's: DowngradeCheck
    SANDBOX = "sandbox"  # what a real PostgreSQL run observed: decided in bot.sandbox
    META = "meta"  # migsafe's own inputs (the dry-run, unparsed SQL): ProjectCheck


class PointsAt(StrEnum):
    """Where a finding points. Alembic emits a `batch_alter_table` block's SQL when the
    `with` exits, so SQL findings are traced to the `with` line; a rule naming the
    `batch_op` call its SQL comes from has them moved onto that call's line
    (`bot.analysis.batch`). STATEMENT: the statement's own line, never moved."""

    STATEMENT = "statement"
    ADD_COLUMN = "add_column"
    TYPED_COLUMN = "add_column or alter_column(type_=)"
    ALTER_TYPE = "alter_column(type_=)"
    SET_NOT_NULL = "alter_column(nullable=False)"
    RENAME_COLUMN = "alter_column(new_column_name=)"
    DROP_COLUMN = "drop_column"
    CREATE_INDEX = "create_index"
    DROP_INDEX = "drop_index"
    CREATE_FOREIGN_KEY = "create_foreign_key"
    CREATE_CHECK_CONSTRAINT = "create_check_constraint"
    CREATE_UNIQUE = "create_unique_constraint or create_primary_key"


@dataclass(frozen=True)
class ProjectFacts:
    """What STATIC and META checks read. `lint` fills it from plain SQL files (no graph,
    no dry-run child: its statements stand in as the upgrade)."""

    files: Sequence[MigrationFile] = ()  # the new revision files, in upgrade order
    graph: RevisionGraph | None = None  # the history after the change
    dry_run: DryRun = field(default_factory=DryRun)
    findings: Sequence[Finding] = ()  # what the earlier stages (and checks) found


ProjectCheck = Callable[[ProjectFacts], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """One rule. `info.id` is a stable public interface (reports, suppressions, policy)."""

    info: RuleInfo  # id, family, default_severity, summary, explanation
    stage: Stage
    safe_alternative: str  # one line: the safe pattern
    judges: tuple[ActionKind, ...] = ()  # SQL stage: the action kinds its check looks at
    # The stage's check (SQL: rules.base.Check; DOWNGRADE: DowngradeCheck; STATIC and
    # META: ProjectCheck). None: raised elsewhere (the sandbox run, the suppression pass).
    check: Callable[..., Iterable[Finding]] | None = None
    points_at: PointsAt = PointsAt.STATEMENT
    # The checklist's defaults; the policy file can add rules to each list.
    needs_approval: bool = False
    needs_adr: bool = False
    needs_window: bool = False

    @property
    def id(self) -> str:
        return self.info.id


def doc_url(rule_id: str) -> str:
    """The rule's documentation page (docs/rules/<id>.md) on the project's repository."""
    return f"{HOME_URL}/blob/main/docs/rules/{rule_id}.md"


def rule_infos(rules: Iterable[Rule]) -> dict[str, RuleInfo]:
    """id -> RuleInfo, in the order given."""
    return {rule.id: rule.info for rule in rules}


__all__ = ["PointsAt", "ProjectCheck", "ProjectFacts", "Rule", "Stage", "doc_url", "rule_infos"]
