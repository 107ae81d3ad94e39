"""The checklist's procedure, as the merge gate checks it: destructive changes documented,
an ADR for significant changes, the maintenance-window label for major ones, a recent
backup. Pure: the findings, the labels, the changed files, the description and the backup
status in; one `ProcedureItem` each out (`bot.policy.approvals` counts the approvals).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.analysis.model import Finding, Severity
from bot.analysis.rules.destructive import DESTRUCTIVE_RULE_IDS
from bot.analysis.rules.revisions import DESTRUCTIVE_UNDOCUMENTED
from bot.policy.backup import NOT_CONFIGURED, BackupStatus, BackupUnavailable
from bot.policy.environments import (
    EnvironmentSettings,
    adr_required,
    maintenance_window_required,
    severity_for,
)
from bot.policy.fingerprint import matches_any, normalize_path
from bot.policy.model import Policy

# Procedure items, in the order the checklist lists them.
DOCUMENTED = "Destructive changes documented"
ADR = "ADR"
MAINTENANCE_WINDOW = "Maintenance window"
BACKUP = "Backup"

_PATH_TOKEN = re.compile(r"[A-Za-z0-9_.~%+@:/-]+")  # paths and URLs in a description


@dataclass(frozen=True)
class Reason:
    """One finding that needs a role's approval."""

    rule: str
    path: str | None = None
    line: int | None = None

    @property
    def place(self) -> str | None:
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        return f"{self.rule} in {self.place}" if self.place else self.rule


@dataclass(frozen=True)
class ProcedureItem:
    name: str
    ok: bool | None  # None: not needed here, or recommended only (does not block)
    detail: str


def checklist_procedure(
    policy: Policy,
    settings: EnvironmentSettings,
    findings: Sequence[Finding],
    labels: Collection[str],
    changed_files: Collection[str],
    pr_body: str,
    backup: BackupStatus | BackupUnavailable | None,
    now: datetime,
) -> list[ProcedureItem]:
    return [
        _documented_item(policy, settings.name, findings),
        _adr_item(policy, findings, changed_files, pr_body),
        _maintenance_item(policy, settings, findings, labels),
        _backup_item(settings, backup, now),
    ]


def _documented_item(
    policy: Policy, environment: str, findings: Sequence[Finding]
) -> ProcedureItem:
    severity = severity_for(policy, environment, DESTRUCTIVE_UNDOCUMENTED)
    if severity is None:
        return ProcedureItem(DOCUMENTED, None, "switched off in the policy file")
    undocumented = [
        f for f in findings if f.rule == DESTRUCTIVE_UNDOCUMENTED.id and not f.suppressed
    ]
    if undocumented:
        places = _places(undocumented)
        detail = (
            f"{_count(len(undocumented), 'destructive operation')} without a comment saying "
            f"why it is safe: {places}"
        )
        if severity is not Severity.ERROR:
            return ProcedureItem(DOCUMENTED, None, f"{detail} (not required in {environment})")
        return ProcedureItem(DOCUMENTED, False, detail)
    if any(f.rule in DESTRUCTIVE_RULE_IDS for f in findings):
        return ProcedureItem(DOCUMENTED, True, "every destructive operation has a comment")
    return ProcedureItem(DOCUMENTED, None, "no destructive operation")


def _adr_item(
    policy: Policy, findings: Sequence[Finding], changed_files: Collection[str], pr_body: str
) -> ProcedureItem:
    significant = [f for f in findings if any(adr_required(policy, r) for r in f.rules)]
    pattern = policy.adr.path
    if not significant:
        return ProcedureItem(ADR, None, "not needed: no significant change")
    added = [normalize_path(p) for p in changed_files if matches_any(p, [pattern])]
    if added:
        return ProcedureItem(ADR, True, f"{', '.join(added)} (in this pull request)")
    linked = linked_paths(pr_body, pattern)
    if linked:
        return ProcedureItem(ADR, True, f"{', '.join(linked)} (linked from the description)")
    return ProcedureItem(
        ADR,
        False,
        f"{_places(significant, with_rule=True)} needs an ADR: add a file matching "
        f"{pattern} or link one in the pull request's description",
    )


def linked_paths(text: str, pattern: str) -> list[str]:
    """Repository paths matching `pattern` that `text` mentions: as a relative path, or
    inside a link (`https://github.com/o/r/blob/main/docs/adr/7.md`, `../docs/adr/7.md`)."""
    found: list[str] = []
    for token in _PATH_TOKEN.findall(text):
        parts = token.split("#")[0].split("?")[0].rstrip(".,:;").split("/")
        for start in range(len(parts)):  # every suffix: the path sits at the end of a link
            candidate = "/".join(parts[start:])
            if candidate and matches_any(candidate, [pattern]) and candidate not in found:
                found.append(candidate)
                break
    return found


def _maintenance_item(
    policy: Policy,
    settings: EnvironmentSettings,
    findings: Sequence[Finding],
    labels: Collection[str],
) -> ProcedureItem:
    label = policy.maintenance_window.label
    if not settings.maintenance_window:
        return ProcedureItem(MAINTENANCE_WINDOW, None, f"not required in {settings.name}")
    major = [
        f
        for f in findings
        if any(maintenance_window_required(policy, settings.name, r) for r in f.rules)
    ]
    if not major:
        return ProcedureItem(MAINTENANCE_WINDOW, None, "not needed: no major change")
    if label.casefold() in {name.casefold() for name in labels}:
        return ProcedureItem(MAINTENANCE_WINDOW, True, f"label {label} is set")
    return ProcedureItem(
        MAINTENANCE_WINDOW,
        False,
        f"{_places(major, with_rule=True)} is a major change: schedule it in a maintenance "
        f"window, then add the label {label}",
    )


def _backup_item(
    settings: EnvironmentSettings,
    backup: BackupStatus | BackupUnavailable | None,
    now: datetime,
) -> ProcedureItem:
    if settings.backup == "not-required":
        return ProcedureItem(BACKUP, None, f"not required in {settings.name}")
    limit_s = settings.backup_max_age_ms / 1000
    problem, detail = _backup_state(backup, limit_s, now)
    if settings.backup == "mandatory":
        return ProcedureItem(BACKUP, problem is None, detail)
    if problem is None:
        return ProcedureItem(BACKUP, True, detail)
    return ProcedureItem(BACKUP, None, f"recommended in {settings.name}, not required: {detail}")


def _backup_state(
    backup: BackupStatus | BackupUnavailable | None, limit_s: float, now: datetime
) -> tuple[str | None, str]:
    """(the problem or None, the detail people read)."""
    if backup is None:
        return NOT_CONFIGURED, f"{NOT_CONFIGURED}: the bot's operator sets one up"
    if isinstance(backup, BackupUnavailable):
        return backup.reason, backup.reason
    restore = (
        f"last tested restore {human_duration(_age(backup.last_restore_test, now))} ago"
        if backup.last_restore_test is not None
        else "last tested restore unknown"
    )
    suffix = f"; {restore} ({backup.source})"
    if backup.last_backup is None:
        return "no backup found", f"no backup found{suffix}"
    age = _age(backup.last_backup, now)
    detail = f"last backup {human_duration(age)} ago (limit {human_duration(limit_s)}){suffix}"
    return ("too old" if age > limit_s else None), detail


def human_duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h`, `25 h 30 min`, `3 d 4 h`: at most two units, rounded down."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def _age(moment: datetime, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds())  # a clock ahead of ours is "just now"


def _places(findings: Sequence[Finding], *, with_rule: bool = False) -> str:
    reasons = [Reason(f.rule, f.path, f.line) for f in findings]
    texts = [str(r) if with_rule else (r.place or r.rule) for r in reasons]
    return ", ".join(dict.fromkeys(texts))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
