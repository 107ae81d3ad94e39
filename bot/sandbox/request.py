"""What a sandbox run is asked to do (`SandboxRequest`) and what it hands back."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.analysis.migration_model import MigrationFile
from bot.analysis.model import Finding, Statement
from bot.analysis.origins import Refused
from bot.analysis.sandbox_model import SandboxReport
from bot.sandbox.isolation import Limits
from bot.sandbox.rls import RlsSettings

DEFAULT_MAX_DATABASE_BYTES = 1024**3  # the policy's sandbox.max_database_size


@dataclass
class SandboxRequest:
    work_root: Path  # private working copy of the repository
    ini_path: Path | None
    script_location: Path
    versions_dirs: list[Path]
    base: tuple[str, ...]  # revisions before the change; () = empty database
    revision_by_path: dict[str, str]  # repository-relative migration path -> revision
    # The parent's own scan of the revision files, by path: where a statement the child
    # reports may come from (`bot.analysis.origins`); a path not here gets no line.
    files: dict[str, MigrationFile] = field(default_factory=dict)
    dry_run_upgrade: list[Statement] = field(default_factory=list)  # parsed, for undeclared
    # Where the dry-run still runs alongside the sandbox: waits for its parsed upgrade SQL.
    pending_dry_run: Callable[[], list[Statement]] | None = None
    lock_timeout_max_ms: float = 30_000
    statement_timeout_max_ms: float = 300_000
    rls: RlsSettings = field(default_factory=RlsSettings)
    child_env: dict[str, str] = field(default_factory=dict)  # the policy file's sandbox.env
    timeout_s: float = 300.0  # wall clock per step of the child
    limits: Limits = field(default_factory=Limits)
    python: str = sys.executable  # the repository's prepared virtualenv, when it has setup
    progress: Callable[[str], None] | None = None  # told each step as it starts
    max_database_bytes: int = DEFAULT_MAX_DATABASE_BYTES  # checked after each step
    # How the team runs Alembic (as the dry-run does): its working directory (default: the
    # ini's folder, else work_root), the ini section (`-n`), the `-x` arguments.
    working_dir: Path | None = None
    ini_section: str = "alembic"
    x_arguments: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        if self.working_dir is not None:
            return self.working_dir
        return self.ini_path.parent if self.ini_path else self.work_root


@dataclass
class SandboxOutcome:
    report: SandboxReport
    findings: list[Finding]
    # Reported lines the parent kept without vouching for them: no suppression applies there
    # (`apply_suppressions` with `origins.unsuppressible`).
    unvouched: list[Refused] = field(default_factory=list)


def format_bytes(size: int) -> str:
    """1073741824 -> "1 GiB", 1536 -> "1.5 KiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "B":
        return f"{size} B"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"
