"""The outcome of one check: what every report format renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot import __version__
from bot.analysis.migration_model import DryRun, MigrationFile
from bot.analysis.model import Finding, RuleInfo, Severity
from bot.analysis.sandbox_model import SandboxReport

EnvironmentOrigin = Literal["flag", "branches", "policy", "default", "caller"]
RevisionsOrigin = Literal[
    "all", "from", "base", "merge-base", "base-tree", "base-revision", "latest", "sql"
]
ResultSource = Literal["alembic", "sql"]


@dataclass(frozen=True)
class PolicyOrigin:
    """Which policy file the check applied."""

    path: str | None  # as shown to the user; None: no file, the checklist's defaults
    git_ref: str | None  # read at this git ref (the base) instead of the work tree
    text: str  # one line, e.g. ".github/migsafe.yml at main (merge-base 3f2c1a0)"


@dataclass(frozen=True)
class EnvironmentChoice:
    """The environment the check was judged for, and where it came from."""

    name: str
    origin: EnvironmentOrigin
    text: str  # one line, e.g. "branches: main → production in .github/migsafe.yml"


@dataclass(frozen=True)
class NewRevisions:
    """Which revisions count as new (judged by the rules), against what."""

    origin: RevisionsOrigin
    new: int
    existing: int
    text: str  # one line, e.g. "2 new since main (merge-base 3f2c1a0); 14 existing"
    git_ref: str | None = None  # the base ref compared with (base, merge-base)
    commit: str | None = None  # the commit compared with (base, merge-base)
    revision: str | None = None  # the Alembic revision the new ones follow (from, base-revision)


@dataclass(frozen=True)
class Judged:
    """What a check judged and why: never a silent default."""

    policy: PolicyOrigin
    environment: EnvironmentChoice
    revisions: NewRevisions


@dataclass
class CheckResult:
    project: str  # the repository root as the user gave it
    environment: str  # local | ci | staging | production
    revisions: list[MigrationFile]  # the history in upgrade order; `new` marks the change's own
    base: tuple[str, ...]  # revisions the change starts from (empty: from the start)
    heads: tuple[str, ...]  # heads after the change
    findings: list[Finding]
    dry_run: DryRun
    rules: dict[str, RuleInfo]  # catalog of every rule id, for explanations
    approvals_required: list[str] = field(default_factory=list)  # roles, in matrix order
    script_location: str | None = None  # repository-relative Alembic script directory
    sandbox: SandboxReport | None = None  # None: not run (--no-sandbox, or nothing new)
    sandbox_skipped: str | None = None  # why the sandbox did not run
    judged: Judged | None = None  # the policy, environment and new revisions, and why
    # The policy's `contacts`, each (role, its team or None): who the emergency procedure
    # names. Empty: the reports name the checklist's defaults.
    contacts: list[tuple[str, str | None]] = field(default_factory=list)
    # The checked folder relative to the repository root ("" at the root, else ending in
    # "/"): the report's paths are relative to the checked folder, SARIF's to the root.
    folder_in_repository: str = ""
    source: ResultSource = "alembic"  # sql: plain SQL files (`migsafe lint`), nothing run
    version: str = __version__

    @property
    def new_revisions(self) -> list[MigrationFile]:
        return [rev for rev in self.revisions if rev.new]

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def exit_code(self) -> int:
        """0: nothing at error severity (suppressed ones aside); 1: at least one error."""
        return 1 if self.blocking else 0

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity and not f.suppressed)
