"""CheckResults built by hand for the report tests: every shape a report must handle."""

from __future__ import annotations

from bot.analysis.migration_model import DryRun, MigrationFile
from bot.analysis.model import Family, Finding, RuleInfo, Severity, Statement
from bot.result import CheckResult, EnvironmentChoice, Judged, NewRevisions, PolicyOrigin

VERSIONS = "migrations/versions"
CLEANUP = f"{VERSIONS}/0003_orders_cleanup.py"


def rule(rule_id: str, family: Family, severity: Severity, summary: str) -> RuleInfo:
    return RuleInfo(
        id=rule_id,
        family=family,
        default_severity=severity,
        summary=summary,
        explanation=f"Why {rule_id} matters, and the safe alternative.",
    )


RULES = {
    info.id: info
    for info in [
        rule("drop-column", Family.DESTRUCTIVE, Severity.ERROR, "a column is dropped"),
        rule("missing-lock-timeout", Family.TIMEOUT, Severity.WARNING, "no lock_timeout"),
        rule("create-index-non-concurrently", Family.LOCKING, Severity.WARNING, "index"),
        rule("add-not-null-column", Family.LOCKING, Severity.WARNING, "NOT NULL column"),
        rule("missing-downgrade", Family.REVISION, Severity.WARNING, "empty downgrade()"),
        rule("multiple-heads", Family.REVISION, Severity.ERROR, "more than one head"),
        rule("rename-table", Family.COMPATIBILITY, Severity.WARNING, "a table is renamed"),
        rule("dry-run-failed", Family.META, Severity.ERROR, "the dry-run failed"),
    ]
}

BACKFILL_ADVICE = (
    "Add the column as nullable, backfill it, then set NOT NULL:\n"
    "\n"
    "ALTER TABLE orders ADD COLUMN status VARCHAR(20) NULL;\n"
    "UPDATE orders SET status = 'new' WHERE status IS NULL;\n"
    "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;\n"
    "\n"
    "Run the backfill in batches on large tables."
)


def findings() -> list[Finding]:
    return [
        Finding(
            rule="drop-column",
            severity=Severity.ERROR,
            message="Dropping column orders.legacy_ref destroys its data.",
            path=CLEANUP,
            line=14,
            revision="0003",
            statement="ALTER TABLE orders DROP COLUMN legacy_ref",
            phase="upgrade",
            advice="Stop reading the column in a release first, then drop it.",
            approval_roles=["backend-lead", "product-owner"],
        ),
        Finding(
            rule="missing-lock-timeout",
            severity=Severity.ERROR,
            message="ALTER TABLE orders runs without a lock_timeout.",
            path=CLEANUP,
            line=12,
            revision="0003",
            statement="ALTER TABLE orders ADD COLUMN status VARCHAR(20) NOT NULL",
            phase="upgrade",
            advice="SET lock_timeout = '30s';",
        ),
        Finding(
            rule="create-index-non-concurrently",
            severity=Severity.WARNING,
            message="CREATE INDEX on orders blocks writes while it builds.",
            path=CLEANUP,
            line=20,
            revision="0003",
            statement="CREATE INDEX ix_orders_status ON orders (status)",
            phase="upgrade",
            suppressed=True,
            suppression_reason="orders has 12 rows in every environment",
        ),
        Finding(
            rule="add-not-null-column",
            severity=Severity.WARNING,
            message="ADD COLUMN status NOT NULL without a default fails on existing rows.",
            path=CLEANUP,
            line=12,
            revision="0003",
            statement="ALTER TABLE orders ADD COLUMN status VARCHAR(20) NOT NULL",
            phase="upgrade",
            advice=BACKFILL_ADVICE,
        ),
        Finding(
            rule="missing-downgrade",
            severity=Severity.WARNING,
            message="downgrade() does nothing: this revision cannot be rolled back.",
            revision="0003",
            source="static",
        ),
        Finding(
            rule="multiple-heads",
            severity=Severity.NOTICE,
            message="The history has two heads: 0003 and 0002b.",
            source="project",
        ),
    ]


def statements() -> tuple[list[Statement], list[Statement]]:
    def up(index: int, sql: str, line: int) -> Statement:
        return Statement(sql, "upgrade", index, revision="0003", path=CLEANUP, line=line)

    upgrade = [
        up(0, "ALTER TABLE orders ADD COLUMN status VARCHAR(20) NOT NULL", 12),
        up(1, "ALTER TABLE orders DROP COLUMN legacy_ref", 14),
        up(2, "CREATE INDEX ix_orders_status ON orders (status)", 20),
        Statement("UPDATE alembic_version SET version_num='0003'", "upgrade", 3, revision="0003"),
    ]
    downgrade = [
        Statement("DROP INDEX ix_orders_status", "downgrade", 0, "0003", CLEANUP, 30),
        Statement("UPDATE alembic_version SET version_num='0002'", "downgrade", 1, "0003"),
    ]
    return upgrade, downgrade


def revisions() -> list[MigrationFile]:
    return [
        MigrationFile(f"{VERSIONS}/0001_create.py", "0001", (), message="create users"),
        MigrationFile(f"{VERSIONS}/0002_index.py", "0002", ("0001",), message="index email"),
        MigrationFile(CLEANUP, "0003", ("0002",), message="orders cleanup", new=True),
    ]


JUDGED = Judged(
    policy=PolicyOrigin(
        ".github/migsafe.yml", "main", ".github/migsafe.yml at main (merge-base 3f2c1a0)"
    ),
    environment=EnvironmentChoice(
        "production", "branches", "branches: main → production in .github/migsafe.yml"
    ),
    revisions=NewRevisions(
        "merge-base",
        1,
        2,
        "1 new since main (merge-base 3f2c1a0); 2 existing",
        git_ref="main",
        commit="3f2c1a0" + "0" * 33,
    ),
)


def sample_result(**changes: object) -> CheckResult:
    """A production check of one risky new revision; keyword arguments replace fields."""
    upgrade, downgrade = statements()
    result = CheckResult(
        project=".",
        environment="production",
        revisions=revisions(),
        base=("0002",),
        heads=("0003",),
        findings=findings(),
        dry_run=DryRun(
            upgrade=upgrade,
            downgrade=downgrade,
            upgrade_sql=";\n".join(s.sql for s in upgrade) + ";\n",
            downgrade_sql=";\n".join(s.sql for s in downgrade) + ";\n",
            protections=["no network (unshare -n)", "time limit 60 s"],
        ),
        rules=dict(RULES),
        approvals_required=["backend-lead", "product-owner"],
        script_location="migrations",
        judged=JUDGED,
    )
    for name, value in changes.items():
        setattr(result, name, value)
    return result


def failed_dry_run_result() -> CheckResult:
    """The dry-run child failed: no SQL, one dry-run-failed finding."""
    return sample_result(
        findings=[
            Finding(
                rule="dry-run-failed",
                severity=Severity.ERROR,
                message="alembic upgrade --sql failed: NameError: name 'sa' is not defined",
                source="project",
            )
        ],
        dry_run=DryRun(
            error="Traceback (most recent call last):\n"
            f'  File "/tmp/tree/{CLEANUP}", line 14, in upgrade\n'
            "NameError: name 'sa'\n"
            "--- child stderr (last lines) ---\n"
            "INFO  [alembic.runtime.migration] Will assume transactional DDL.",
            error_summary=f"NameError: name 'sa' (at {CLEANUP}:14, during upgrade)",
            error_path=CLEANUP,
            error_line=14,
        ),
    )


def clean_result() -> CheckResult:
    """Nothing found: the add-then-backfill-then-swap pattern with both timeouts set."""
    return sample_result(findings=[], approvals_required=[], base=())
