"""`migsafe check` end to end: real Alembic in the dry-run child, real git, real files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHOP = ROOT / "examples" / "shop"
CHECKLIST = ROOT / "examples" / "checklist_pattern"
RISKY = "migrations/versions/0003_orders_cleanup.py"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def findings_of(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code, out, _ = run(capsys, *argv, "--format", "json")
    return code, json.loads(out)


def locations(report: dict[str, object]) -> set[tuple[str, str, int, str]]:
    return {
        (f["rule"], f["path"], f["line"], f["severity"])  # type: ignore[index]
        for f in report["findings"]  # type: ignore[attr-defined]
        if f["path"]  # type: ignore[index]
    }


def test_example_in_production_reports_each_risk_at_its_line(capsys):
    code, report = findings_of(capsys, str(SHOP), "--no-sandbox", "--env", "production")
    assert code == 1
    found = locations(report)
    expected = {
        ("volatile-default", RISKY, 20, "error"),
        ("missing-lock-timeout", RISKY, 20, "error"),
        ("missing-statement-timeout", RISKY, 20, "error"),
        ("alter-column-type", RISKY, 24, "error"),
        ("drop-column", RISKY, 25, "error"),
        ("destructive-undocumented", RISKY, 24, "error"),
        ("destructive-undocumented", RISKY, 25, "error"),
        ("create-index-non-concurrently", RISKY, 26, "error"),
        ("add-foreign-key-validated", RISKY, 27, "error"),
        ("rename-column", RISKY, 28, "warning"),
        ("backfill-in-migration", RISKY, 29, "warning"),
    }
    assert expected <= found, sorted(expected - found)
    assert report["approvals_required"] == ["backend-lead", "product-owner"]
    drop = next(f for f in report["findings"] if f["rule"] == "drop-column")
    assert drop["approval_roles"] == ["backend-lead", "product-owner"]
    assert drop["revision"] == "0003"
    # Only the new revision is judged: 0001 and 0002 are the deployed base.
    assert {f["revision"] for f in report["findings"] if f["revision"]} == {"0003"}
    new = [r["revision"] for r in report["revisions"] if r["new"]]
    assert new == ["0003"]
    assert "ALTER TABLE orders DROP COLUMN legacy_code" in report["dry_run"]["upgrade_sql"]
    assert "ALTER TABLE users DROP COLUMN api_key" in report["dry_run"]["downgrade_sql"]


def test_environment_changes_severity_and_approvals(capsys):
    _, ci = findings_of(capsys, str(SHOP), "--no-sandbox", "--env", "ci")
    _, local = findings_of(capsys, str(SHOP), "--no-sandbox", "--env", "local")
    _, staging = findings_of(capsys, str(SHOP), "--no-sandbox", "--env", "staging")

    def severity(report: dict, rule: str) -> str:
        return next(f["severity"] for f in report["findings"] if f["rule"] == rule)

    assert severity(ci, "missing-lock-timeout") == "warning"
    assert severity(local, "missing-lock-timeout") == "notice"
    assert severity(staging, "missing-lock-timeout") == "error"
    assert severity(ci, "drop-column") == "warning"
    assert ci["approvals_required"] == []
    assert staging["approvals_required"] == ["backend-lead"]


def test_checklist_pattern_has_no_error_in_production(capsys):
    code, report = findings_of(capsys, str(CHECKLIST), "--no-sandbox", "--env", "production")
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert errors == []
    assert code == 0
    rules = {f["rule"] for f in report["findings"]}
    assert "missing-lock-timeout" not in rules and "missing-statement-timeout" not in rules


def test_text_report_is_the_default(capsys):
    code, out, _ = run(capsys, str(SHOP), "--no-sandbox", "--env", "production")
    assert code == 1
    assert f"{RISKY}:25" in out
    assert "drop-column" in out


def test_output_file_and_formats(capsys, tmp_path):
    for fmt in ("markdown", "sarif"):
        target = tmp_path / f"report.{fmt}"
        code, out, _ = run(
            capsys, str(SHOP), "--no-sandbox", "--format", fmt, "--output", str(target)
        )
        assert code == 1
        assert out == ""
        text = target.read_text()
        assert "drop-column" in text
    sarif = json.loads((tmp_path / "report.sarif").read_text())
    assert sarif["version"] == "2.1.0"


def test_from_revision_selects_what_follows(capsys):
    _, report = findings_of(capsys, str(SHOP), "--no-sandbox", "--from", "0001")
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0002", "0003"]
    # 0002 builds its index concurrently outside a transaction: no finding there.
    assert not [f for f in report["findings"] if f["revision"] == "0002"]


def test_unknown_revision_is_bad_input(capsys):
    code, _out, err = run(capsys, str(SHOP), "--no-sandbox", "--from", "nope")
    assert code == 2
    assert "nope" in err and "Traceback" not in err


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def shop_repo(tmp_path: Path) -> Path:
    """The example shop as a git repository whose main holds 0001 and 0002."""
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    (repo / ".github" / "migsafe.yml").write_text("version: 1\n")
    risky = repo / RISKY
    held = risky.read_text()
    risky.unlink()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    risky.write_text(held)
    return repo


def test_base_ref_compares_with_git(capsys, shop_repo):
    code, report = findings_of(
        capsys, str(shop_repo), "--no-sandbox", "--base", "main", "--env", "production"
    )
    assert code == 1
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0003"]
    assert ("drop-column", RISKY, 25, "error") in locations(report)


def test_head_ref_checks_a_commit_not_the_work_tree(capsys, shop_repo):
    git(shop_repo, "checkout", "-q", "-b", "feature")
    git(shop_repo, "add", ".")
    git(shop_repo, "commit", "-q", "-m", "risky")
    (shop_repo / RISKY).unlink()  # the work tree no longer has it; the commit does
    _, report = findings_of(
        capsys, str(shop_repo), "--no-sandbox", "--base", "main", "--head", "feature"
    )
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0003"]


def test_unknown_git_ref_is_bad_input(capsys, shop_repo):
    code, _, err = run(capsys, str(shop_repo), "--no-sandbox", "--base", "no-such-branch")
    assert code == 2
    assert "no-such-branch" in err


def test_no_alembic_project_is_bad_input(capsys, tmp_path):
    code, _, err = run(capsys, str(tmp_path), "--no-sandbox")
    assert code == 2
    assert "alembic.ini" in err and str(tmp_path) in err


def test_bad_policy_file_names_file_and_key(capsys, tmp_path):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    (repo / ".github" / "migsafe.yml").write_text("version: 1\nrules:\n  drop-tabel: off\n")
    code, _, err = run(capsys, str(repo), "--no-sandbox")
    assert code == 2
    assert "migsafe.yml" in err and "drop-tabel" in err


def test_unreadable_yaml_is_bad_input(capsys, tmp_path):
    config = tmp_path / "policy.yml"
    config.write_text("rules: [unclosed\n")
    code, _, err = run(capsys, str(SHOP), "--no-sandbox", "--config", str(config))
    assert code == 2
    assert "policy.yml" in err


def test_missing_config_file_is_bad_input(capsys, tmp_path):
    code, _, err = run(capsys, str(SHOP), "--no-sandbox", "--config", str(tmp_path / "nope.yml"))
    assert code == 2
    assert "nope.yml" in err


def test_not_a_directory_is_bad_input(capsys, tmp_path):
    code, _, err = run(capsys, str(tmp_path / "missing"), "--no-sandbox")
    assert code == 2
    assert "missing" in err


def test_suppression_with_reason_keeps_the_finding_visible(capsys, tmp_path):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    risky = repo / RISKY
    risky.write_text(
        risky.read_text().replace(
            '    op.drop_column("orders", "legacy_code")',
            "    # legacy_code has been unused since 2025; its data is archived in S3.\n"
            "    # migsafe: ignore[drop-column] archived, approved in ADR-7\n"
            '    op.drop_column("orders", "legacy_code")',
        )
    )
    _, report = findings_of(capsys, str(repo), "--no-sandbox", "--env", "production")
    drop = next(f for f in report["findings"] if f["rule"] == "drop-column")
    assert drop["suppressed"] is True
    assert drop["suppression_reason"] == "archived, approved in ADR-7"
    assert drop["line"] == 27
    # The comment above documents it: no destructive-undocumented for that line.
    assert not [
        f for f in report["findings"] if f["rule"] == "destructive-undocumented" and f["line"] == 27
    ]


def test_dry_run_failure_is_a_finding_not_a_crash(capsys, tmp_path):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    risky = repo / RISKY
    risky.write_text(
        risky.read_text().replace(
            "def upgrade() -> None:\n", "def upgrade() -> None:\n    raise RuntimeError('boom')\n"
        )
    )
    code, report = findings_of(capsys, str(repo), "--no-sandbox", "--env", "production")
    assert code == 1
    failed = [f for f in report["findings"] if f["rule"] == "dry-run-failed"]
    assert failed and "boom" in failed[0]["message"]
    # The static scan still sees the destructive operations.
    assert any(f["rule"] == "drop-column" and f["source"] == "static" for f in report["findings"])


def test_rules_command_lists_public_ids(capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for rule in ("drop-table", "missing-lock-timeout", "add-not-null-column", "multiple-heads"):
        assert rule in out
    assert main(["rules", "no-such-rule"]) == 2


def test_example_sandbox_catches_the_broken_downgrade(capsys):
    """Issue 3's acceptance: the embedded PostgreSQL applies, traces and rolls back the
    example; its downgrade leaves the index behind and loses legacy_code's data."""
    code, report = findings_of(capsys, str(SHOP), "--env", "production")
    assert code == 1
    sandbox = report["sandbox"]
    assert sandbox["ran"] is True
    assert sandbox["server_version"]
    rules = {f["rule"] for f in report["findings"] if f["source"] == "sandbox"}
    assert {"rollback-schema-mismatch", "rollback-data-loss", "table-rewrite"} <= rules
    loss = next(f for f in report["findings"] if f["rule"] == "rollback-data-loss")
    assert "orders" in loss["message"]
    # The trace: the ALTER on users (line 20) holds ACCESS EXCLUSIVE until COMMIT.
    first = sandbox["trace"][0]
    assert (first["path"], first["line"]) == (RISKY, 20)
    assert {"relation": "users", "mode": "AccessExclusiveLock"} in first["locks"]
    assert first["lock_timeout"] == "0"
    steps = {s["name"]: s["outcome"] for s in sandbox["steps"]}
    assert steps["upgrade to head"] == "passed"
    assert steps["rollback to the base"] == "failed"


def test_no_sandbox_says_so(capsys):
    _, report = findings_of(capsys, str(SHOP), "--no-sandbox")
    assert report["sandbox"] == {"ran": False, "skipped_reason": "not requested (--no-sandbox)"}


BATCH_REVISION = '''"""orders: money as numeric

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("SET statement_timeout = '60s'")
    with op.batch_alter_table("orders") as batch_op:
        # total is converted in place; amounts fit numeric(12, 2), checked in ADR-9.
        # migsafe: ignore[alter-column-type] approved in ADR-9
        batch_op.alter_column("total", type_=sa.Numeric(12, 2))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.alter_column("total", type_=sa.Integer())
'''


def test_batch_finding_merges_on_the_batch_op_line_and_is_suppressed(capsys, tmp_path):
    """Alembic traces batch SQL to the `with` line; the finding belongs to the batch_op line,
    where the static scan, the suppression and the documenting comment are."""
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    (repo / RISKY).write_text(BATCH_REVISION)
    code, report = findings_of(capsys, str(repo), "--no-sandbox", "--env", "ci")
    findings = [(f["rule"], f["line"], f["suppressed"]) for f in report["findings"]]
    assert findings == [("alter-column-type", 19, True)]
    assert code == 0


def test_base_ref_reads_recursive_version_locations(capsys, tmp_path):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    ini = repo / "alembic.ini"
    ini.write_text(
        ini.read_text().replace("[alembic]\n", "[alembic]\nrecursive_version_locations = true\n")
    )
    (repo / ".github" / "migsafe.yml").write_text("version: 1\n")
    versions = repo / "migrations" / "versions"
    (versions / "2026").mkdir()
    for path in versions.glob("*.py"):
        path.rename(versions / "2026" / path.name)
    risky = versions / "2026" / Path(RISKY).name
    held = risky.read_text()
    risky.unlink()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    risky.write_text(held)
    _, report = findings_of(capsys, str(repo), "--no-sandbox", "--base", "main")
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0003"]


def test_policy_rules_apply_to_suppression_findings(capsys, tmp_path):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    (repo / ".github" / "migsafe.yml").write_text(
        'version: 1\nalembic:\n  base_revision: "0002"\n'
        "rules:\n  suppression-missing-reason: off\n  suppression-unknown-rule: notice\n"
    )
    risky = repo / RISKY
    risky.write_text(
        risky.read_text().replace(
            '    op.drop_column("orders", "legacy_code")',
            "    # migsafe: ignore[drop-column]\n"
            "    # migsafe: ignore[no-such-rule] because\n"
            '    op.drop_column("orders", "legacy_code")',
        )
    )
    _, report = findings_of(capsys, str(repo), "--no-sandbox", "--env", "production")
    severities = {f["rule"]: f["severity"] for f in report["findings"]}
    assert "suppression-missing-reason" not in severities
    assert severities["suppression-unknown-rule"] == "notice"


@pytest.mark.parametrize("linked", ["alembic.ini", ".github/migsafe.yml"])
def test_link_out_of_the_repository_is_refused_unread(capsys, tmp_path, linked):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:secret first line\n")
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    (repo / ".github" / "migsafe.yml").write_text("version: 1\n")  # alembic.ini is found
    (repo / linked).unlink()
    (repo / linked).symlink_to(secret)
    code, _, err = run(capsys, str(repo), "--no-sandbox")
    assert code == 2
    assert f"{linked}: is a link that leads outside the repository" in err
    assert "secret first line" not in err


SANDBOX_FIXTURES = ROOT / "tests" / "fixtures" / "sandbox"


@pytest.mark.parametrize(
    ("fixture", "seen_in_effect"),
    [
        ("env_sets_timeouts", True),  # env.py sets them on the connection: the trace says so
        ("alter_then_backfill", False),  # no timeout anywhere: the dry-run's finding alone
    ],
)
def test_what_the_sandbox_child_reports_about_timeouts_never_lifts_the_finding(
    capsys, fixture, seen_in_effect
):
    """The trace comes from the process running the repository's code: a compliant
    lock_timeout it reports is said in the finding, which stays an error."""
    code, report = findings_of(
        capsys, str(SANDBOX_FIXTURES / fixture), "--from", "0001", "--env", "production"
    )
    [lock] = [f for f in report["findings"] if f["rule"] == "missing-lock-timeout"]
    assert lock["severity"] == "error" and code == 1
    reported = "the sandbox's trace reports a compliant lock_timeout in effect"
    assert (reported in lock["message"]) is seen_in_effect, lock["message"]
    if seen_in_effect:
        assert "cannot lift the finding" in lock["message"]
    # Never two findings for one missing timeout.
    assert not [f for f in report["findings"] if f["rule"] == "lock-timeout-not-set"]
