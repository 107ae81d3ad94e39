"""The markdown report: what becomes the summary of the `migsafe` check run.

GitHub caps a check run's `output.text` at 65,535 characters, so the report is built from
parts that can be cut in a fixed order (SQL statements, advice, then table rows) and ends
with a note saying what was cut. All repository-derived text is escaped for where it
lands: table cells, inline HTML, fenced blocks.

Over 400 lines: one renderer of one document, section by section, with the size budget
GitHub sets for a check run's summary.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from urllib.parse import quote

from bot.analysis.model import Finding, Statement
from bot.analysis.rule import doc_url
from bot.analysis.rules.downgrade import DESTRUCTIVE_DOWNGRADE
from bot.analysis.rules.revisions import MISSING_DOWNGRADE
from bot.report import sandbox_view
from bot.report.common import (
    approval_findings,
    evidence_line,
    judged_lines,
    location,
    ordered,
    plural,
    rollback_commands,
    statement_origin,
    verdict,
)
from bot.report.plan import Backup, Contact, RollbackPlan, plan_for_result
from bot.result import CheckResult

MAX_CHARS = 65_535
LIST_LIMIT = 10  # revisions listed, findings named per approval role: the table has all
ERROR_TAIL_CHARS = 4_000  # of a failed dry-run's error text: its end names the exception
ROLLBACK_RULES = frozenset({MISSING_DOWNGRADE.id, DESTRUCTIVE_DOWNGRADE.id})
PHASES = ("upgrade", "downgrade")
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_SQL_START = re.compile(
    r"^\s*(--|/\*|(ALTER|ANALYZE|BEGIN|COMMENT|COMMIT|CREATE|DELETE|DO|DROP|INSERT|LOCK|REINDEX"
    r"|RESET|ROLLBACK|SELECT|SET|TRUNCATE|UPDATE|VACUUM|WITH|GRANT|REVOKE|CLUSTER|REFRESH)\b)"
)  # upper case only: "Set it before..." is prose
_PYTHON_START = re.compile(r"^\s*(#|op\.|with |from |import |def |if |for )")


def render_markdown(
    result: CheckResult,
    *,
    link_base: str | None = None,
    max_chars: int = MAX_CHARS,
    contacts: Sequence[Contact] | None = None,
    backup: Backup = None,
    now: datetime | None = None,
) -> str:
    """The check-run summary of `result`, never longer than `max_chars` characters.

    `contacts` (the policy file's, see `bot.report.plan.contacts_from_policy`) and `backup`
    (the backup status, when known) complete the rollback plan and emergency procedure.

    When too long, cuts (in this order) the SQL, keeping as many leading upgrade and then
    downgrade statements as fit; the safe-pattern advice; the emergency procedure (the
    rollback command and its verdict stay); the least severe table rows; and
    as a last resort the text itself. A note at the end says what was cut.
    """
    plan = plan_for_result(result, contacts=contacts, backup=backup, now=now)
    doc = _Document(result, link_base, plan)
    if doc.fits(max_chars):
        return doc.render()
    for phase in PHASES:
        doc.sql_kept[phase] = 0
    if doc.fits(max_chars):
        for phase in PHASES:
            doc.sql_kept[phase] = _largest(
                doc.sql_size(phase), partial(doc.sql_fits, phase, max_chars=max_chars)
            )
            if doc.sql_kept[phase] < doc.sql_size(phase):
                break
        return doc.render()
    doc.show_advice = False
    if doc.fits(max_chars):
        return doc.render()
    doc.show_emergency = False
    if doc.fits(max_chars):
        return doc.render()
    doc.rows_kept = _largest(len(doc.rows), partial(doc.rows_fit, max_chars=max_chars))
    if doc.fits(max_chars):
        return doc.render()
    return _hard_cut(doc.render(), doc.cut_note(), max_chars)


def _largest(upper: int, fits: Callable[[int], bool]) -> int:
    """The largest k in [0, upper] with fits(k), for a `fits` that holds up to some k."""
    low, high = 0, upper
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _hard_cut(text: str, note: str, max_chars: int) -> str:
    """Only a report whose fixed parts alone exceed the limit gets here."""
    keep = max_chars - len(note) - 2
    if keep <= 0:
        return note[:max_chars]
    return text[:keep] + "\n\n" + note


class _Document:
    """The report's sections, rendered on demand so that parts can be cut to fit."""

    def __init__(self, result: CheckResult, link_base: str | None, plan: RollbackPlan) -> None:
        self.result = result
        self.link_base = link_base
        self.plan = plan
        self.findings = ordered(result.findings)
        self.rows = [self._row(f) for f in self.findings]
        self.rows_kept = len(self.rows)
        self.show_advice = True
        self.show_emergency = True
        self.statements = {"upgrade": result.dry_run.upgrade, "downgrade": result.dry_run.downgrade}
        self.full_sql = {
            "upgrade": result.dry_run.upgrade_sql,
            "downgrade": result.dry_run.downgrade_sql,
        }
        self.sql_kept = {phase: self.sql_size(phase) for phase in PHASES}
        self.annotated = {
            phase: [_annotated(s) for s in self.statements[phase]] for phase in PHASES
        }

    # -- cutting ----------------------------------------------------------------------

    def sql_size(self, phase: str) -> int:
        """Statements of a phase; SQL known only as one text counts as one statement."""
        if self.statements[phase]:
            return len(self.statements[phase])
        return 1 if self.full_sql[phase].strip() else 0

    def sql_fits(self, phase: str, kept: int, *, max_chars: int) -> bool:
        self.sql_kept[phase] = kept
        return self.fits(max_chars)

    def rows_fit(self, kept: int, *, max_chars: int) -> bool:
        self.rows_kept = kept
        return self.fits(max_chars)

    def fits(self, max_chars: int) -> bool:
        return len(self.render()) <= max_chars

    def cut_note(self) -> str:
        cuts = []
        for phase in PHASES:
            size, kept = self.sql_size(phase), self.sql_kept[phase]
            if kept == 0 and size:
                cuts.append(f"the {phase} SQL")
            elif kept < size:
                cuts.append(f"the {phase} SQL after statement {kept} of {size}")
        if not self.show_advice and any(f.advice for f in self.findings):
            cuts.append("the safe-pattern advice")
        if not self.show_emergency:
            cuts.append("the emergency procedure")
        if self.rows_kept < len(self.rows):
            cut_rows = len(self.rows) - self.rows_kept
            cuts.append(f"the last {plural(cut_rows, 'row')} of the findings table")
        if not cuts:
            return ""
        return (
            f"_Cut to fit the summary's size limit: {'; '.join(cuts)}. "
            "The full report: `migsafe check --format json`._"
        )

    # -- sections ---------------------------------------------------------------------

    def render(self) -> str:
        sections = [
            f"**{_escape_inline(verdict(self.result))}**",
            self._judged(),
            self._revisions(),
            self._table(),
            self._approvals(),
            self._advice() if self.show_advice else "",
            *self._closing(),
            self.cut_note(),
        ]
        return "\n\n".join(s for s in sections if s) + "\n"

    def _closing(self) -> list[str]:
        """Rollback, sandbox and dry-run; for plain SQL (`migsafe lint`) only that it was
        read, never run: there is no Alembic rollback to plan."""
        if self.result.source == "sql":
            count = plural(len(self.result.dry_run.upgrade), "statement")
            return [f"Plain SQL: {count} read, never run."]
        return [self._rollback(), self._sandbox(), self._dry_run()]

    def _judged(self) -> str:
        """What was judged and why, one line each (a Markdown line break between them)."""
        lines = [f"{label}: {_escape_inline(text)}" for label, text in judged_lines(self.result)]
        return "  \n".join(lines)

    def _revisions(self) -> str:
        new = self.result.new_revisions
        if not new:
            return ""
        lines = ["**New revisions:**", ""]
        for rev in new[:LIST_LIMIT]:
            message = f" {_escape_inline(rev.message)}" if rev.message else ""
            lines.append(f"- {_code(rev.revision)}{message} ({self._link(rev.path, None)})")
        if len(new) > LIST_LIMIT:
            lines.append(f"- and {len(new) - LIST_LIMIT} more")
        return "\n".join(lines)

    def _table(self) -> str:
        if not self.findings:
            return "No findings."
        header = "| Severity | Rule | Location | Message |\n|---|---|---|---|"
        return "\n".join([header, *self.rows[: self.rows_kept]])

    def _row(self, finding: Finding) -> str:
        severity = f"**{finding.severity.value}**"
        message = _escape_cell(finding.message)
        if finding.suppressed:
            severity = f"{finding.severity.value} (suppressed)"
            reason = finding.suppression_reason or "no reason given"
            message += f"<br>_Suppressed: {_escape_cell(reason)}_"
        for evidence in finding.evidence:
            message += f"<br>{_escape_cell(evidence_line(evidence))}"
        place = self._link(finding.path, finding.line)
        cells = [severity, _pipes(self._rule(finding.rule)), _pipes(place), message]
        return f"| {' | '.join(cells)} |"

    def _rule(self, rule_id: str) -> str:
        """The rule's id, linked to its documentation page when migsafe knows the rule."""
        if rule_id not in self.result.rules:
            return _code(rule_id)
        return f"[{_code(rule_id)}]({doc_url(rule_id)})"

    def _approvals(self) -> str:
        roles = self.result.approvals_required
        if not roles:
            return ""
        lines = ["### Approvals required", ""]
        for role in roles:
            needs = [self._short_ref(f) for f in approval_findings(self.result, role)]
            if len(needs) > LIST_LIMIT:
                needs[LIST_LIMIT:] = [f"and {len(needs) - LIST_LIMIT} more"]
            because = f" — for {', '.join(needs)}" if needs else ""
            lines.append(f"- **{_escape_inline(role)}**{because}")
        return "\n".join(lines)

    def _advice(self) -> str:
        advised = [f for f in self.findings if f.advice and not f.suppressed]
        if not advised:
            return ""
        blocks = ["### Safe patterns"]
        for finding in advised:
            assert finding.advice is not None
            blocks.append(f"#### {self._short_ref(finding)}\n\n{_advice_markdown(finding.advice)}")
        return "\n\n".join(blocks)

    def _rollback(self) -> str:
        commands = "\n".join(rollback_commands(self.result))
        text = f"### Rollback\n\n{_fence(commands, 'sh')}"
        unsafe = [f for f in self.findings if f.rule in ROLLBACK_RULES and not f.suppressed]
        if unsafe:
            refs = ", ".join(self._short_ref(f) for f in unsafe)
            text += f"\n\nThe downgrade is not a safe way back ({refs}): restoring the backup is."
        return text + "\n\n" + self._plan()

    def _plan(self) -> str:
        """The rollback plan's verdict, what a rollback loses, the backup, and the
        checklist's emergency procedure written for this change."""
        plan = self.plan
        parts = [_escape_inline(plan.summary)]
        if plan.losses:
            items = [
                f"- {_code(loss.rule)}"
                + (f" at {self._link(*_split_place(loss.place))}" if loss.place else "")
                + f": {_escape_inline(loss.message)}"
                for loss in plan.losses[:LIST_LIMIT]
            ]
            if len(plan.losses) > LIST_LIMIT:
                items.append(f"- and {len(plan.losses) - LIST_LIMIT} more")
            parts.append("What a rollback does not bring back:\n\n" + "\n".join(items))
        parts.append(f"**Backup:** {_escape_inline(plan.backup)}")
        if not self.show_emergency:
            return "\n\n".join(parts)
        steps = []
        for number, step in enumerate(plan.emergency, start=1):
            item = f"{number}. **{step.title}.** {_escape_inline(step.text)}"
            if step.commands:
                language = "sql" if step.commands[0].startswith("SELECT") else "sh"
                block = textwrap.indent(_fence("\n".join(step.commands), language), "   ")
                item += f"\n\n{block}"
            steps.append(item)
        parts.append(
            f"#### If the migration fails in {_escape_inline(plan.environment)}\n\n"
            + "\n".join(steps)
        )
        return "\n\n".join(parts)

    def _sandbox(self) -> str:
        report = self.result.sandbox
        if report is None:
            reason = sandbox_view.skipped_reason(self.result)
            return f"### Sandbox\n\nNot run: {_escape_inline(reason)}."
        parts = [f"### {_escape_inline(sandbox_view.heading(report))}"]
        parts.append(
            "\n".join(f"- {_escape_inline(line)}" for line in sandbox_view.step_lines(report))
        )
        spans = sandbox_view.significant_spans(report)[: sandbox_view.LOCK_LIMIT]
        if spans:
            rows = ["| Table | Lock | Held | Statements | Taken at |", "|---|---|---|---|---|"]
            for span in spans:
                statement = report.trace[span.first_statement]
                count = span.last_statement - span.first_statement + 1
                rows.append(
                    f"| {_pipes(_code(span.relation))} | {sandbox_view.mode_name(span.mode)} "
                    f"| {span.held_s * 1000:.0f} ms | {count} "
                    f"| {_pipes(self._link(statement.path, statement.line))} |"
                )
            parts.append(
                "Locks held, from the statement that took them until COMMIT:\n\n" + "\n".join(rows)
            )
        if report.schema_diff:
            diff = "\n".join(report.schema_diff[: sandbox_view.DIFF_LIMIT])
            parts.append(
                f"<details><summary>Schema base → head</summary>\n\n"
                f"{_fence(diff, 'diff')}\n\n</details>"
            )
        if report.protections:
            parts.append(
                "Ran under: " + ", ".join(_escape_inline(p) for p in report.protections) + "."
            )
        return "\n\n".join(parts)

    def _dry_run(self) -> str:
        dry_run = self.result.dry_run
        parts = ["### Dry-run"]
        if dry_run.error is None or dry_run.upgrade or dry_run.downgrade:
            parts.append(
                f"{plural(len(dry_run.upgrade), 'statement')} up, "
                f"{plural(len(dry_run.downgrade), 'statement')} down."
            )
        if dry_run.error is not None:
            error = dry_run.error.strip()
            if len(error) > ERROR_TAIL_CHARS:
                error = "…" + error[-ERROR_TAIL_CHARS:]
            summary = f" {_code(dry_run.error_summary)}" if dry_run.error_summary else ""
            parts.append(f"**The dry-run failed:**{summary}\n\n{_fence(error, 'text')}")
        if dry_run.protections:
            protections = ", ".join(_escape_inline(p) for p in dry_run.protections)
            parts.append(f"Ran under: {protections}.")
        for phase in PHASES:
            parts.append(self._sql_details(phase))
        return "\n\n".join(p for p in parts if p)

    def _sql_details(self, phase: str) -> str:
        kept, size = self.sql_kept[phase], self.sql_size(phase)
        if kept == 0:
            return ""
        title = f"{phase.capitalize()} SQL"
        statements = self.statements[phase]
        if statements:
            body = "\n".join(self.annotated[phase][:kept])
            count = plural(size, "statement") if kept == size else f"first {kept} of {size}"
            summary = f"{title} ({count})"
        else:
            body, summary = self.full_sql[phase].strip(), title
        return (
            f"<details><summary>{html.escape(summary)}</summary>\n\n"
            f"{_fence(body, 'sql')}\n\n</details>"
        )

    # -- pieces -----------------------------------------------------------------------

    def _short_ref(self, finding: Finding) -> str:
        if location(finding):
            return f"{_code(finding.rule)} at {self._link(finding.path, finding.line)}"
        if finding.revision:
            return f"{_code(finding.rule)} in {_code(finding.revision)}"
        return _code(finding.rule)

    def _link(self, path: str | None, line: int | None) -> str:
        """`path:line` as code, a link to the file on GitHub when a link base is known."""
        if path is None:
            return "—"
        label = f"{path}:{line}" if line is not None else path
        if self.link_base is None:
            return _code(label)
        anchor = f"#L{line}" if line is not None else ""
        return f"[{_code(label)}]({self.link_base}{quote(path, safe='/')}{anchor})"


def _split_place(place: str) -> tuple[str, int | None]:
    """`path:line` back into its parts (a path may itself contain ':')."""
    path, _, line = place.rpartition(":")
    return (path, int(line)) if path and line.isdigit() else (place, None)


def _annotated(statement: Statement) -> str:
    """The statement, after a `-- path:line (revision)` comment when its origin is known."""
    sql = statement.sql.strip()
    if not sql.endswith(";"):
        sql += ";"
    if statement.path is None and statement.revision is None:
        return f"{sql}\n"  # BEGIN / COMMIT and the like, which Alembic adds itself
    origin = statement_origin(statement.path, statement.line, statement.revision)
    return f"-- {origin.replace(chr(10), ' ')}\n{sql}\n"


def _advice_markdown(advice: str) -> str:
    """Advice as markdown: runs of SQL or Python lines go into fenced blocks, the rest is prose.

    Rules write advice as prose lines ("Set it before the first statement:") followed by
    the code to write; a line indented under a code line continues that code.
    """
    if "```" in advice:  # already markdown with its own blocks
        return advice.strip()
    blocks: list[tuple[str, list[str]]] = []  # (prose | sql | python, lines)
    for line in advice.strip().splitlines():
        if not line.strip():
            blocks.append(("blank", []))
            continue
        kind = _line_kind(line, blocks[-1][0] if blocks else "blank")
        if blocks and blocks[-1][0] == kind:
            blocks[-1][1].append(line)
        else:
            blocks.append((kind, [line]))
    rendered = []
    for kind, lines in _lead_ins_as_prose(blocks):
        if kind == "prose":
            rendered.append(_escape_inline("\n".join(line.strip() for line in lines)))
        elif kind != "blank":
            rendered.append(_fence(textwrap.dedent("\n".join(lines)), kind))
    return "\n\n".join(rendered)


def _lead_ins_as_prose(blocks: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """`-- in Alembic:` ending a SQL block introduces the Python block after it: make it prose."""
    result: list[tuple[str, list[str]]] = []
    for index, (kind, lines) in enumerate(blocks):
        following = blocks[index + 1][0] if index + 1 < len(blocks) else None
        lead_in: list[str] = []
        if kind == "sql" and following == "python":
            while lines and lines[-1].lstrip().startswith("--"):
                lead_in.insert(0, lines.pop().lstrip()[2:].strip())
        if lines:
            result.append((kind, lines))
        if lead_in:
            result.append(("prose", lead_in))
    return result


def _line_kind(line: str, previous: str) -> str:
    if previous in ("sql", "python") and line[:1].isspace():
        return previous  # indented under code: its continuation
    if _SQL_START.match(line):
        return "sql"
    if _PYTHON_START.match(line):
        return "python"
    return "prose"


def _fence(body: str, language: str) -> str:
    """A fenced block whose fence is longer than any backtick run inside (so it can't close)."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{body.rstrip()}\n{fence}"


def _code(text: str) -> str:
    """An inline code span that holds any text: fence longer than its backtick runs."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _escape_inline(text: str) -> str:
    """Repository text in prose: HTML inert outside code spans (code spans are literal)."""
    pieces: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(text):
        pieces.append(html.escape(text[last : span.start()], quote=False))
        pieces.append(span.group(0))
        last = span.end()
    pieces.append(html.escape(text[last:], quote=False))
    return "".join(pieces)


def _escape_cell(text: str) -> str:
    """Repository text in a table cell: no `|` or newline may end the cell or the row."""
    pieces: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(text):
        pieces.append(_cell_plain(text[last : span.start()]))
        pieces.append(span.group(0).replace("\n", " ").replace("|", "\\|"))
        last = span.end()
    pieces.append(_cell_plain(text[last:]))
    return "".join(pieces)


def _pipes(cell: str) -> str:
    """GitHub splits table cells on `|` even inside code spans unless it is escaped."""
    return cell.replace("|", "\\|")


def _cell_plain(text: str) -> str:
    escaped = html.escape(text, quote=False).replace("|", "\\|")
    return "<br>".join(escaped.splitlines())
