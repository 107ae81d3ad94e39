"""prefer-timestamptz."""

from __future__ import annotations

from .helpers import ids, in_transaction, run


def test_timestamp_without_time_zone_gets_a_notice() -> None:
    sql = "ALTER TABLE users ADD COLUMN seen_at timestamp without time zone;"
    findings = run(in_transaction(sql), "prefer-timestamptz")
    assert ids(findings) == ["prefer-timestamptz"]
    assert findings[0].severity.value == "notice"
    assert "users.seen_at" in findings[0].message


def test_timestamptz_is_fine() -> None:
    sql = "ALTER TABLE users ADD COLUMN seen_at timestamp with time zone;"
    assert run(in_transaction(sql), "prefer-timestamptz") == []
