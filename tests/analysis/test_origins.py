"""A child's file:line for a statement stands only where the parent's own scan vouches for it."""

from __future__ import annotations

import textwrap

from bot.analysis.migration_model import CallSite, MigrationFile
from bot.analysis.model import Finding, Severity, Statement
from bot.analysis.origins import NO_SUPPRESSION, vouch_statements, vouched, with_notes
from bot.analysis.parse import parse_statements
from bot.analysis.suppress import apply_suppressions
from bot.migrations.scan import scan_source

PATH = "versions/b2.py"
OTHER = "versions/b1.py"
SOURCE = """\
revision = "b2"
down_revision = "b1"


def upgrade():
    # migsafe: ignore[drop-column] legacy is unused since 2.3
    op.drop_column("accounts", "legacy")
    op.create_index(
        "ix_accounts_email",
        "accounts",
        ["email"],
    )
    bind = op.get_bind()
    bind.execute(sa.text("UPDATE accounts SET amount = 0"))
    with op.batch_alter_table("notes") as batch_op:
        batch_op.drop_column("body")
    (op
        .drop_table("old"))
    sa.Enum("a", "b", name="mood").create(bind)
"""
DROP_EMAIL = "ALTER TABLE accounts DROP COLUMN email"


def files() -> dict[str, MigrationFile]:
    other = scan_source('revision = "b1"\ndown_revision = None\n', OTHER)
    return {PATH: scan_source(SOURCE, PATH), OTHER: other}


def test_the_scan_records_each_call_that_can_emit_sql_at_the_lines_python_reports() -> None:
    sites = scan_source(SOURCE, PATH).call_sites
    up = "upgrade"
    assert sites[7] == (CallSite("drop_column", ("accounts", "legacy"), function=up),)
    assert sites[8] == (CallSite("create_index", ("ix_accounts_email", "accounts"), function=up),)
    assert 9 not in sites and 6 not in sites  # an argument's line, a comment's
    assert 13 not in sites  # op.get_bind() emits nothing
    update = ("UPDATE accounts SET amount = 0",)
    assert sites[14] == (CallSite("execute", sql=update, function=up),)
    batch = {site.name: site.words for site in sites[15]}
    assert batch == {"batch_alter_table": ("notes",), "drop_column": ("notes", "body")}
    assert sites[16] == (CallSite("drop_column", ("body",), function=up),)
    # A method call spanning lines: at its first line, and (Python 3.11+) at the name's.
    assert sites[17] == sites[18] == (CallSite("drop_table", ("old",), function=up),)
    assert sites[19] == (CallSite("create", opaque=True, function=up),)


def test_the_line_of_the_operation_that_emits_the_statement_stands() -> None:
    sql = "ALTER TABLE accounts DROP COLUMN legacy"
    assert vouched(sql, PATH, 7, files(), revision="b2") == (PATH, 7, None)
    index = "CREATE INDEX ix_accounts_email ON accounts (email)"
    assert vouched(index, PATH, 8, files()) == (PATH, 8, None)
    assert vouched("ALTER TABLE notes DROP COLUMN body", PATH, 15, files()) == (PATH, 15, None)
    assert vouched("DROP TABLE old", PATH, 18, files()) == (PATH, 18, None)
    assert vouched("CREATE TYPE mood AS ENUM ('a', 'b')", PATH, 19, files())[1] == 19


def test_an_execute_of_a_literal_vouches_for_that_statement_only() -> None:
    assert vouched("UPDATE accounts  SET amount = 0;", PATH, 14, files()) == (PATH, 14, None)
    path, line, refused = vouched(DROP_EMAIL, PATH, 14, files())
    assert (path, line) == (PATH, None) and refused is not None


def test_an_execute_of_a_variable_keeps_its_line_but_no_suppression() -> None:
    source = (
        'revision = "b2"\ndef upgrade():\n    op.execute(SQL)  # migsafe: ignore[drop-column] x\n'
    )
    scanned = {PATH: scan_source(source, PATH)}
    path, line, refused = vouched(DROP_EMAIL, PATH, 3, scanned)
    assert (path, line) == (PATH, 3)
    assert refused is not None and refused.kept_line == 3
    assert NO_SUPPRESSION in refused.note()


def test_a_statement_acting_on_more_than_the_call_names_is_refused() -> None:
    """op.drop_table("old") cannot have emitted DROP TABLE old, accounts; nor a comment
    naming the table stand in for it."""
    for sql in ("DROP TABLE old, accounts", "DROP TABLE accounts /* old */"):
        assert vouched(sql, PATH, 18, files())[1] is None, sql


def test_an_upgrade_statement_is_not_vouched_for_at_a_line_of_downgrade() -> None:
    source = (
        'revision = "b2"\ndef upgrade():\n    pass\n'
        'def downgrade():\n    op.drop_table("old")  # migsafe: ignore[drop-table] gone\n'
    )
    scanned = {PATH: scan_source(source, PATH)}
    assert vouched("DROP TABLE old", PATH, 5, scanned, phase="downgrade")[1] == 5
    assert vouched("DROP TABLE old", PATH, 5, scanned, phase="upgrade")[1] is None


def test_a_line_whose_operation_could_not_emit_the_statement_is_refused() -> None:
    for line in (
        6,  # the suppression comment itself
        7,  # drop_column, but of another column
        8,  # an index, not a column
        15,  # the batch drops a column of another table
        9,  # inside a call, not where Python reports it
        400,  # no such line
    ):
        path, kept, refused = vouched(DROP_EMAIL, PATH, line, files())
        assert (path, kept) == (PATH, None), line
        assert refused is not None and refused.claimed == f"{PATH}:{line}"


def test_a_path_other_than_the_running_revisions_file_is_refused() -> None:
    # The dry-run says which revision ran: the claim of another revision's file falls back
    # to the running revision's own file, without a line.
    sql = "ALTER TABLE accounts DROP COLUMN legacy"
    path, line, refused = vouched(sql, PATH, 7, files(), revision="b1")
    assert (path, line) == (OTHER, None) and refused is not None
    # A file that is no revision at all: no file, no line.
    path, line, refused = vouched(sql, "env.py", 7, files())
    assert (path, line) == (None, None) and refused is not None
    assert "names no file" in refused.note()
    # Said to come from no file (env.py, Alembic): nothing to vouch for, nothing refused.
    assert vouched("SET lock_timeout = '1s'", None, 3, files()) == (None, None, None)


def test_a_refused_line_leaves_the_finding_unsuppressed_and_says_why() -> None:
    migration = files()[PATH]
    migration.new = True
    forged = Statement(DROP_EMAIL, "upgrade", 0, revision="b2", path=PATH, line=7)
    honest = Statement(
        "ALTER TABLE accounts DROP COLUMN legacy", "upgrade", 1, revision="b2", path=PATH, line=7
    )
    statements = parse_statements([forged, honest])
    refused = vouch_statements(statements, files())
    assert [(s.path, s.line) for s in statements] == [(PATH, None), (PATH, 7)]
    findings = [
        Finding(
            "drop-column", Severity.ERROR, f"drops {s.sql}", s.path, s.line, "b2", s.sql, "upgrade"
        )
        for s in statements
    ]
    noted = with_notes(findings, refused)
    marked = apply_suppressions(noted, {PATH: migration}, known_rules={"drop-column"})
    assert [f.suppressed for f in marked] == [False, True]
    assert marked[0].message == (
        f"drops {DROP_EMAIL} (the process running the migration reported this statement at "
        f"{PATH}:7, where migsafe's own reading of the revision file finds no operation that "
        f"could emit it: the finding names {PATH} without a line, and no suppression comment "
        "applies to it)"
    )
    assert marked[1].message == "drops ALTER TABLE accounts DROP COLUMN legacy"


def test_a_batch_that_copies_its_table_may_emit_the_copy() -> None:
    source = textwrap.dedent(
        """\
        revision = "b2"
        def upgrade():
            with op.batch_alter_table("notes", recreate="always") as batch_op:
                batch_op.drop_column("body")
        """
    )
    scanned = {PATH: scan_source(source, PATH)}
    copy = "INSERT INTO _alembic_tmp_notes (id) SELECT notes.id FROM notes"
    assert vouched(copy, PATH, 3, scanned)[1] == 3
    assert vouched("DROP TABLE accounts", PATH, 3, scanned)[1] is None


def test_every_statement_an_operation_emits_stands_at_its_line() -> None:
    """What each operation emits besides its main statement, as Alembic renders it."""
    source = textwrap.dedent(
        """\
        revision = "b2"
        def upgrade():
            op.drop_index("ix_users_email", table_name="users", postgresql_concurrently=True)
            op.alter_column("users", "name", type_=sa.Text, new_column_name="full_name")
            op.create_table("moods", sa.Column("m", sa.Enum("a", name="mood")))
            with op.batch_alter_table("users") as batch_op:
                batch_op.drop_index("ix_users_name")
        """
    )
    scanned = {PATH: scan_source(source, PATH)}
    for line, sql in [
        (3, "DROP INDEX CONCURRENTLY IF EXISTS ix_users_email"),
        (4, "ALTER TABLE users ALTER COLUMN name TYPE TEXT"),
        (4, "ALTER TABLE users RENAME name TO full_name"),
        (5, "CREATE TYPE mood AS ENUM ('a')"),
        (5, "CREATE TABLE moods (m mood)"),
        (6, "DROP INDEX ix_users_name"),
    ]:
        assert vouched(sql, PATH, line, scanned)[1] == line, sql
    assert vouched("DROP INDEX ix_other", PATH, 3, scanned)[1] is None
    assert vouched("ALTER TABLE users ALTER COLUMN email TYPE TEXT", PATH, 4, scanned)[1] is None


def test_a_suppression_at_a_line_kept_without_vouching_does_not_apply() -> None:
    """The suppression pass itself skips such lines: the comment on `op.execute(SQL)` was
    written for whatever that variable held, not for what the child says came from there."""
    from bot.analysis.origins import Refused, unsuppressible

    source = (
        'revision = "b2"\n'
        "def upgrade():\n"
        "    # migsafe: ignore[drop-column] reviewed: legacy is unused\n"
        "    op.execute(SQL)\n"
        "    # migsafe: ignore[drop-column] reviewed: legacy is unused\n"
        '    op.drop_column("accounts", "legacy")\n'
    )
    migration = scan_source(source, PATH)
    forged = Finding("drop-column", Severity.ERROR, "drops email", PATH, 4, statement=DROP_EMAIL)
    legacy = "ALTER TABLE accounts DROP COLUMN legacy"
    reviewed = Finding("drop-column", Severity.ERROR, "drops legacy", PATH, 6, statement=legacy)
    shown = Refused(DROP_EMAIL, PATH, f"{PATH}:4", kept_line=4)
    notes = unsuppressible([shown])
    marked_forged, marked_reviewed = apply_suppressions(
        [forged, reviewed], {PATH: migration}, {"drop-column"}, notes
    )
    assert not marked_forged.suppressed and NO_SUPPRESSION in marked_forged.message
    assert marked_reviewed.suppressed and marked_reviewed.message == "drops legacy"
    # Without the note the same comment would have suppressed it: the test can fail.
    [plain, _] = apply_suppressions([forged, reviewed], {PATH: migration}, {"drop-column"})
    assert plain.suppressed
