"""The rollback plan and the emergency procedure (bot.report.plan), table-driven over the
JSON report's shapes, and their place in the markdown and text reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.policy.backup import BackupStatus, BackupUnavailable
from bot.policy.config import Policy
from bot.report.markdown import render_markdown
from bot.report.plan import Contact, contacts_from_policy, rollback_plan
from bot.report.text import render_text
from tests.report import sample_result

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PASSED = [{"name": "rollback to the base", "outcome": "passed", "duration_s": 0.4, "detail": None}]


def report(
    *,
    base: list[str] | None = None,
    findings: list[dict[str, Any]] | None = None,
    sandbox: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "environment": "production",
        "base": ["0002"] if base is None else base,
        "findings": findings or [],
        "sandbox": sandbox or {"ran": True, "steps": PASSED, "locks": [], "rollback_diff": []},
    }


def finding(rule: str, message: str, path: str | None = "m/versions/3.py", line: int = 9) -> dict:
    return {"rule": rule, "message": message, "path": path, "line": line, "suppressed": False}


CASES = {
    "safe rollback": (
        report(),
        "safe",
        "The sandbox proved `alembic downgrade 0002` safe",
        [],
    ),
    "schema mismatch": (
        report(
            findings=[finding("rollback-schema-mismatch", "after the downgrade ...", None)],
            sandbox={
                "ran": True,
                "steps": [{"name": "rollback to the base", "outcome": "failed", "detail": "x"}],
                "rollback_diff": ["column public.accounts.nickname: added"],
            },
        ),
        "unsafe",
        "is not safe (rollback-schema-mismatch)",
        ["rollback-schema-mismatch"],
    ),
    "data loss": (
        report(
            findings=[
                finding("drop-column", "Dropping column accounts.email destroys its data."),
                finding("rollback-data-loss", "table public.accounts: 3 seeded rows came back"),
            ]
        ),
        "unsafe",
        "Restoring the backup is the way back",
        ["drop-column", "rollback-data-loss"],
    ),
    "sandbox not run": (
        report(sandbox={"ran": False, "skipped_reason": "not requested (--no-sandbox)"}),
        "untested",
        "the sandbox did not run (not requested (--no-sandbox))",
        [],
    ),
    "from an empty database": (
        report(base=[]),
        "safe",
        "`alembic downgrade base`",
        [],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_plan_says_whether_the_rollback_is_safe(name: str) -> None:
    document, safety, phrase, loss_rules = CASES[name]
    plan = rollback_plan(document, now=NOW)
    assert plan.safety == safety
    assert phrase in plan.summary
    assert [loss.rule for loss in plan.losses] == loss_rules
    roll_back = next(step for step in plan.emergency if step.title == "Roll back")
    restore = next(step for step in plan.emergency if step.title == "Restore the backup")
    if safety == "safe":
        assert roll_back.commands == plan.commands
        assert restore.text.startswith("Only if the rollback fails")
    else:
        assert restore.text.startswith("This is the way back")
    if safety == "unsafe":
        assert roll_back.commands == []  # no command to paste when it loses data


def test_schema_differences_after_the_rollback_are_listed() -> None:
    plan = rollback_plan(CASES["schema mismatch"][0])
    assert plan.schema_differences == ["column public.accounts.nickname: added"]


BACKUPS = {
    "known": (
        BackupStatus(NOW - timedelta(hours=3, minutes=5), None, "pgBackRest via command `x`"),
        True,
        "The last backup finished 3 h 5 min ago, at 2026-11-26 08:55 UTC (pgBackRest",
    ),
    "unknown: no source": (None, False, "How fresh the backup is is unknown"),
    "unknown: source down": (
        BackupUnavailable("the backup status endpoint answered HTTP 503"),
        False,
        "unknown: the backup status endpoint answered HTTP 503.",
    ),
    "none found": (BackupStatus(None, None, "WAL-G"), False, "No backup was found (WAL-G)."),
}


@pytest.mark.parametrize("name", list(BACKUPS))
def test_data_loss_says_how_fresh_the_backup_is(name: str) -> None:
    backup, known, phrase = BACKUPS[name]
    plan = rollback_plan(CASES["data loss"][0], backup=backup, now=NOW)
    assert plan.backup_known is known
    assert phrase in plan.backup
    restore = next(step for step in plan.emergency if step.title == "Restore the backup")
    assert phrase in restore.text


def test_the_emergency_procedure_follows_the_checklist_with_commands_filled_in() -> None:
    document = report(
        sandbox={
            "ran": True,
            "steps": PASSED,
            "rollback_diff": [],
            "locks": [
                {"relation": "accounts", "mode": "AccessExclusiveLock"},
                {"relation": "pg_toast.pg_toast_1", "mode": "AccessExclusiveLock"},
                {"relation": "bad'; rm -rf /", "mode": "AccessExclusiveLock"},
            ],
        }
    )
    plan = rollback_plan(document)
    assert [s.title for s in plan.emergency] == [
        "Stop",
        "Assess",
        "Roll back",
        "Restore the backup",
        "Document",
    ]
    assess = plan.emergency[1]
    assert "alembic current" in assess.commands
    assert "psql -c '\\d+ accounts'" in assess.commands
    assert not any("rm -rf" in command for command in assess.commands)  # named, not run
    assert "pg_cancel_backend" in plan.emergency[0].commands[1]


def test_contacts_come_from_the_policy_file_with_their_teams() -> None:
    policy = Policy.model_validate(
        {"roles": {"devops-lead": "acme/sre"}, "contacts": ["devops-lead", "backend-lead"]}
    )
    contacts = contacts_from_policy(policy)
    assert contacts == [Contact("devops-lead", "acme/sre"), Contact("backend-lead", None)]
    plan = rollback_plan(report(), contacts=contacts)
    assert "Contact: devops-lead (@acme/sre), backend-lead (no team mapped)." in (
        plan.emergency[-1].text
    )
    assert rollback_plan(report()).contact_line == (
        "backend-lead (no team mapped), devops-lead (no team mapped)"
    )


def test_markdown_and_text_carry_the_plan_and_the_emergency_procedure() -> None:
    contacts = [Contact("backend-lead", "acme/leads")]
    markdown = render_markdown(sample_result(), contacts=contacts)
    assert "#### If the migration fails in production" in markdown
    assert "4. **Restore the backup.** This is the way back" in markdown
    assert "backend-lead (@acme/leads)" in markdown
    text = render_text(sample_result(), contacts=contacts)
    assert "Rollback plan (unsafe): Rolling back with `alembic downgrade 0002` is not safe" in text
    assert "  4. Restore the backup: This is the way back" in text
    assert text.splitlines()[-1] == "Rollback: alembic downgrade 0002"
