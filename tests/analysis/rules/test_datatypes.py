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


# `op.create_table("events", sa.Column("id", sa.Integer, primary_key=True),
#  sa.Column("happened_at", sa.DateTime))` in offline mode:
CREATE_TABLE_EVENTS = (
    "CREATE TABLE events (\n    id SERIAL NOT NULL, \n"
    "    happened_at TIMESTAMP WITHOUT TIME ZONE, \n    PRIMARY KEY (id)\n);"
)


def test_a_timestamp_column_of_a_new_table_gets_a_notice() -> None:
    findings = run(in_transaction(CREATE_TABLE_EVENTS), "prefer-timestamptz")
    assert ids(findings) == ["prefer-timestamptz"]
    assert "events.happened_at" in findings[0].message


def test_a_timestamptz_column_of_a_new_table_is_fine() -> None:
    sql = "CREATE TABLE events (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL);"
    assert run(in_transaction(sql), "prefer-timestamptz") == []


def test_a_timestamp_array_gets_a_notice() -> None:
    sql = (
        "ALTER TABLE users ADD COLUMN seen timestamp[];\n"
        "CREATE TABLE visits (id bigint, at timestamp(3)[][]);\n"
        "ALTER TABLE users ALTER COLUMN logins TYPE timestamp without time zone[];"
    )
    findings = run(in_transaction(sql), "prefer-timestamptz")
    assert [f.message.split(" ", 1)[0] for f in findings] == [
        "users.seen",
        "visits.at",
        "users.logins",
    ]


def test_a_timestamptz_array_is_fine() -> None:
    sql = "ALTER TABLE users ADD COLUMN seen timestamptz[];"
    assert run(in_transaction(sql), "prefer-timestamptz") == []
