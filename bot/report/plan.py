"""The rollback plan and the emergency procedure of one change (the checklist's last two
sections), written for that change with its commands filled in.

Pure: the JSON report (docs/json-output.md) in, a `RollbackPlan` out. `plan_for_result`
takes a `CheckResult` through the same JSON form, so the terminal, the check-run summary
and the report page say the same thing. The backup's freshness and the contacts come from
the caller (the gate knows the backup; the policy file names the contacts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.analysis.rules.destructive import DROP_COLUMN, DROP_TABLE, TRUNCATE_TABLE
from bot.analysis.rules.downgrade import DESTRUCTIVE_DOWNGRADE
from bot.analysis.rules.revisions import MISSING_DOWNGRADE
from bot.analysis.rules.sandbox import (
    DOWNGRADE_FAILED,
    ROLLBACK_DATA_LOSS,
    ROLLBACK_SCHEMA_MISMATCH,
    UNDECLARED_CHANGE,
)
from bot.policy.backup import NOT_CONFIGURED, BackupStatus, BackupUnavailable
from bot.policy.config import Policy
from bot.policy.procedure import human_duration
from bot.result import CheckResult

Safety = Literal["safe", "unsafe", "untested"]
Backup = BackupStatus | BackupUnavailable | None

DEFAULT_CONTACT_ROLES = ("backend-lead", "devops-lead")
ROLLBACK_STEP = "rollback to the base"
# The downgrade itself cannot be trusted to get back to the base.
DOWNGRADE_BROKEN = tuple(
    info.id
    for info in (
        MISSING_DOWNGRADE,
        DESTRUCTIVE_DOWNGRADE,
        DOWNGRADE_FAILED,
        ROLLBACK_SCHEMA_MISMATCH,
        ROLLBACK_DATA_LOSS,
    )
)
# The upgrade destroys data, or changed the schema in a way its SQL never declared: no
# downgrade can be trusted to bring it back, whatever it does.
UPGRADE_DESTROYS = tuple(
    info.id for info in (DROP_TABLE, DROP_COLUMN, TRUNCATE_TABLE, UNDECLARED_CHANGE)
)
_LOW_VALUE_LOCKS = ("AccessShareLock", "RowShareLock")
# Table names that are safe inside a shell command; others are named, not put in commands.
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class Contact:
    role: str
    team: str | None  # `org/team-slug`; None: the policy file maps no team to the role

    def __str__(self) -> str:
        return f"{self.role} (@{self.team})" if self.team else f"{self.role} (no team mapped)"


@dataclass(frozen=True)
class Loss:
    """Why the downgrade is not a way back: a finding's rule, place and message."""

    rule: str
    message: str
    place: str | None = None


@dataclass(frozen=True)
class EmergencyStep:
    title: str  # Stop, Assess, Roll back, Restore the backup, Document
    text: str
    commands: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RollbackPlan:
    commands: list[str]  # `alembic downgrade <base>`, one per base revision
    safety: Safety
    summary: str  # one sentence: safe, not safe (restore the backup), or untested
    losses: list[Loss]  # empty when safe
    schema_differences: list[str]  # base vs after the rollback, from the sandbox
    backup: str  # how fresh the backup is, in words
    backup_known: bool
    tables: list[str]  # tables the change locks or alters, for the assessment
    emergency: list[EmergencyStep]
    contacts: list[Contact]
    environment: str

    @property
    def contact_line(self) -> str:
        return ", ".join(str(contact) for contact in self.contacts)


def contacts_from_policy(policy: Policy | None) -> list[Contact]:
    """The policy file's `contacts` roles with their teams (default backend-lead, devops-lead)."""
    if policy is None:
        return default_contacts()
    return [Contact(role, policy.team_for(role)) for role in policy.contacts]


def default_contacts() -> list[Contact]:
    return [Contact(role, None) for role in DEFAULT_CONTACT_ROLES]


def plan_for_result(
    result: CheckResult,
    *,
    contacts: Sequence[Contact] | None = None,
    backup: Backup = None,
    now: datetime | None = None,
) -> RollbackPlan:
    from bot.report.json_report import to_document  # json_report imports bot.report

    return rollback_plan(to_document(result), contacts=contacts, backup=backup, now=now)


def rollback_plan(
    report: Mapping[str, Any],
    *,
    contacts: Sequence[Contact] | None = None,
    backup: Backup = None,
    now: datetime | None = None,
) -> RollbackPlan:
    """The plan for the change the JSON `report` describes."""
    commands = rollback_commands(report.get("base") or [])
    sandbox = report.get("sandbox") or {}
    losses = _losses(report.get("findings") or [])
    safety, summary = _safety(commands, sandbox, losses)
    backup_text, backup_known = backup_freshness(backup, now)
    tables = _tables(report)
    chosen = list(contacts) if contacts is not None else default_contacts()
    environment = str(report.get("environment") or "production")
    return RollbackPlan(
        commands=commands,
        safety=safety,
        summary=summary,
        losses=losses,
        schema_differences=[str(d) for d in sandbox.get("rollback_diff") or []],
        backup=backup_text,
        backup_known=backup_known,
        tables=tables,
        emergency=_emergency(commands, safety, losses, backup_text, tables, chosen),
        contacts=chosen,
        environment=environment,
    )


def rollback_commands(base: Iterable[str]) -> list[str]:
    """Back to each revision the change starts from; `base` when it starts from nothing."""
    revisions = list(base)
    if not revisions:
        return ["alembic downgrade base"]
    return [f"alembic downgrade {revision}" for revision in revisions]


# --- safety ---


def _losses(findings: Iterable[Mapping[str, Any]]) -> list[Loss]:
    """Suppressed findings count too: a suppression acknowledges the loss, it does not
    undo it."""
    losses = []
    for finding in findings:
        rule = str(finding.get("rule"))
        if rule in DOWNGRADE_BROKEN or rule in UPGRADE_DESTROYS:
            losses.append(Loss(rule, str(finding.get("message") or ""), _place(finding)))
    return losses


def _safety(
    commands: list[str], sandbox: Mapping[str, Any], losses: list[Loss]
) -> tuple[Safety, str]:
    command = " && ".join(commands)
    if losses:
        rules = ", ".join(dict.fromkeys(loss.rule for loss in losses))
        return (
            "unsafe",
            f"Rolling back with `{command}` is not safe ({rules}): it does not bring back "
            "what this change destroys. Restoring the backup is the way back.",
        )
    if not sandbox.get("ran"):
        reason = sandbox.get("skipped_reason") or "not run"
        return (
            "untested",
            f"`{command}` was not tested: the sandbox did not run ({reason}). Nothing in "
            "the migration code says it loses data, but only a run proves it.",
        )
    step = next((s for s in sandbox.get("steps") or [] if s.get("name") == ROLLBACK_STEP), None)
    if step is None or step.get("outcome") != "passed":
        why = (step or {}).get("detail") or "the sandbox did not get that far"
        return ("untested", f"`{command}` could not be tested in the sandbox: {_first(why)}.")
    return (
        "safe",
        f"The sandbox proved `{command}` safe: afterwards the schema equalled the base's "
        "and the rows seeded before the upgrade were intact.",
    )


def backup_freshness(backup: Backup, now: datetime | None) -> tuple[str, bool]:
    """(how fresh the backup is, in words; whether that is known)."""
    if backup is None:
        return (
            f"How fresh the backup is is unknown ({NOT_CONFIGURED}): check the time of the "
            "last backup before deploying.",
            False,
        )
    if isinstance(backup, BackupUnavailable):
        return f"How fresh the backup is is unknown: {backup.reason}.", False
    if backup.last_backup is None:
        return f"No backup was found ({backup.source}).", False
    stamp = backup.last_backup.strftime("%Y-%m-%d %H:%M UTC")
    age = f"{human_duration((now - backup.last_backup).total_seconds())} ago, " if now else ""
    text = f"The last backup finished {age}at {stamp} ({backup.source})"
    if backup.last_restore_test is not None:
        text += f"; a restore was last tested at {backup.last_restore_test:%Y-%m-%d %H:%M UTC}"
    else:
        text += "; no tested restore is on record"
    return text + ".", True


# --- the emergency procedure ---


def _emergency(
    commands: list[str],
    safety: Safety,
    losses: list[Loss],
    backup: str,
    tables: list[str],
    contacts: list[Contact],
) -> list[EmergencyStep]:
    command = " && ".join(commands)
    return [
        EmergencyStep(
            "Stop",
            "Cancel the deploy job. If the migration still runs in PostgreSQL, cancel its "
            "statement: Alembic runs the revisions in one transaction, so a cancelled "
            "migration rolls back as a whole.",
            [
                "SELECT pid, now() - xact_start AS running, state, left(query, 80) "
                "FROM pg_stat_activity WHERE xact_start IS NOT NULL ORDER BY xact_start;",
                "SELECT pg_cancel_backend(<pid>);",
            ],
        ),
        EmergencyStep(
            "Assess",
            "Find out which revision the database is at and what of the change is applied"
            + (f" to {_and(tables)}." if tables else "."),
            ["alembic current", *[f"psql -c '\\d+ {t}'" for t in tables[:5] if _PLAIN.match(t)]],
        ),
        _roll_back_step(command, safety, losses),
        _restore_step(safety, backup),
        EmergencyStep(
            "Document",
            "Write down what failed, what was applied (`alembic current` before and after), "
            "what was done and when, on the pull request and in the incident log. "
            f"Contact: {', '.join(str(c) for c in contacts)}.",
        ),
    ]


def _roll_back_step(command: str, safety: Safety, losses: list[Loss]) -> EmergencyStep:
    if safety == "safe":
        return EmergencyStep("Roll back", "The sandbox proved the downgrade safe. Run:", [command])
    if safety == "unsafe":
        rules = ", ".join(dict.fromkeys(loss.rule for loss in losses))
        return EmergencyStep(
            "Roll back",
            f"Do not count on `{command}` ({rules}): it leaves data lost. Use it only to "
            "restore the schema after the backup's data is safe, or not at all.",
        )
    return EmergencyStep(
        "Roll back",
        "The downgrade was not proven safe: run it only after checking on a copy of the "
        "database that it keeps the data; then run:",
        [command],
    )


def _restore_step(safety: Safety, backup: str) -> EmergencyStep:
    if safety == "safe":
        text = "Only if the rollback fails: restore the backup taken before the deploy."
    else:
        text = "This is the way back: restore the backup taken before the deploy."
    return EmergencyStep("Restore the backup", f"{text} {backup}")


# --- helpers ---


def _tables(report: Mapping[str, Any]) -> list[str]:
    """The tables the sandbox saw this change lock beyond plain reads (strongest first)."""
    sandbox = report.get("sandbox") or {}
    tables: list[str] = []
    for span in sandbox.get("locks") or []:
        relation = str(span.get("relation") or "")
        if span.get("mode") in _LOW_VALUE_LOCKS or not relation or relation.isdigit():
            continue
        if relation.startswith("pg_toast.") or relation in tables:
            continue
        tables.append(relation)
    return tables


def _place(finding: Mapping[str, Any]) -> str | None:
    path, line = finding.get("path"), finding.get("line")
    if path is None:
        return None
    return f"{path}:{line}" if line is not None else str(path)


def _first(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else "").rstrip(".")


def _and(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
