"""`migsafe db upgrade`: the bot's tables and procrastinate's schema in one command; the
downgrade removes exactly them; and migsafe's own checks pass on its own migrations."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic import command
from procrastinate.schema import SchemaManager

from bot.check import CheckOptions, run_check
from bot.errors import UserError
from bot.store import db
from tests.statedb import query

STORE = Path(db.__file__).parent
PINNED = STORE / "migrations" / "versions" / "0002_procrastinate_schema.py"
OWN_TABLES = {"deliveries", "pull_requests", "analyses"}
QUEUE_TABLES = {"procrastinate_jobs", "procrastinate_events", "procrastinate_workers"}


def _tables(conninfo: str) -> set[str]:
    rows = query(conninfo, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(name) for (name,) in rows}


def test_upgrade_creates_the_tables_and_the_queue(state_conninfo: str) -> None:
    assert _tables(state_conninfo) >= OWN_TABLES | QUEUE_TABLES
    assert db.current_revision(state_conninfo) == db.head_revision()
    # procrastinate's own check: its jobs table is where it expects it.
    assert query(state_conninfo, "SELECT to_regclass('procrastinate_jobs') IS NOT NULL") == [
        (True,)
    ]


def test_upgrade_twice_is_a_no_op(state_conninfo: str) -> None:
    db.upgrade(state_conninfo)
    assert db.current_revision(state_conninfo) == db.head_revision()


def test_downgrade_removes_everything_and_upgrade_restores_it(state_conninfo: str) -> None:
    command.downgrade(db.alembic_config(state_conninfo), "base")
    leftovers = query(
        state_conninfo,
        "SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE 'procrastinate%%'"
        " UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typname LIKE 'procrastinate%%'",
    )
    assert leftovers == []
    assert not (OWN_TABLES | QUEUE_TABLES) & _tables(state_conninfo)
    db.upgrade(state_conninfo)
    assert _tables(state_conninfo) >= OWN_TABLES | QUEUE_TABLES


def test_the_pinned_queue_schema_is_the_installed_one() -> None:
    """Fails when procrastinate is upgraded: its schema changed, and 0002 would refuse it."""
    digest = hashlib.sha256(SchemaManager.get_schema().encode("utf-8")).hexdigest()
    assert f'SCHEMA_SHA256 = "{digest}"' in PINNED.read_text()


def test_migsafe_passes_its_own_checks_in_production() -> None:
    result = run_check(
        CheckOptions(path=STORE, environment="production", sandbox=False, all_revisions=True)
    )
    errors = [finding for finding in result.findings if finding.severity.value == "error"]
    assert errors == []
    assert result.exit_code == 0


def test_a_bad_database_url_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot reach the state database"):
        db.upgrade(f"host={tmp_path} port=1 dbname=nothing connect_timeout=1")
