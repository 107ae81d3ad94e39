"""unknown-statement: a statement no rule understands is a notice, not nothing."""

from __future__ import annotations

import pytest

from bot.analysis.model import Statement
from bot.analysis.parse import parse_statements

from .helpers import ids, in_transaction, run


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("ALTER TABLE orders OWNER TO app;", "ALTER TABLE OWNER TO"),
        ("ALTER INDEX ix_orders_at SET TABLESPACE fast;", "ALTER INDEX"),
        ("ALTER TABLE orders SET (fillfactor = 70);", "ALTER TABLE SET"),
        ("CREATE RULE no_delete AS ON DELETE TO orders DO INSTEAD NOTHING;", "CREATE RULE"),
        ("CREATE TRIGGER audit AFTER INSERT ON orders EXECUTE FUNCTION log();", "CREATE TRIGGER"),
    ],
)
def test_a_statement_no_rule_knows_is_a_notice_naming_it(sql: str, named: str) -> None:
    findings = run(in_transaction(sql), "unknown-statement")
    assert ids(findings) == ["unknown-statement"]
    assert findings[0].severity.value == "notice"
    assert f"what {named} does" in findings[0].message


@pytest.mark.parametrize(
    "sql",
    [
        "GRANT SELECT ON orders TO reporting;",
        "DO $$ BEGIN PERFORM 1; END $$;",
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        "CREATE SCHEMA reporting;",
        "ANALYZE orders;",
        "COMMENT ON TABLE orders IS 'x';",
        "ALTER TABLE orders ADD COLUMN note text;",
        "SELECT 1;",
    ],
)
def test_known_statements_are_not_reported(sql: str) -> None:
    assert run(in_transaction(sql), "unknown-statement") == []


def test_a_statement_that_did_not_parse_is_left_to_unparsed_statement() -> None:
    stmt = Statement(sql="FROBNICATE orders", phase="upgrade", index=0, revision="r1")
    [parsed] = parse_statements([stmt])
    assert parsed.parse_error is not None
    assert run([parsed], "unknown-statement") == []
