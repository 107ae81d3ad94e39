"""The outcome of one check: what every report format renders."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot import __version__
from bot.analysis.model import Finding, RuleInfo, Severity
from bot.migrations.model import DryRun, MigrationFile
from bot.sandbox.model import SandboxReport


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
