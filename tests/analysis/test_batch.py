"""SQL findings of a batch block moved onto the batch_op call they come from."""

from __future__ import annotations

import textwrap

from bot.analysis.batch import onto_batch_calls
from bot.analysis.model import Finding, Phase, Severity
from bot.migrations.scan import scan_source

PATH = "versions/abcd1234.py"
SOURCE = textwrap.dedent(
    """\
    from alembic import op
    import sqlalchemy as sa

    revision = "abcd1234"


    def upgrade():
        with op.batch_alter_table("orders") as batch_op:
            batch_op.drop_column("a")
            batch_op.alter_column("total", type_=sa.Numeric())
            batch_op.drop_column("b")
    """
)


def sql_finding(rule: str, phase: Phase = "upgrade") -> Finding:
    return Finding(rule, Severity.ERROR, "m", PATH, line=8, phase=phase, source="sql")


def test_each_finding_moves_to_its_call_in_order() -> None:
    file = scan_source(SOURCE, PATH)
    findings = [sql_finding("drop-column"), sql_finding("alter-column-type")]
    findings.append(sql_finding("drop-column"))
    moved = onto_batch_calls(findings, [file])
    assert [(f.rule, f.line) for f in moved] == [
        ("drop-column", 9),
        ("alter-column-type", 10),
        ("drop-column", 11),
    ]


def test_findings_without_a_matching_call_stay_on_the_with_line() -> None:
    file = scan_source(SOURCE, PATH)
    findings = [sql_finding("missing-lock-timeout"), sql_finding("drop-column", phase="downgrade")]
    moved = onto_batch_calls(findings, [file])
    assert [f.line for f in moved] == [8, 8]
