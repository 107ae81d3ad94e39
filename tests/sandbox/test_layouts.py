"""Real-repository layouts and env.py conventions, through the whole check: dry-run and sandbox.

Each project under tests/fixtures/layouts looks like a team's repository (see its README):
the ini in a subfolder with a relative script_location and prepend_sys_path, several
version locations, env.py reading DATABASE_URL, the libpq variables, POSTGRES_* settings
through the application's settings module, `-x` arguments and a named ini section. Each
changes one integer column to bigint in revision 0002: the dry-run must report
`alter-column-type` and the sandbox `table-rewrite` and `access-exclusive-lock`, all at the
`op.alter_column` line, with every sandbox step passed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from bot.check import CheckOptions, run_check
from bot.report import render
from bot.result import CheckResult
from bot.sandbox.database import SandboxServer

FIXTURES = Path(__file__).parents[1] / "fixtures" / "layouts"
STEPS = [
    ("upgrade to the base", "passed"),
    ("upgrade to head", "passed"),
    ("post-migration checks", "passed"),
    ("rollback to the base", "passed"),
    ("upgrade again", "passed"),
]
# What would mean the project was not run the way the team runs it.
FAILURES = {"dry-run-failed", "sandbox-failed", "upgrade-failed", "downgrade-failed"}
LAYOUTS = {
    # name: the new revision's file, repository-relative
    "fastapi_settings": "backend/app/alembic/versions/0002_amount_bigint.py",
    "database_url": "services/billing/migrations/data/0002_total_bigint.py",
    "x_arguments": "db/tenants/versions/0002_points_bigint.py",
    "percent_url": "backend/app/alembic/versions/0002_amount_bigint.py",
}


def _copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def _check(root: Path, database_url: str, *, sandbox: bool = True) -> CheckResult:
    return run_check(
        CheckOptions(
            path=root,
            from_revision="0001",
            sandbox=sandbox,
            database_url=database_url,
            dry_run_timeout_s=60,
            sandbox_timeout_s=60,
        )
    )


def _line_of(root: Path, path: str, needle: str) -> int:
    lines = (root / path).read_text().splitlines()
    matches = [number for number, text in enumerate(lines, 1) if needle in text]
    assert len(matches) == 1, (needle, matches)
    return matches[0]


def _assert_judged_at_the_alter(result: CheckResult, root: Path, path: str) -> None:
    assert result.dry_run.error is None, result.dry_run.error
    assert not FAILURES & {f.rule for f in result.findings}, [f.message for f in result.findings]
    assert result.sandbox is not None
    assert [(s.name, s.outcome) for s in result.sandbox.steps] == STEPS, result.sandbox.steps
    line = _line_of(root, path, "type_=sa.BigInteger()")
    # Every judgement at the operation, whether a finding of its own or folded into one.
    found = {(f.rule, f.source, f.path, f.line) for f in result.findings} | {
        (e.rule, e.source, f.path, f.line) for f in result.findings for e in f.evidence
    }
    for rule, source in (
        ("alter-column-type", "sql"),
        ("table-rewrite", "sandbox"),
        ("access-exclusive-lock", "sandbox"),
    ):
        assert (rule, source, path, line) in found, sorted(found, key=str)


@pytest.mark.parametrize("name", ["fastapi_settings", "database_url", "x_arguments"])
def test_each_layout_passes_the_dry_run_and_the_sandbox(
    name: str, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    root = _copy(tmp_path, name)
    result = _check(root, sandbox_server.admin_conninfo)
    _assert_judged_at_the_alter(result, root, LAYOUTS[name])


def test_the_dry_run_alone_needs_no_database(tmp_path: Path) -> None:
    """Without the sandbox, env.py still finds DATABASE_URL, PG* and POSTGRES_* settings."""
    for name, path in LAYOUTS.items():
        root = _copy(tmp_path, name)
        result = _check(root, "postgresql:///unused", sandbox=False)
        assert result.dry_run.error is None, (name, result.dry_run.error)
        line = _line_of(root, path, "type_=sa.BigInteger()")
        found = {(f.rule, f.path, f.line) for f in result.findings}
        assert ("alter-column-type", path, line) in found, (name, found)


def test_x_arguments_and_version_table_reach_env_py(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    """The -x tenant names the version table: Alembic's own updates of it are no finding, and
    the migration's COMMENT shows the tenant in both the offline SQL and the sandbox trace."""
    root = _copy(tmp_path, "x_arguments")
    result = _check(root, sandbox_server.admin_conninfo)
    assert "COMMENT ON TABLE members IS 'members of acme'" in result.dry_run.upgrade_sql
    assert "alembic_version_acme" in result.dry_run.upgrade_sql
    assert not [f for f in result.findings if "alembic_version" in (f.statement or "")]
    assert result.sandbox is not None
    assert any("members of acme" in s.sql for s in result.sandbox.trace)


@pytest.mark.parametrize("dies", [False, True], ids=["raises", "dies"])
def test_the_sandbox_password_never_shows_in_the_report(
    dies: bool, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    """env.py prints its URL and password, then raises with both in the message (or dies,
    leaving them in its stderr): the JSON report shows neither."""
    root = _copy(tmp_path, "leaky_env")
    if dies:
        policy_path = root / ".github" / "migsafe.yml"
        policy = yaml.safe_load(policy_path.read_text())
        policy["sandbox"]["env"]["LEAK_AND_DIE"] = "1"
        policy_path.write_text(yaml.safe_dump(policy))
    result = _check(root, sandbox_server.admin_conninfo)
    report = render(result, "json")
    (failed,) = [f for f in result.findings if f.rule == "sandbox-failed"]
    shown = re.findall(r"<<([^>]*)>>", report)
    assert shown and set(shown) == {"***"}, shown  # the password was there, and redacted
    in_urls = re.findall(r"migsafe_sbx_[0-9a-f]+:([^@]*)@", report)
    assert in_urls and set(in_urls) == {"***"}, in_urls
    assert "connecting to" in failed.message if dies else "cannot migrate" in failed.message
    assert json.loads(report)  # still a valid document
    assert os.environ.get("PGPASSWORD") is None  # nothing leaked into migsafe's own process
