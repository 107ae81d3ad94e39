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


def test_downgrade_dropping_what_its_upgrade_created_in_a_schema_is_routine() -> None:
    upgrade = "CREATE INDEX ix_orders_user ON app.orders (user_id);"
    downgrade = "DROP INDEX app.ix_orders_user;"
    assert downgrade_findings(upgrade, downgrade) == []


def test_downgrade_recreating_what_its_upgrade_dropped_is_routine() -> None:
    upgrade = (
        "DROP INDEX ix_users_email;\nALTER TABLE users DROP COLUMN legacy_email;\n"
        "DROP TABLE old_audit;"
    )
    # Idempotent re-creation: the IF EXISTS drops find nothing, the upgrade removed it all.
    downgrade = (
        "DROP TABLE IF EXISTS old_audit;\nCREATE TABLE old_audit (id bigint);\n"
        "ALTER TABLE users DROP COLUMN IF EXISTS legacy_email;\n"
        "ALTER TABLE users ADD COLUMN legacy_email text;\n"
        "DROP INDEX IF EXISTS ix_users_email;\nCREATE INDEX ix_users_email ON users (email);"
    )
    assert downgrade_findings(upgrade, downgrade) == []


def test_downgrade_dropping_a_neighbour_of_what_the_upgrade_dropped_is_destructive() -> None:
    upgrade = "ALTER TABLE users DROP COLUMN legacy_email;\nDROP INDEX ix_users_email;"
    downgrade = (
        "ALTER TABLE users ADD COLUMN legacy_email text;\nALTER TABLE users DROP COLUMN email;\n"
        "DROP INDEX app.ix_users_email;\nDROP INDEX ix_users_name;"
    )
    messages = [f.message for f in downgrade_findings(upgrade, downgrade)]
    assert len(messages) == 3, messages
    assert "users.email" in messages[0]
    assert "app.ix_users_email" in messages[1] and "ix_users_name" in messages[2]
