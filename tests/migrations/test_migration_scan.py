"""Reading revision files with ast/tokenize: ids, op calls, downgrade, comments."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.analysis.migration_model import Suppression
from bot.errors import UserError
from bot.migrations.project import find_project
from bot.migrations.scan import scan_file, scan_project, scan_source

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"
LINEAR = FIXTURES / "linear" / "migrations" / "versions"

HEADER = 'from alembic import op\nimport sqlalchemy as sa\n\nrevision = "abcd1234"\n'


def scan(body: str, header: str = HEADER) -> object:
    return scan_source(header + textwrap.dedent(body), "versions/abcd1234_x.py")


def test_linear_fixture_revision_with_documented_suppressed_drop() -> None:
    migration = scan_file(LINEAR / "3c4d5e6f7a8b_drop_legacy_name.py", "v/3c.py")
    assert migration.path == "v/3c.py"
    assert migration.revision == "3c4d5e6f7a8b"
    assert migration.down_revisions == ("2b3c4d5e6f7a",)
    assert migration.message == "drop legacy name column"
    assert (migration.upgrade_line, migration.downgrade_line) == (15, 22)
    assert not migration.downgrade_empty
    drop, add = migration.ops
    assert (drop.name, drop.function, drop.line, drop.args) == (
        "drop_column",
        "upgrade",
        19,
        ["users", "legacy_name"],
    )
    assert add.function == "downgrade"
    assert add.args[1] == {"column": "legacy_name", "type": "sa.String()", "nullable": True}
    assert migration.suppressions == [
        Suppression(line=18, rules=("drop-column",), reason="approved by the backend lead in PR 42")
    ]
    assert migration.comments[16].startswith("legacy_name was replaced")
    assert migration.comment_only_lines == {16, 17, 18}


def test_annotated_assignments_of_the_current_alembic_template() -> None:
    migration = scan_file(LINEAR / "2b3c4d5e6f7a_add_email.py", "v/2b.py")
    assert migration.revision == "2b3c4d5e6f7a"
    assert migration.down_revisions == ("1a2b3c4d5e6f",)
    assert migration.branch_labels == ()


@pytest.mark.parametrize(
    ("assignments", "down", "labels", "depends"),
    [
        ("down_revision = None", (), (), ()),
        ("down_revision = ('a1', 'b2')", ("a1", "b2"), (), ()),
        ("down_revision = ['a1']\nbranch_labels = 'main'", ("a1",), ("main",), ()),
        ("down_revision = 'a1'\ndepends_on = ('x9',)", ("a1",), (), ("x9",)),
    ],
)
def test_down_revision_branch_labels_and_depends_on_shapes(
    assignments: str, down: tuple[str, ...], labels: tuple[str, ...], depends: tuple[str, ...]
) -> None:
    migration = scan(assignments + "\n")
    assert migration.down_revisions == down
    assert migration.branch_labels == labels
    assert migration.depends_on == depends


def test_op_calls_nested_in_with_loops_and_ifs_and_in_called_helpers() -> None:
    migration = scan(
        """
        TABLE = "orders"

        def _drop_old(name):
            op.drop_index(name, table_name=TABLE)

        def upgrade():
            with op.get_context().autocommit_block():
                for name in ["a", "b"]:
                    if name:
                        op.drop_column(TABLE, name)
            _drop_old("ix_old")

        def downgrade():
            pass
        """
    )
    names = [(call.name, call.function, call.args, call.kwargs) for call in migration.ops]
    assert names == [
        ("get_context", "upgrade", [], {}),
        ("drop_column", "upgrade", ["orders", None], {}),
        ("drop_index", "upgrade", [None], {"table_name": "orders"}),  # helper, after upgrade's
    ]


def test_batch_alter_table_calls_get_the_table_like_op_calls() -> None:
    migration = scan(
        """
        def upgrade():
            with op.batch_alter_table("users", schema="app") as batch_op:
                batch_op.drop_column("email")
                batch_op.alter_column("name", type_=sa.Text())
                batch_op.drop_index("ix_users_name")
                batch_op.create_index("ix_x", ["x"])
        """
    )
    calls = {call.name: call for call in migration.ops}
    assert calls["drop_column"].args == ["users", "email"]
    assert calls["alter_column"].args == ["users", "name"]
    assert calls["alter_column"].kwargs == {"type_": None}
    assert calls["drop_index"].kwargs == {"table_name": "users"}
    assert calls["create_index"].args == ["ix_x", "users", ["x"]]
    assert calls["batch_alter_table"].kwargs == {"schema": "app"}


def test_execute_keeps_literal_sql_from_text_and_dedent() -> None:
    migration = scan(
        '''
        import textwrap

        def upgrade():
            op.execute("TRUNCATE audit_log")
            op.execute(sa.text("DELETE FROM t"))
            op.execute(textwrap.dedent("""
                UPDATE t SET a = 1
            """))
            op.execute(f"DROP TABLE {name}")
        '''
    )
    assert [call.args[0] for call in migration.ops] == [
        "TRUNCATE audit_log",
        "DELETE FROM t",
        "\nUPDATE t SET a = 1\n",
        None,
    ]


def test_op_imported_under_another_name() -> None:
    migration = scan(
        """
        from alembic import op as alembic_op

        def upgrade():
            alembic_op.drop_table("t")
        """,
        header='revision = "abcd1234"\n',
    )
    assert [(call.name, call.args) for call in migration.ops] == [("drop_table", ["t"])]


def test_multi_line_call_has_line_and_end_line() -> None:
    migration = scan(
        """
        def upgrade():
            op.alter_column(
                "users",
                "email",
                nullable=False,
            )
        """
    )
    (call,) = migration.ops
    assert (call.line, call.end_line) == (7, 11)
    assert call.kwargs == {"nullable": False}


@pytest.mark.parametrize(
    ("downgrade", "empty"),
    [
        ("", True),
        ("def downgrade():\n    pass\n", True),
        ('def downgrade():\n    """Nothing to undo."""\n', True),
        ("def downgrade() -> None:\n    ...\n", True),
        ("def downgrade():\n    raise NotImplementedError\n", True),
        ('def downgrade():\n    """No way back."""\n    raise NotImplementedError("no")\n', True),
        ("def downgrade():\n    op.drop_table('t')\n", False),
        ("def downgrade():\n    raise RuntimeError('x')\n", False),
    ],
)
def test_downgrade_empty(downgrade: str, empty: bool) -> None:
    migration = scan("def upgrade():\n    op.create_table('t')\n" + downgrade)
    assert migration.downgrade_empty is empty
    assert (migration.downgrade_line is None) is (downgrade == "")


def test_multidb_template_downgrade_is_judged_by_engine_functions() -> None:
    migration = scan(
        """
        def upgrade(engine_name):
            globals()["upgrade_%s" % engine_name]()

        def downgrade(engine_name):
            globals()["downgrade_%s" % engine_name]()

        def upgrade_engine1():
            op.drop_table("t")

        def downgrade_engine1():
            pass
        """
    )
    assert migration.downgrade_empty
    assert [(call.name, call.function) for call in migration.ops] == [("drop_table", "upgrade")]


def test_suppression_comments_are_parsed() -> None:
    migration = scan(
        """
        def upgrade():
            op.drop_table("a")  # migsafe: ignore[drop-table, destructive-undocumented] -- empty
            # migsafe: ignore[drop-column]
            op.drop_column("b", "c")
            # note  migsafe:ignore[ truncate-table ]: archived first
        """
    )
    assert migration.suppressions == [
        Suppression(line=7, rules=("drop-table", "destructive-undocumented"), reason="empty"),
        Suppression(line=8, rules=("drop-column",), reason=""),
        Suppression(line=10, rules=("truncate-table",), reason="archived first"),
    ]
    assert 7 not in migration.comment_only_lines
    assert {8, 10} <= migration.comment_only_lines


def test_comments_inside_strings_are_not_comments() -> None:
    migration = scan('def upgrade():\n    op.execute("SELECT 1 -- # not a comment")\n')
    assert migration.comments == {}


def test_syntax_error_names_the_file_and_line() -> None:
    broken = FIXTURES / "broken_syntax" / "migrations" / "versions" / "2222bbbb3333_broken.py"
    with pytest.raises(UserError) as error:
        scan_file(broken, "migrations/versions/2222bbbb3333_broken.py")
    message = str(error.value)
    assert message.startswith("migrations/versions/2222bbbb3333_broken.py: line ")
    assert "line 9" in message or "line 10" in message


def test_missing_revision_names_the_file() -> None:
    path = FIXTURES / "no_revision_id" / "migrations" / "versions" / "add_things.py"
    with pytest.raises(UserError) as error:
        scan_file(path, "migrations/versions/add_things.py")
    assert str(error.value).startswith("migrations/versions/add_things.py: ")
    assert "revision" in str(error.value)


def test_non_literal_revision_names_file_and_line() -> None:
    with pytest.raises(UserError, match=r"^versions/x\.py: line 2: `revision`"):
        scan_source("import uuid\nrevision = uuid.uuid4().hex\n", "versions/x.py")


def test_non_literal_down_revision_names_file_and_line() -> None:
    with pytest.raises(UserError, match=r"^versions/x\.py: line 2: `down_revision`"):
        scan_source("revision = 'abcd'\ndown_revision = compute()\n", "versions/x.py")


def test_legacy_revision_from_hex_file_name() -> None:
    assert scan_source("down_revision = None\n", "versions/ae1027a6acf.py").revision == (
        "ae1027a6acf"
    )


def test_bytes_with_an_encoding_declaration() -> None:
    source = "# -*- coding: latin-1 -*-\nrevision = 'abcd'\n# caf\xe9\n".encode("latin-1")
    migration = scan_source(source, "versions/x.py")
    assert migration.comments[3] == "caf\xe9"


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^versions/gone\.py: cannot read"):
        scan_file(tmp_path / "gone.py", "versions/gone.py")


def test_scan_project_reads_every_revision_and_skips_init_and_pycache(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    (versions / "__pycache__").mkdir(parents=True)
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (versions / "__init__.py").write_text("")
    (versions / "__pycache__" / "x.py").write_text("broken(")
    (versions / "b_second.py").write_text("revision = 'bbbb'\ndown_revision = 'aaaa'\n")
    (versions / "a_first.py").write_text("revision = 'aaaa'\n")
    (versions / "notes.txt").write_text("not python")
    files = scan_project(find_project(tmp_path))
    assert [(f.path, f.revision) for f in files] == [
        ("migrations/versions/a_first.py", "aaaa"),
        ("migrations/versions/b_second.py", "bbbb"),
    ]


def test_scan_project_over_two_version_locations() -> None:
    files = scan_project(find_project(FIXTURES / "custom_location"))
    assert sorted(f.path for f in files) == [
        "db/extra_versions/7777aaaa0002_extra.py",
        "db/migrations/versions/7777aaaa0001_base.py",
    ]


def test_scan_project_refuses_links_out_of_the_repository(tmp_path: Path) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("revision = 'x'\n")
    repo = tmp_path / "repo"
    (repo / "migrations" / "versions").mkdir(parents=True)
    (repo / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (repo / "migrations" / "versions" / "evil.py").symlink_to(secret)
    with pytest.raises(UserError, match=r"^migrations/versions/evil\.py: is a link"):
        scan_project(find_project(repo))


def test_scan_project_surfaces_a_broken_file() -> None:
    with pytest.raises(UserError, match=r"2222bbbb3333_broken\.py: line"):
        scan_project(find_project(FIXTURES / "broken_syntax"))
