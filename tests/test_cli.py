"""`migsafe check` end to end: real Alembic in the dry-run child, real git, real files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
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


def test_also_writes_the_same_run_in_more_formats(capsys, tmp_path):
    sarif, markdown = tmp_path / "r.sarif", tmp_path / "r.md"
    code, out, _ = run(
        capsys,
        str(SHOP),
        "--no-sandbox",
        "--format",
        "json",
        "--also",
        f"sarif:{sarif}",
        "--also",
        f"markdown:{markdown}",
    )
    assert code == 1
    rules = sorted({f["rule"] for f in json.loads(out)["findings"]})
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert sorted({r["ruleId"] for r in results}) == rules
    assert all(f"`{rule}`" in markdown.read_text() for rule in rules)


def test_also_names_what_is_wrong_with_its_value(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(SHOP), "--also", "pdf:report.pdf"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, as every bad input: no usage dump
    assert "--also" in err[0] and "'pdf:report.pdf'" in err[0]


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


def _readme_suppression_example() -> str:
    """The code block of the README's "Suppressing a finding" section, as written."""
    section = (ROOT / "README.md").read_text().split("### Suppressing a finding", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_suppression_example_documents_the_drop(capsys, tmp_path):
    example = _readme_suppression_example()
    assert 'op.drop_column("orders", "legacy_code")' in example
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    risky = repo / RISKY
    indented = "".join(f"    {line}\n" for line in example.splitlines())
    risky.write_text(
        risky.read_text().replace('    op.drop_column("orders", "legacy_code")\n', indented)
    )
    _, report = findings_of(capsys, str(repo), "--no-sandbox", "--env", "production")
    drop = next(f for f in report["findings"] if f["rule"] == "drop-column")
    assert drop["suppressed"] is True and drop["line"] == 26
    assert drop["suppression_reason"] == "legacy_code is archived, see ADR-7"
    undocumented = [f for f in report["findings"] if f["rule"] == "destructive-undocumented"]
    assert [f["line"] for f in undocumented] == [24]  # alter-column-type, not the drop


@pytest.mark.parametrize(
    "comment",
    [
        "# migsafe: ignore[drop-column]",  # no reason: suppresses and explains nothing
        "# migsafe: ignore[rename-column] unrelated, see ADR-7",  # about another rule
    ],
)
def test_a_suppression_without_a_reason_or_for_another_rule_explains_nothing(
    capsys, tmp_path, comment
):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    risky = repo / RISKY
    risky.write_text(
        risky.read_text().replace(
            '    op.drop_column("orders", "legacy_code")\n',
            f'    {comment}\n    op.drop_column("orders", "legacy_code")\n',
        )
    )
    _, report = findings_of(capsys, str(repo), "--no-sandbox", "--env", "production")
    assert any(
        f["rule"] == "destructive-undocumented" and f["line"] == 26 for f in report["findings"]
    )


REBUILD_REVISION = """\"\"\"retry the failed concurrent build of ix_users_email

Revision ID: 0004
Revises: 0003
\"\"\"
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '4s'")
    op.execute("SET statement_timeout = '5min'")
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_users_email", table_name="users", postgresql_concurrently=True, if_exists=True
        )
{create}


def downgrade() -> None:
    pass  # migsafe: ignore[missing-downgrade] the index is the same before and after
"""
RECREATE = """        op.create_index(
            "ix_users_email", "users", ["email"], unique=True, postgresql_concurrently=True
        )"""


@pytest.mark.parametrize(("create", "dropped"), [(RECREATE, False), ("", True)])
def test_dropping_an_index_to_build_it_again_is_a_rebuild(capsys, tmp_path, create, dropped):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    revision = repo / "migrations" / "versions" / "0004_rebuild_email_index.py"
    revision.write_text(REBUILD_REVISION.format(create=create))
    _, report = findings_of(
        capsys, str(repo), "--no-sandbox", "--env", "production", "--from", "0003"
    )
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0004"]
    drops = [f for f in report["findings"] if f["rule"] == "drop-index"]
    assert bool(drops) is dropped, drops
    if dropped:
        assert {f["severity"] for f in drops} == {"error"}
        assert {f["line"] for f in drops} == {18}


RESTORING_REVISION = """\"\"\"move the audit table to the app schema, retire orders.status

Revision ID: 0004
Revises: 0003
\"\"\"
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # migsafe: ignore[drop-column] status moved to order_events in 2.3, see ADR-9
    op.drop_column("orders", "status")
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ref", sa.Text(), index=True),
        schema="app",
    )
    op.create_index(op.f("ix_app_orders_user"), "orders", ["user_id"], schema="app")


def downgrade() -> None:
    op.drop_index(op.f("ix_app_orders_user"), table_name="orders", schema="app")
    op.drop_index(op.f("ix_app_audit_ref"), table_name="audit", schema="app")
    op.drop_table("audit", schema="app")
    op.execute("ALTER TABLE orders DROP COLUMN IF EXISTS status")
    op.add_column("orders", sa.Column("status", sa.Text()))
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "destroyed"),
    [("", []), ('    op.drop_column("users", "email")', ["drops column users.email"])],
)
def test_a_downgrade_restoring_what_its_upgrade_changed_is_not_destructive(
    capsys, tmp_path, extra, destroyed
):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    revision = repo / "migrations" / "versions" / "0004_audit_schema.py"
    revision.write_text(RESTORING_REVISION.format(extra=extra))
    _, report = findings_of(
        capsys, str(repo), "--no-sandbox", "--env", "production", "--from", "0003"
    )
    assert "DROP INDEX app.ix_app_orders_user" in report["dry_run"]["downgrade_sql"]
    found = [f["message"] for f in report["findings"] if f["rule"] == "destructive-downgrade"]
    assert [m.split(",")[0].removeprefix("the downgrade ") for m in found] == destroyed


def test_the_explain_it_example_names_the_findings_own_object(capsys):
    _, report = findings_of(capsys, str(SHOP), "--no-sandbox", "--env", "production")
    advice = {
        f["line"]: f["advice"]
        for f in report["findings"]
        if f["rule"] == "destructive-undocumented"
    }
    assert "# Changes the type of orders.total:" in advice[24]
    assert "# Drops orders.legacy_code:" in advice[25]
    assert not [a for a in advice.values() if "legacy_email" in a]
    # No placeholder where the value is known.
    for finding in report["findings"]:
        if finding["rule"] in ("rename-column", "backfill-in-migration", "volatile-default"):
            assert "<" not in finding["message"] + (finding["advice"] or ""), finding


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


def test_a_closed_pipe_ends_the_output_quietly():
    """`migsafe rules | head`: no traceback when the reader goes away first."""
    reader, writer = os.pipe()
    os.close(reader)
    with open(writer, "wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "rules"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            check=False,
        )
    assert done.stderr == b""
    assert done.returncode == 141  # 128 + SIGPIPE, as a tool killed by it


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
    assert {"rollback-schema-mismatch", "rollback-data-loss"} <= rules
    # The rewrite the sandbox saw joins the SQL rule's finding on the same operation.
    rewrites = [
        (f["rule"], f["line"], e["message"])
        for f in report["findings"]
        for e in f["evidence"]
        if e["rule"] == "table-rewrite"
    ]
    assert rewrites and all(rule != "table-rewrite" for rule, _, _ in rewrites)
    assert not any(f["rule"] == "table-rewrite" for f in report["findings"])
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


def _cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real command in a fresh process (containment is probed once per process)."""
    import os
    import sys

    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_containment_no_repository_code_runs_and_the_check_says_why(
    tmp_path: Path,
) -> None:
    """Fail closed: bubblewrap missing. The static analysis still judges the change."""
    done = _cli(
        str(SHOP), "--env", "production", "--format", "json",
        env={"MIGSAFE_BWRAP": str(tmp_path / "no-bwrap")},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    refused = [f for f in report["findings"] if f["rule"] == "sandbox-failed"]
    assert len(refused) == 1 and "bubblewrap (bwrap) not found" in refused[0]["message"]
    assert "--trust-repository" in refused[0]["message"]
    assert report["dry_run"]["upgrade_sql"] == ""  # nothing of the repository ran
    assert {"drop-column", "alter-column-type"} <= {f["rule"] for f in report["findings"]}


def test_trust_repository_runs_uncontained_and_says_so(tmp_path: Path) -> None:
    done = _cli(
        str(SHOP), "--env", "production", "--format", "json", "--no-sandbox",
        "--trust-repository",
        env={"MIGSAFE_BWRAP": str(tmp_path / "no-bwrap")},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert "sandbox-failed" not in {f["rule"] for f in report["findings"]}
    assert "ALTER TABLE orders DROP COLUMN legacy_code" in report["dry_run"]["upgrade_sql"]
    protections = report["dry_run"]["protections"]
    assert protections[0].startswith("containment: NONE: the repository is trusted")


# --- what is judged, and why (issue 12, item 4) ------------------------------------------

ROOT_POLICY = """version: 1
alembic:
  config: backend/alembic.ini  # relative to the root, also when checking backend/
branches:
  main: production
  release/*: staging
"""


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def backend_repo(tmp_path: Path) -> Path:
    """A repository with its Alembic project in backend/ and its policy at the root: main
    holds 0001 and 0002; the branch `feature` adds 0003; main then moves on without it."""
    repo = tmp_path / "repo"
    backend = repo / "backend"
    shutil.copytree(SHOP, backend)
    shutil.rmtree(backend / ".github")  # the only policy is the root's
    (repo / ".github").mkdir()
    (repo / ".github" / "migsafe.yml").write_text(ROOT_POLICY)
    risky = backend / RISKY
    held = risky.read_text()
    risky.unlink()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    risky.write_text(held)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "risky")
    git(repo, "checkout", "-q", "main")
    (repo / "README").write_text("main moves on\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "unrelated")
    git(repo, "checkout", "-q", "feature")
    return repo


def test_default_base_is_the_merge_base_with_main_and_the_rules_speak(capsys, backend_repo):
    """`cd backend && migsafe check`: the root's policy is found, main's `branches:` entry
    gives production, and only 0003 is new, so its destructive changes are errors."""
    merge_base = git_out(backend_repo, "merge-base", "HEAD", "main")
    assert merge_base != git_out(backend_repo, "rev-parse", "main")
    code, report = findings_of(capsys, str(backend_repo / "backend"), "--no-sandbox")
    assert code == 1
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0003"]
    assert ("drop-column", RISKY, 25, "error") in locations(report)
    assert report["environment"] == "production"
    judged = report["judged"]
    assert judged["policy"] == {
        "path": ".github/migsafe.yml",
        "git_ref": "main",
        "text": f".github/migsafe.yml at main (merge-base {merge_base[:7]})",
    }
    assert judged["environment"]["origin"] == "branches"
    assert judged["environment"]["text"].startswith("branches: main → production")
    assert judged["revisions"] == {
        "origin": "merge-base",
        "new": 1,
        "existing": 2,
        "git_ref": "main",
        "commit": merge_base,
        "revision": None,
        "text": f"1 new since main (merge-base {merge_base[:7]}); 2 existing",
    }


def test_the_text_report_says_what_it_judged(capsys, backend_repo):
    merge_base = git_out(backend_repo, "merge-base", "HEAD", "main")[:7]
    _, out, _ = run(capsys, str(backend_repo / "backend"), "--no-sandbox")
    lines = out.splitlines()
    assert lines[0].startswith("migsafe: ") and "environment production" in lines[0]
    assert lines[1] == f"Policy: .github/migsafe.yml at main (merge-base {merge_base})"
    assert lines[2].startswith("Environment: production — branches: main → production in ")
    assert lines[3] == f"Revisions: 1 new since main (merge-base {merge_base}); 2 existing"


def test_a_policy_the_change_adds_does_not_replace_the_bases(capsys, backend_repo):
    (backend_repo / "backend" / ".github").mkdir()
    (backend_repo / "backend" / ".github" / "migsafe.yml").write_text("version: 1\n")
    _, report = findings_of(capsys, str(backend_repo / "backend"), "--no-sandbox")
    assert report["judged"]["policy"]["path"] == ".github/migsafe.yml"
    assert report["judged"]["policy"]["git_ref"] == "main"
    assert report["environment"] == "production"


def test_the_nearest_policy_from_path_up_to_the_repository_root_applies(capsys, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo / "backend")
    (repo / "backend" / ".github" / "migsafe.yml").write_text("version: 1\nenvironment: local\n")
    (repo / ".github").mkdir()
    (repo / ".github" / "migsafe.yml").write_text("version: 1\nenvironment: staging\n")
    git(repo, "init", "-q", "-b", "main")  # a repository without commits: no base to read at
    _, report = findings_of(capsys, str(repo / "backend"), "--no-sandbox")
    assert report["judged"]["policy"] == {
        "path": "backend/.github/migsafe.yml",
        "git_ref": None,
        "text": "backend/.github/migsafe.yml",
    }
    assert report["environment"] == "local"
    assert "no default branch" in report["judged"]["revisions"]["text"]
    (repo / "backend" / ".github" / "migsafe.yml").unlink()
    _, report = findings_of(capsys, str(repo / "backend"), "--no-sandbox")
    assert report["judged"]["policy"]["path"] == ".github/migsafe.yml"
    assert report["environment"] == "staging"


def test_the_default_branch_is_origin_head_when_there_is_one(capsys, backend_repo):
    git(backend_repo, "branch", "-q", "-m", "main", "trunk")
    git(backend_repo, "update-ref", "refs/remotes/origin/trunk", "trunk")
    git(backend_repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    _, report = findings_of(capsys, str(backend_repo / "backend"), "--no-sandbox")
    assert report["judged"]["revisions"]["git_ref"] == "origin/trunk"
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0003"]


@pytest.mark.parametrize(
    ("argv", "environment", "origin"),
    [
        (["--base", "main"], "production", "branches"),
        (["--base", "origin/main"], "production", "branches"),
        (["--base", "release/2.0"], "staging", "branches"),
        (["--base", "main", "--env", "ci"], "ci", "flag"),
        (["--from", "0002"], "ci", "default"),
    ],
)
def test_base_takes_the_environment_from_branches_unless_env_is_given(
    capsys, backend_repo, argv, environment, origin
):
    git(backend_repo, "update-ref", "refs/remotes/origin/main", "main")
    git(backend_repo, "branch", "-q", "release/2.0", "main")
    _, report = findings_of(capsys, str(backend_repo / "backend"), "--no-sandbox", *argv)
    assert (report["environment"], report["judged"]["environment"]["origin"]) == (
        environment,
        origin,
    )
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0003"]


def test_all_judges_every_revision(capsys, backend_repo):
    _, report = findings_of(capsys, str(backend_repo / "backend"), "--no-sandbox", "--all")
    assert all(r["new"] for r in report["revisions"])
    assert report["judged"]["revisions"]["origin"] == "all"
    assert report["judged"]["revisions"]["text"] == "3 new (--all); 0 existing"
    with pytest.raises(SystemExit) as exited:
        run(capsys, str(backend_repo), "--all", "--from", "0001")
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_on_the_default_branch_only_uncommitted_revisions_are_new(capsys, backend_repo):
    held = (backend_repo / "backend" / RISKY).read_text()
    git(backend_repo, "checkout", "-q", "main")
    code, report = findings_of(capsys, str(backend_repo / "backend"), "--no-sandbox")
    assert report["judged"]["revisions"]["text"].startswith("0 new since main (merge-base ")
    assert (code, report["findings"]) == (0, [])
    (backend_repo / "backend" / RISKY).write_text(held)
    code, report = findings_of(capsys, str(backend_repo / "backend"), "--no-sandbox")
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0003"]
    assert code == 1


def test_outside_git_the_latest_revision_of_each_head_is_new(capsys, tmp_path):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    (repo / ".github" / "migsafe.yml").write_text("version: 1\nenvironment: staging\n")
    code, report = findings_of(capsys, str(repo), "--no-sandbox")
    assert code == 1
    assert [r["revision"] for r in report["revisions"] if r["new"]] == ["0003"]
    revisions = report["judged"]["revisions"]
    assert revisions["origin"] == "latest"
    assert revisions["text"].startswith("1 new: the latest revision of each head (not in a git")
    assert revisions["text"].endswith("; 2 existing")
    assert report["judged"]["policy"]["path"] == ".github/migsafe.yml"
    assert report["judged"]["environment"] == {
        "name": "staging",
        "origin": "policy",
        "text": "environment: staging in .github/migsafe.yml",
    }
    assert ("drop-column", RISKY, 25, "error") in locations(report)


def test_without_a_policy_file_the_report_says_so(capsys, tmp_path):
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    shutil.rmtree(repo / ".github")
    _, out, _ = run(capsys, str(repo), "--no-sandbox")
    assert "Policy: none: the checklist's defaults" in out.splitlines()


# --- bad input: one line, exit 2 (issue 12, item 7) --------------------------------------


def cli(*argv: str, env: dict[str, str] | None = None, wrap: list[str] | None = None):  # type: ignore[no-untyped-def]
    """The real entry point in a fresh interpreter (the worktree's `bot`)."""
    environment = {k: v for k, v in os.environ.items() if k != "MIGSAFE_SANDBOX_URL"}
    environment.update(env or {})
    return subprocess.run(
        [*(wrap or []), sys.executable, "-m", "bot.cli", "check", *argv],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_exit_2(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith("migsafe: error: ")
    for text in expected:
        assert text in lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("garbage", "not a PostgreSQL URL (postgresql://user@host/db) or key=value"),
        ("postgresql://u:s3cret@[::1", "not a PostgreSQL URL"),
        ("u:s3cret@h", "not a PostgreSQL URL"),  # libpq's own message would quote it
        ("postgresql://u:s3cret@127.0.0.1:{port}/db", "cannot connect to the sandbox server"),
        ("host=/nonexistent password=s3cret", "cannot connect to the sandbox server"),
    ],
)
def test_a_bad_or_unreachable_database_url_is_one_line_and_exit_2(url, expected):
    done = cli(str(SHOP), "--database-url", url.format(port=free_port()))
    assert_one_line_exit_2(done, "--database-url: ", expected)
    assert "s3cret" not in done.stderr


def test_a_bad_sandbox_url_from_the_environment_names_the_variable():
    done = cli(str(SHOP), env={"MIGSAFE_SANDBOX_URL": f"postgresql://127.0.0.1:{free_port()}/x"})
    assert_one_line_exit_2(done, "$MIGSAFE_SANDBOX_URL: cannot connect")


def test_missing_initdb_is_one_line_and_exit_2(tmp_path):
    """The embedded cluster without PostgreSQL's server binaries: /usr/lib/postgresql is
    hidden in a private mount namespace (where that is allowed), PATH has none either."""
    empty = tmp_path / "empty"
    empty.mkdir()
    hide = [
        "unshare",
        "--mount",
        "sh",
        "-c",
        f'mount --bind {empty} /usr/lib/postgresql 2>/dev/null || true; exec "$@"',
        "sh",
    ]
    env = {"PATH": "/usr/bin:/bin"}
    probe = subprocess.run(
        [*hide, sys.executable, "-c", "from bot.sandbox.cluster import find_binaries as f; f()"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode == 0 or "UserError" not in probe.stderr:
        pytest.skip(f"cannot hide the PostgreSQL binaries here: {probe.stderr[-200:]}")
    done = cli(str(SHOP), env=env, wrap=hide)
    assert_one_line_exit_2(done, "PostgreSQL server binaries not found (initdb")


def test_a_dry_run_failure_names_the_exception_and_the_file_line(capsys, tmp_path):
    """env.py reads a variable nobody gave the dry-run child: the summary is the KeyError at
    env.py's line, not the last line Alembic logged."""
    repo = tmp_path / "shop"
    shutil.copytree(SHOP, repo)
    env_py = repo / "migrations" / "env.py"
    source = env_py.read_text().replace(
        "def run_migrations_offline() -> None:\n",
        "def run_migrations_offline() -> None:\n    import os\n\n    os.environ['SECRET_KEY']\n",
    )
    env_py.write_text(source)
    line = source.splitlines().index("    os.environ['SECRET_KEY']") + 1
    code, report = findings_of(capsys, str(repo), "--no-sandbox")
    assert code == 1
    expected = f"KeyError: 'SECRET_KEY' (at migrations/env.py:{line}, during upgrade)"
    assert report["dry_run"]["error_summary"] == expected
    [failed] = [f for f in report["findings"] if f["rule"] == "dry-run-failed"]
    assert failed["message"] == f"alembic could not produce the offline SQL: {expected}"
    assert (failed["path"], failed["line"]) == ("migrations/env.py", line)
    _, out, _ = run(capsys, str(repo), "--no-sandbox")
    assert f"Dry-run failed: {expected} (full error: --format json or markdown)" in out
    assert "Will assume transactional DDL" not in out


def test_pg_version_drives_the_version_rules_and_is_checked(capsys, tmp_path):
    from bot.analysis.options import PgVersion
    from bot.analysis.sandbox_model import SandboxReport
    from bot.check import target_version
    from bot.policy.config import parse_policy

    sql = tmp_path / "m.sql"
    sql.write_text("CREATE INDEX CONCURRENTLY ix ON t (a);\n")
    assert main(["lint", str(sql), "--pg-version", "14.2", "--format", "json"]) == 1
    assert "concurrent-index-corruption" in capsys.readouterr().out
    assert main(["lint", str(sql), "--pg-version", "14.4", "--format", "json"]) == 0
    assert "concurrent-index-corruption" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(SHOP), "--pg-version", "fourteen"])
    assert exit_.value.code == 2
    assert "--pg-version: 'fourteen'" in capsys.readouterr().err
    # check: the flag, else the policy, else the sandbox server's version
    server = SandboxReport(server_version="15.18 (Debian 15.18-0+deb12u1)")
    policy = parse_policy('postgres_version: "14.2"\n', "p.yml")
    default = parse_policy("", "p.yml")
    assert target_version(PgVersion(13), policy, server) == PgVersion(13)
    assert target_version(None, policy, server) == PgVersion(14, 2)
    assert target_version(None, default, server) == PgVersion(15, 18)
    assert target_version(None, default, None) is None


def test_sockets_and_fifos_in_the_tree_are_left_out_of_the_copy(capsys, tmp_path):
    """A local PostgreSQL's socket or a FIFO in the project folder must not end the check."""
    tree = tmp_path / "shop"
    shutil.copytree(SHOP, tree)
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(tree / ".s.PGSQL.5432"))
    os.mkfifo(tree / "fifo")
    try:
        code, out, err = run(capsys, str(tree), "--no-sandbox")
    finally:
        listening.close()
    assert code == 1, err
    assert "drop-column" in out


def test_the_emergency_procedure_names_the_policys_contacts_and_teams(capsys):
    code, out, _ = run(capsys, str(SHOP), "--no-sandbox")
    assert code == 1
    assert "Contact: backend-lead (@shop-org/backend-leads), devops-lead (@shop-org/devops)." in out


def test_sarif_paths_start_at_the_repository_root(capsys, tmp_path):
    """Code scanning maps a SARIF uri from the repository root: checking backend/ must say
    backend/migrations/..., while the other reports stay relative to the folder checked."""
    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo / "backend")
    (repo / ".git").mkdir()  # the marker of a repository's root, as the policy search uses
    code, out, _ = run(capsys, str(repo / "backend"), "--no-sandbox", "--format", "sarif")
    assert code == 1
    uris = {
        location["physicalLocation"]["artifactLocation"]["uri"]
        for result in json.loads(out)["runs"][0]["results"]
        for location in result["locations"]
    }
    assert uris and all(uri.startswith("backend/migrations/") for uri in uris), uris
    _, report = findings_of(capsys, str(repo / "backend"), "--no-sandbox")
    assert all(f["path"].startswith("migrations/") for f in report["findings"] if f["path"])


def test_an_error_in_a_config_file_names_that_file(capsys, tmp_path):
    config = tmp_path / "team.yml"
    config.write_text("alembic:\n  config: nowhere/alembic.ini\n")
    code, _, err = run(capsys, str(SHOP), "--no-sandbox", "--config", str(config))
    assert code == 2
    assert err.strip() == (
        f"migsafe: error: {config}: alembic.config points to nowhere/alembic.ini, which does "
        f"not exist under {SHOP}"
    )
