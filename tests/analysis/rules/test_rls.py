"""disable-rls, drop-policy."""

from __future__ import annotations

from .helpers import ids, in_transaction, run


def test_disable_row_level_security_is_reported() -> None:
    findings = run(in_transaction("ALTER TABLE invoices DISABLE ROW LEVEL SECURITY;"))
    assert ids(findings) == ["disable-rls"]
    assert "invoices" in findings[0].message


def test_no_force_row_level_security_is_reported() -> None:
    findings = run(in_transaction("ALTER TABLE invoices NO FORCE ROW LEVEL SECURITY;"))
    assert ids(findings) == ["disable-rls"]
    assert "owner" in findings[0].message


def test_enabling_row_level_security_is_fine() -> None:
    sql = (
        "ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;\n"
        "ALTER TABLE invoices FORCE ROW LEVEL SECURITY;"
    )
    assert run(in_transaction(sql), "disable-rls") == []


def test_drop_policy_of_an_existing_policy_is_reported() -> None:
    findings = run(in_transaction("DROP POLICY tenant_isolation ON invoices;"))
    assert ids(findings) == ["drop-policy"]
    assert "tenant_isolation" in findings[0].message
    assert "ALTER POLICY tenant_isolation ON invoices" in (findings[0].advice or "")


def test_drop_policy_created_in_the_same_stream_is_fine() -> None:
    sql = (
        "CREATE POLICY tmp ON invoices USING (true);\nDROP POLICY tmp ON invoices;\n"
        "CREATE TABLE t (a int);\nALTER TABLE t DISABLE ROW LEVEL SECURITY;"
    )
    assert run(in_transaction(sql), "drop-policy", "disable-rls") == []
