"""Destructive op.* calls found in the source of new revisions."""

from __future__ import annotations

import textwrap

import pytest

from bot.analysis.catalog import RULES
from bot.analysis.migration_model import MigrationFile
from bot.analysis.model import Finding, Severity
from bot.analysis.rules.destructive import DESTRUCTIVE_RULE_IDS
from bot.analysis.rules.static import static_findings
from bot.migrations.scan import scan_source
from bot.policy.checklist import APPROVAL_RULE_IDS


def migration(body: str, *, new: bool = True, name: str = "abcd1234") -> MigrationFile:
    source = f'from alembic import op\nimport sqlalchemy as sa\n\nrevision = "{name}"\n'
    scanned = scan_source(source + textwrap.dedent(body), f"versions/{name}.py")
    scanned.new = new
    return scanned


def upgrade(*lines: str) -> str:
    return "def upgrade():\n" + "".join(f"    {line}\n" for line in lines)


def rules(findings: list[Finding]) -> list[str]:
    return [finding.rule for finding in findings]


@pytest.mark.parametrize(
    ("call", "rule", "named"),
    [
        ('op.drop_table("users")', "drop-table", "users"),
        ('op.drop_table("users", schema="app")', "drop-table", "app.users"),
        ('op.drop_column("users", "email")', "drop-column", "users.email"),
        ('op.drop_index("ix_users_email", table_name="users")', "drop-index", "ix_users_email"),
        ('op.drop_index(op.f("ix_users_email"))', "drop-index", "ix_users_email"),
        ("op.drop_index(name_from_runtime)", "drop-index", "<not a literal>"),
        (
            'op.alter_column("users", "age", type_=sa.BigInteger())',
            "alter-column-type",
            "users.age",
        ),
        (
            'op.execute("TRUNCATE TABLE ONLY audit_log, events CASCADE")',
            "truncate-table",
            "audit_log, events",
        ),
        ('op.execute(sa.text("truncate audit_log"))', "truncate-table", "audit_log"),
        (
            "op.execute(\"SET lock_timeout = '30s'; TRUNCATE audit_log\")",
            "truncate-table",
            "audit_log",
        ),
    ],
)
def test_destructive_call_gives_a_finding(call: str, rule: str, named: str) -> None:
    file = migration(upgrade("pass", call))
    (finding,) = static_findings([file])
    assert finding.rule == rule
    assert named in finding.message
    assert (finding.path, finding.line, finding.revision) == ("versions/abcd1234.py", 7, "abcd1234")
    assert finding.severity is Severity.ERROR
    assert (finding.source, finding.phase) == ("static", "upgrade")


@pytest.mark.parametrize(
    "call",
    [
        'op.alter_column("users", "email", nullable=False)',
        'op.execute("UPDATE users SET a = 1")',
        'op.execute("-- TRUNCATE in a comment only\\nSELECT 1")',
        "op.execute(sql_built_at_runtime)",
        'op.add_column("users", sa.Column("email", sa.String()))',
        'op.create_index("ix", "users", ["email"])',
    ],
)
def test_safe_calls_give_no_finding(call: str) -> None:
    assert static_findings([migration(upgrade(call))]) == []


def test_batch_operations_are_found_with_their_table() -> None:
    file = migration(
        upgrade(
            'with op.batch_alter_table("users") as batch_op:',
            '    batch_op.drop_column("email")',
            '    batch_op.alter_column("age", type_=sa.BigInteger())',
        )
    )
    findings = static_findings([file])
    assert rules(findings) == ["drop-column", "alter-column-type"]
    assert "users.email" in findings[0].message


def test_downgrade_drops_are_not_judged_here() -> None:
    file = migration(upgrade('op.create_table("t")') + 'def downgrade():\n    op.drop_table("t")\n')
    assert static_findings([file]) == []


def test_old_files_are_not_judged() -> None:
    assert static_findings([migration(upgrade('op.drop_table("users")'), new=False)]) == []


def test_dropping_what_an_earlier_new_revision_created_is_not_destructive() -> None:
    first = migration(
        upgrade(
            'op.create_table("tmp", sa.Column("id", sa.Integer()))',
            'op.add_column("users", sa.Column("nickname", sa.String()))',
            'op.create_index("ix_tmp", "tmp", ["id"])',
        ),
        name="aaaa1111",
    )
    second = migration(
        upgrade(
            'op.drop_index("ix_tmp", table_name="tmp")',
            'op.drop_column("users", "nickname")',
            'op.drop_column("tmp", "id")',
            'op.drop_table("tmp")',
            'op.drop_column("users", "email")',
        ),
        name="bbbb2222",
    )
    findings = static_findings([first, second])
    assert [(f.rule, f.line) for f in findings] == [("drop-column", 10)]


def test_static_ids_are_the_sql_rules_destructive_ids() -> None:
    assert set(DESTRUCTIVE_RULE_IDS) <= set(RULES)
    assert set(DESTRUCTIVE_RULE_IDS) <= set(APPROVAL_RULE_IDS)


def test_drop_in_public_schema_of_a_table_created_earlier_is_not_reported() -> None:
    created = migration(upgrade('op.create_table("t", sa.Column("id", sa.Integer()))'))
    dropped = migration(upgrade('op.drop_table("t", schema="public")'), name="bbbb2222")
    assert static_findings([created, dropped]) == []


def test_batch_calls_carry_the_line_of_their_with_block() -> None:
    scanned = migration(
        upgrade(
            'with op.batch_alter_table("orders") as batch_op:',
            '    batch_op.alter_column("total", type_=sa.Numeric(12, 2))',
            '    batch_op.drop_column("legacy")',
            'op.drop_column("users", "email")',
        )
    )
    assert [(call.name, call.line, call.batch_line) for call in scanned.ops] == [
        ("batch_alter_table", 6, None),
        ("alter_column", 7, 6),
        ("drop_column", 8, 6),
        ("drop_column", 9, None),
    ]


def test_drop_index_directly_re_created_is_a_rebuild() -> None:
    body = upgrade(
        "with op.get_context().autocommit_block():",
        '    op.drop_index("ix_users_email", table_name="users", if_exists=True,',
        "                  postgresql_concurrently=True)",
        '    op.create_index("ix_users_email", "users", ["email"], postgresql_concurrently=True)',
    )
    assert static_findings([migration(body)]) == []


@pytest.mark.parametrize(
    "after",
    [
        'op.create_index("ix_users_name", "users", ["name"])',  # another name
        'op.create_index("ix_users_email", "accounts", ["email"])',  # another table
        'op.create_index("ix_users_email", "users", ["email"], schema="billing")',
        'op.drop_column("users", "legacy")',  # no re-create at all
    ],
)
def test_drop_index_not_directly_re_created_is_reported(after: str) -> None:
    body = upgrade('op.drop_index("ix_users_email", table_name="users")', after)
    assert "drop-index" in rules(static_findings([migration(body)]))
