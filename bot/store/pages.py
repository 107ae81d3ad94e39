"""What the report page reads and the service writes for it: analyses by id, the approval
gate's latest verdict per analysis (table `analysis_gates`, migration 0004), and the
retention purge.

The gate is stored as a JSON document (`gate_document`): what the page shows of a
`GateVerdict`, plus the backup status and the contacts the rollback plan needs, which the
gate knows and the analysis does not.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bot.policy.approvals import GateVerdict, check_name
from bot.policy.backup import BackupStatus, BackupUnavailable
from bot.policy.gate_report import verdict_sentence
from bot.report.plan import Backup, Contact, default_contacts
from bot.store.db import Analysis, latest_analysis

PURGE_BATCH = 1000  # rows per DELETE: short transactions, no long lock on analyses


@dataclass(frozen=True)
class RunRecord:
    """One stored analysis, as the report page shows it."""

    id: int
    repo: str
    number: int
    head_sha: str
    conclusion: str
    report: dict[str, Any]
    created_at: datetime.datetime
    gate: dict[str, Any] | None  # gate_document(...), None until the gate was evaluated


# -- writing ----------------------------------------------------------------------------------


async def record_analysis(
    connection: psycopg.AsyncConnection[Any], *, repo: str, number: int, analysis: Analysis
) -> int:
    """Keep one finished check; its id (the report page's `/runs/<id>`)."""
    cursor = await connection.execute(
        "INSERT INTO analyses (repo, number, head_sha, migration_fingerprint, conclusion, report)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (
            repo,
            number,
            analysis.head_sha,
            analysis.migration_fingerprint,
            analysis.conclusion,
            Jsonb(analysis.report),
        ),
    )
    row = await cursor.fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return int(row[0])


async def save_gate(
    connection: psycopg.AsyncConnection[Any], *, analysis_id: int, gate: dict[str, Any]
) -> None:
    """Store the gate's latest verdict for an analysis (a later evaluation overwrites it)."""
    await connection.execute(
        "INSERT INTO analysis_gates (analysis_id, gate) VALUES (%s, %s)"
        " ON CONFLICT (analysis_id) DO UPDATE SET gate = EXCLUDED.gate, evaluated_at = now()",
        (analysis_id, Jsonb(gate)),
    )


async def save_gate_for_head(
    connection: psycopg.AsyncConnection[Any],
    *,
    repo: str,
    number: int,
    head_sha: str,
    gate: dict[str, Any],
) -> int | None:
    """`save_gate` on the latest analysis of the head; its id, or None when there is none."""
    analysis = await latest_analysis(connection, repo=repo, number=number, head_sha=head_sha)
    if analysis is None or analysis.id is None:
        return None
    await save_gate(connection, analysis_id=analysis.id, gate=gate)
    return analysis.id


# -- reading ----------------------------------------------------------------------------------


async def load_run(connection: psycopg.AsyncConnection[Any], analysis_id: int) -> RunRecord | None:
    cursor = await connection.execute(
        "SELECT a.id, a.repo, a.number, a.head_sha, a.conclusion, a.report, a.created_at, g.gate"
        " FROM analyses a LEFT JOIN analysis_gates g ON g.analysis_id = a.id WHERE a.id = %s",
        (analysis_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return RunRecord(
        id=int(row[0]),
        repo=str(row[1]),
        number=int(row[2]),
        head_sha=str(row[3]),
        conclusion=str(row[4]),
        report=dict(row[5] or {}),
        created_at=row[6],
        gate=dict(row[7]) if row[7] is not None else None,
    )


# -- retention --------------------------------------------------------------------------------


async def purge_expired_reports(
    connection: psycopg.AsyncConnection[Any], *, retention_days: int
) -> int:
    """Delete the analyses (and their gates) older than `retention_days`; how many.

    In batches, each its own transaction, so the table is never locked for long. An
    approval given on a commit whose analysis is purged counts as stale afterwards (the
    gate no longer knows what it approved): a pull request open that long is reviewed again.
    """
    if retention_days <= 0:
        raise ValueError("retention_days must be positive")
    deleted = 0
    while True:
        async with connection.transaction():
            cursor = await connection.execute(
                "DELETE FROM analyses WHERE id IN (SELECT id FROM analyses"
                " WHERE created_at < now() - make_interval(days => %s) ORDER BY id LIMIT %s)",
                (retention_days, PURGE_BATCH),
            )
            count = cursor.rowcount
        deleted += count
        if count < PURGE_BATCH:
            return deleted


# -- the gate document ------------------------------------------------------------------------


def gate_document(
    verdict: GateVerdict,
    *,
    base_branch: str,
    contacts: Sequence[Contact] | None = None,
    backup: Backup = None,
    evaluated_at: datetime.datetime,
) -> dict[str, Any]:
    """What the page needs of a gate evaluation, as JSON."""
    return {
        "conclusion": verdict.conclusion,
        "environment": verdict.environment,
        "base_branch": base_branch.removeprefix("refs/heads/"),
        "check_name": check_name(base_branch),
        "sentence": verdict_sentence(verdict, verdict.environment),
        "changes_migrations": verdict.changes_migrations,
        "distinct_approvers": verdict.distinct_approvers,
        "roles": [
            {
                "role": role.role,
                "team": role.team,
                "required": role.required,
                "approved_by": list(role.approved_by),
                "missing": role.missing,
                "why": [{"rule": r.rule, "path": r.path, "line": r.line} for r in role.why],
                "notes": list(role.notes),
            }
            for role in verdict.roles
        ],
        "blocking_reviews": [
            {"user": b.user, "teams": list(b.teams), "commit_id": b.commit_id}
            for b in verdict.blocking_reviews
        ],
        "stale_approvals": [
            {"user": s.user, "commit_id": s.commit_id, "reason": s.reason}
            for s in verdict.stale_approvals
        ],
        "ignored_approvals": [
            {"user": i.user, "reason": i.reason} for i in verdict.ignored_approvals
        ],
        "procedure": [
            {"name": item.name, "ok": item.ok, "detail": item.detail} for item in verdict.procedure
        ],
        "contacts": [
            {"role": c.role, "team": c.team}
            for c in (contacts if contacts is not None else default_contacts())
        ],
        "backup": _backup_json(backup),
        "evaluated_at": evaluated_at.isoformat(),
    }


def contacts_from_gate(gate: dict[str, Any] | None) -> list[Contact]:
    if not gate or not gate.get("contacts"):
        return default_contacts()
    return [Contact(str(c["role"]), c.get("team")) for c in gate["contacts"]]


def backup_from_gate(gate: dict[str, Any] | None) -> Backup:
    """The backup status the gate saw (None: no source configured, or no gate yet)."""
    data = (gate or {}).get("backup")
    if not data:
        return None
    if data.get("state") == "unavailable":
        return BackupUnavailable(str(data.get("reason") or "unknown"))
    return BackupStatus(
        last_backup=_time(data.get("last_backup")),
        last_restore_test=_time(data.get("last_restore_test")),
        source=str(data.get("source") or ""),
    )


def _backup_json(backup: Backup) -> dict[str, Any] | None:
    if backup is None:
        return None
    if isinstance(backup, BackupUnavailable):
        return {"state": "unavailable", "reason": backup.reason}
    return {
        "state": "known",
        "last_backup": backup.last_backup.isoformat() if backup.last_backup else None,
        "last_restore_test": (
            backup.last_restore_test.isoformat() if backup.last_restore_test else None
        ),
        "source": backup.source,
    }


def _time(value: object) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) and value else None
