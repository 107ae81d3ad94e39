"""Statements the SQL reader once misread, judged end to end by the real parser and engine:
each shape with the finding it must give, next to the one it must not."""

from __future__ import annotations

import pytest

from bot.analysis.model import ActionKind as K

from .helpers import ids, in_transaction, run, statements

# --- words in a comment or a string do not decide how a statement is read -------------------


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (
            "ALTER TABLE orders -- VALIDATE CONSTRAINT comes later\n"
            "ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);",
            "add-foreign-key-validated",
        ),
        ("ALTER TABLE t ADD COLUMN c int NOT NULL /* using index */;", "add-not-null-column"),
        (
            "ALTER TABLE t ADD COLUMN c text NOT NULL CHECK (c <> 'using index');",
            "add-not-null-column",
        ),
    ],
)
def test_a_keyword_in_a_comment_or_string_keeps_the_statements_rules(sql: str, rule: str) -> None:
    findings = run(in_transaction(sql))
    assert rule in ids(findings)
    assert "unknown-statement" not in ids(findings)


def test_the_same_keyword_outside_a_comment_is_still_read_from_tokens() -> None:
    sql = in_transaction("ALTER TABLE orders VALIDATE CONSTRAINT fk; -- using index")
    assert ids(run(sql)) == []
    [validate] = [a for s in statements(sql) for a in s.actions if a.kind is K.VALIDATE_CONSTRAINT]
    assert validate.name == "fk"
