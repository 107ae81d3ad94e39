"""validate-in-same-transaction, transaction-nesting, vacuum-in-transaction."""

from __future__ import annotations

from bot.analysis.model import Statement
from bot.analysis.parse import parse_statements

from .helpers import TIMEOUTS, ids, in_transaction, revisions, run

ADD_NOT_VALID = (
    "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) "
    "REFERENCES users (id) NOT VALID;"
)
VALIDATE = "ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;"


def test_validate_in_the_transaction_that_added_the_constraint_is_flagged() -> None:
    findings = run(in_transaction(f"{ADD_NOT_VALID}\n{VALIDATE}"), "validate-in-same-transaction")
    assert ids(findings) == ["validate-in-same-transaction"]
    assert findings[0].line == 5  # the VALIDATE (BEGIN and two SETs come first)
    assert "orders_user_fk" in findings[0].message


def test_validate_in_a_later_revision_of_the_same_transaction_is_flagged() -> None:
    # Alembic's default: one BEGIN ... COMMIT around every new revision.
    stream = revisions(("r1", f"BEGIN;\n{TIMEOUTS}{ADD_NOT_VALID}"), ("r2", f"{VALIDATE}\nCOMMIT;"))
    findings = run(stream, "validate-in-same-transaction")
    assert [(f.rule, f.revision) for f in findings] == [("validate-in-same-transaction", "r2")]


def test_validate_after_a_commit_is_fine() -> None:
    # transaction_per_migration=True, or an autocommit block around the VALIDATE
    stream = revisions(
        ("r1", in_transaction(ADD_NOT_VALID)),
        ("r2", in_transaction(VALIDATE)),
    )
    assert run(stream, "validate-in-same-transaction") == []
    sql = f"BEGIN;\n{TIMEOUTS}{ADD_NOT_VALID}\nCOMMIT;\n{VALIDATE}\nBEGIN;\nCOMMIT;"
    assert run(sql, "validate-in-same-transaction") == []


def test_validate_of_a_constraint_added_elsewhere_is_fine() -> None:
    assert run(in_transaction(VALIDATE), "validate-in-same-transaction") == []


def one_string(sql: str) -> list[Statement]:
    """`op.execute(sql)` with several statements in it: one Statement of the dry-run."""
    return parse_statements([Statement(sql=sql, phase="upgrade", index=0, revision="r1")])


def test_add_and_validate_in_one_multi_statement_string_is_flagged() -> None:
    stream = one_string(f"{ADD_NOT_VALID} {VALIDATE}")
    assert ids(run(stream, "validate-in-same-transaction")) == ["validate-in-same-transaction"]


def test_commit_written_into_the_migration_is_flagged_at_that_commit() -> None:
    stream = revisions(
        ("r1", f"BEGIN;\n{TIMEOUTS}ALTER TABLE users ADD COLUMN a int;"),
        ("r2", "COMMIT;\nCREATE INDEX CONCURRENTLY ix ON users (a);"),
        ("r3", "ALTER TABLE users ADD COLUMN b int;\nCOMMIT;"),
    )
    findings = run(stream, "transaction-nesting")
    assert [(f.rule, f.revision, f.statement) for f in findings] == [
        ("transaction-nesting", "r2", "COMMIT")
    ]


def test_an_autocommit_block_and_transaction_per_migration_are_fine() -> None:
    stream = revisions(
        ("r1", "BEGIN;\nALTER TABLE users ADD COLUMN a int;\nCOMMIT;"),
        ("r2", "BEGIN;\nCOMMIT;\nCREATE INDEX CONCURRENTLY ix ON users (a);\nBEGIN;\nCOMMIT;"),
    )
    assert run(stream, "transaction-nesting") == []


def test_begin_inside_the_transaction_and_rollback_are_flagged() -> None:
    sql = in_transaction("BEGIN;\nALTER TABLE users ADD COLUMN a int;\nROLLBACK;")
    findings = run(sql, "transaction-nesting")
    assert [f.statement for f in findings] == ["BEGIN", "ROLLBACK"]


def test_commit_inside_a_multi_statement_execute_is_flagged() -> None:
    stream = one_string("COMMIT; VACUUM users")
    assert ids(run(stream, "transaction-nesting")) == ["transaction-nesting"]


def test_vacuum_inside_a_transaction_is_flagged() -> None:
    findings = run(in_transaction("VACUUM ANALYZE users;"), "vacuum-in-transaction")
    assert ids(findings) == ["vacuum-in-transaction"]
    assert "autocommit_block" in (findings[0].advice or "")
    assert ids(run(in_transaction("VACUUM FULL users;"), "vacuum-in-transaction")) == [
        "vacuum-in-transaction"
    ]


def test_vacuum_outside_a_transaction_is_fine() -> None:
    sql = "BEGIN;\nCOMMIT;\nVACUUM ANALYZE users;\nBEGIN;\nCOMMIT;"
    assert run(sql, "vacuum-in-transaction") == []
