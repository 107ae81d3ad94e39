"""destructive-downgrade: judged on the downgrade, against what the upgrade created."""

from __future__ import annotations

from .helpers import downgrade_findings, ids

UPGRADE = (
    "BEGIN;\nCREATE TABLE coupons (id bigint PRIMARY KEY);\n"
    "ALTER TABLE users ADD COLUMN referral_code text;\n"
    "CREATE INDEX ix_users_referral ON users (referral_code);\n"
    "UPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1';\n"
    "COMMIT;"
)


def test_downgrade_dropping_what_its_upgrade_added_is_routine() -> None:
    downgrade = (
        "BEGIN;\nDROP INDEX ix_users_referral;\nALTER TABLE users DROP COLUMN referral_code;\n"
        "DROP TABLE coupons;\nDELETE FROM alembic_version WHERE version_num = 'b2';\nCOMMIT;"
    )
    assert downgrade_findings(UPGRADE, downgrade) == []


def test_downgrade_dropping_a_pre_existing_column_is_destructive() -> None:
    downgrade = "BEGIN;\nALTER TABLE users DROP COLUMN email;\nCOMMIT;"
    findings = downgrade_findings(UPGRADE, downgrade)
    assert ids(findings) == ["destructive-downgrade"]
    assert "users.email" in findings[0].message
    assert findings[0].phase == "downgrade"


def test_downgrade_dropping_or_truncating_pre_existing_tables_is_destructive() -> None:
    downgrade = "DROP TABLE invoices;\nTRUNCATE users;\nDROP INDEX ix_users_email;"
    messages = [f.message for f in downgrade_findings(UPGRADE, downgrade)]
    assert len(messages) == 3
    assert "drops table invoices" in messages[0]
    assert "truncates users" in messages[1]
    assert "drops index ix_users_email" in messages[2]


def test_a_rebuild_in_the_downgrade_is_not_destructive() -> None:
    downgrade = (
        "DROP INDEX CONCURRENTLY IF EXISTS ix_users_email;\n"
        "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);"
    )
    assert downgrade_findings(UPGRADE, downgrade) == []
