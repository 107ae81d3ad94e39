"""Reports of a check: text (terminal), markdown (check-run summary), JSON, SARIF.

`render` picks the format. The helpers the formats share are `bot.report.common`; the
verdict line and the rollback commands are importable from here too.
"""

from __future__ import annotations

from bot.errors import UserError
from bot.report.common import rollback_commands as rollback_commands
from bot.report.common import verdict as verdict
from bot.report.json_report import render_json
from bot.report.markdown import render_markdown
from bot.report.plan import Contact
from bot.report.sarif import render_sarif
from bot.report.text import render_text
from bot.result import CheckResult

FORMATS = ("text", "markdown", "json", "sarif")


def render(
    result: CheckResult, fmt: str, *, color: bool = False, link_base: str | None = None
) -> str:
    """The report of `result` in `fmt` (text | markdown | json | sarif).

    `color` only affects text; `link_base` (e.g. `https://github.com/o/r/blob/<sha>/`)
    only markdown, where it turns locations into links.
    """
    contacts = [Contact(role, team) for role, team in result.contacts] or None
    if fmt == "text":
        return render_text(result, color=color, contacts=contacts)
    if fmt == "markdown":
        return render_markdown(result, link_base=link_base, contacts=contacts)
    if fmt == "json":
        return render_json(result)
    if fmt == "sarif":
        return render_sarif(result)
    raise UserError(f"unknown report format '{fmt}' (choose one of {', '.join(FORMATS)})")
