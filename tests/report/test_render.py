from __future__ import annotations

import pytest

from bot.errors import UserError
from bot.report import FORMATS, render, rollback_commands, verdict
from bot.report.json_report import render_json
from bot.report.markdown import render_markdown
from bot.report.sarif import render_sarif
from bot.report.text import render_text

from . import CLEANUP, sample_result


def test_render_dispatches_to_each_format() -> None:
    result = sample_result()
    assert render(result, "text") == render_text(result)
    assert render(result, "text", color=True) == render_text(result, color=True)
    assert render(result, "markdown") == render_markdown(result)
    assert render(result, "json") == render_json(result)
    assert render(result, "sarif") == render_sarif(result)


def test_render_passes_the_link_base_to_markdown() -> None:
    markdown = render(sample_result(), "markdown", link_base="https://github.com/o/r/blob/s/")
    assert f"(https://github.com/o/r/blob/s/{CLEANUP}#L14)" in markdown


def test_the_formats_are_the_cli_choices() -> None:
    assert FORMATS == ("text", "markdown", "json", "sarif")


def test_an_unknown_format_is_a_user_error_naming_the_choices() -> None:
    with pytest.raises(
        UserError, match=r"unknown report format 'html' \(choose one of text, markdown"
    ):
        render(sample_result(), "html")


def test_every_format_ends_with_a_newline() -> None:
    for fmt in FORMATS:
        assert render(sample_result(), fmt).endswith("\n")


def test_verdict_uses_singular_for_one() -> None:
    result = sample_result(findings=sample_result().findings[:1])
    assert verdict(result) == "migsafe: 1 error, 0 warnings — environment production — exit 1"


def test_rollback_goes_back_to_each_base_of_a_change_that_starts_from_several() -> None:
    assert rollback_commands(sample_result(base=("a1", "b2"))) == [
        "alembic downgrade a1",
        "alembic downgrade b2",
    ]
    assert rollback_commands(sample_result(base=())) == ["alembic downgrade base"]
