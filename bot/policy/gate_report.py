"""The merge gate's check-run title and summary, written for a product owner first.

One sentence says whether the pull request may merge and what it waits for; then the
roles table, why the approvals are needed, approvals that do not count, change requests
that block, and the checklist's procedure. Pure: a `GateVerdict` in, text out. Text from
the repository (paths, rule ids) and from GitHub (logins) is escaped for markdown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.policy.approvals import GateVerdict, RoleStatus, check_name
from bot.policy.procedure import ADR, BACKUP, DOCUMENTED, MAINTENANCE_WINDOW, Reason

MAX_CHARS = 65_535  # GitHub's limit for a check run's output.summary
MAX_TITLE = 200
LIST_LIMIT = 30  # items per list; the rest is counted
DASH = "\u2013"  # an en dash: "not applicable"
MARKS = {True: "✅", False: "❌", None: DASH}
NEEDS = {
    DOCUMENTED: "a comment on each destructive operation",
    ADR: "an ADR",
    MAINTENANCE_WINDOW: "the maintenance-window label",
    BACKUP: "a recent backup",
}
SHORT = {
    DOCUMENTED: "comments",
    ADR: "ADR",
    MAINTENANCE_WINDOW: "maintenance-window label",
    BACKUP: "recent backup",
}
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]{}|~#!<>])")


def render_gate_summary(
    verdict: GateVerdict, *, environment: str, base_branch: str
) -> tuple[str, str]:
    """(title, markdown summary) of the gate's check run."""
    sections = [
        f"**{_text(verdict_sentence(verdict, environment))}**",
        _context(verdict, environment, base_branch),
        *_approval_sections(verdict),
        _procedure_section(verdict),
    ]
    markdown = "\n\n".join(section for section in sections if section) + "\n"
    if len(markdown) > MAX_CHARS:
        note = "\n\n(summary cut at GitHub's size limit)\n"
        markdown = markdown[: MAX_CHARS - len(note)] + note
    return _title(verdict, environment), markdown


def verdict_sentence(verdict: GateVerdict, environment: str) -> str:
    """`Approved by @alice (backend-lead) and @bob (product-owner).` or `Blocked: ...`."""
    if verdict.conclusion == "success":
        return _success(verdict, environment) + "."
    parts = []
    if verdict.missing_roles:
        parts.append(f"needs approval from {_and(_missing(r) for r in verdict.missing_roles)}")
    for review in verdict.blocking_reviews:
        parts.append(f"@{review.user} requested changes")
    failed = [NEEDS.get(item.name, item.name) for item in verdict.failed_procedure]
    if failed:
        parts.append(f"the procedure needs {_and(failed)}")
    return f"Blocked: {'; '.join(parts)}."


def _title(verdict: GateVerdict, environment: str) -> str:
    """The sentence's short form: roles without teams, the procedure in keywords."""
    if verdict.conclusion == "success":
        title = _success(verdict, environment)
    else:
        parts = []
        if verdict.missing_roles:
            parts.append(f"needs {_and(r.role for r in verdict.missing_roles)} approval")
        if verdict.blocking_reviews:
            users = _and(f"@{b.user}" for b in verdict.blocking_reviews)
            parts.append(f"changes requested by {users}")
        failed = [SHORT.get(item.name, item.name) for item in verdict.failed_procedure]
        if failed:
            parts.append(f"missing {_and(failed)}")
        title = f"Blocked: {'; '.join(parts)}"
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


def _success(verdict: GateVerdict, environment: str) -> str:
    if not verdict.changes_migrations:
        return "No approval needed: this pull request changes no migration"
    if not verdict.roles:
        return f"No approval needed: nothing in this change needs one in {environment}"
    return f"Approved by {_and(_approvers(verdict.roles))}"


# --- sections ---


def _context(verdict: GateVerdict, environment: str, base_branch: str) -> str:
    branch = base_branch.removeprefix("refs/heads/")
    text = (
        f"Base branch {_code(branch)} deploys to **{_text(environment)}**: this check "
        f"({_code(check_name(branch))}) is evaluated for it alone."
    )
    if verdict.roles:
        text += (
            " Approvals count only for what they saw run: a change to a revision, `env.py`, "
            "`script.py.mako`, `alembic.ini`, the setup's requirement files or a repository "
            "module these import needs them again."
        )
    return text


def _approval_sections(verdict: GateVerdict) -> list[str]:
    if not verdict.roles:
        return []
    return [
        "### Approvals\n\n" + _roles_table(verdict),
        _why(verdict.roles),
        _stale(verdict),
        _blocking(verdict),
        _ignored(verdict),
    ]


def _roles_table(verdict: GateVerdict) -> str:
    rows = [
        "| Role | Team | Required | Approved by | Missing |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for role in verdict.roles:
        team = _text(role.team) if role.team else "*no team mapped*"
        approved = ", ".join(f"@{_text(user)}" for user in role.approved_by) or DASH
        missing = f"**{role.missing}**" if role.missing else "0"
        rows.append(f"| {_text(role.role)} | {team} | {role.required} | {approved} | {missing} |")
    lines = ["\n".join(rows)]
    if verdict.distinct_approvers:
        lines.append("Each role needs a different person (`distinct_approvers: true`).")
    unmapped = [r.role for r in verdict.roles if r.team is None]
    if unmapped:
        lines.append(
            f"No team is mapped to {_and(_text(r) for r in unmapped)}: map one under "
            "`roles:` in `.github/migsafe.yml` on the base branch."
        )
    notes = [note for role in verdict.roles for note in role.notes]
    lines += [_bullets(_text(note) for note in notes)] if notes else []
    return "\n\n".join(lines)


def _why(roles: list[RoleStatus]) -> str:
    """Each finding once, with the roles it needs."""
    needs: dict[Reason, list[str]] = {}
    for role in roles:
        for reason in role.why:
            needs.setdefault(reason, []).append(role.role)
    items = [
        f"{_code(reason.rule)}"
        + (f" at {_code(reason.place)}" if reason.place else "")
        + f": {', '.join(_text(r) for r in needed)}"
        for reason, needed in needs.items()
    ]
    return "**Why approval is needed**\n\n" + _bullets(items)


def _stale(verdict: GateVerdict) -> str:
    if not verdict.stale_approvals:
        return ""
    items = [
        f"@{_text(s.user)} approved {_code(s.commit_id[:12])}, but {_text(s.reason)}: "
        "it no longer counts, a new review is needed"
        for s in verdict.stale_approvals
    ]
    return "### Stale approvals\n\n" + _bullets(items)


def _blocking(verdict: GateVerdict) -> str:
    if not verdict.blocking_reviews:
        return ""
    items = [
        f"@{_text(b.user)} ({', '.join(_text(t) for t in b.teams)}) requested changes on "
        f"{_code(b.commit_id[:12])}: this blocks until @{_text(b.user)} approves or the "
        "review is dismissed"
        for b in verdict.blocking_reviews
    ]
    return "### Changes requested\n\n" + _bullets(items)


def _ignored(verdict: GateVerdict) -> str:
    if not verdict.ignored_approvals:
        return ""
    items = [f"@{_text(i.user)}: {_text(i.reason)}" for i in verdict.ignored_approvals]
    return "### Approvals that do not count\n\n" + _bullets(items)


def _procedure_section(verdict: GateVerdict) -> str:
    if not verdict.procedure:
        return ""
    items = [
        f"{MARKS[item.ok]} **{_text(item.name)}**: {_prose(item.detail)}"
        for item in verdict.procedure
    ]
    legend = f"✅ done · ❌ blocks the merge · {DASH} not needed here, or recommended only"
    return "### Procedure\n\n" + _bullets(items) + f"\n\n<sub>{legend}</sub>"


# --- helpers ---


def _approvers(roles: list[RoleStatus]) -> list[str]:
    """`@alice (backend-lead, product-owner)`: each person once, with what they approved."""
    counted: dict[str, list[str]] = {}
    for role in roles:
        for user in role.approved_by:
            counted.setdefault(user, []).append(role.role)
    return [f"@{user} ({', '.join(for_roles)})" for user, for_roles in counted.items()]


def _missing(role: RoleStatus) -> str:
    team = role.team or "no team mapped"
    more = f", {role.missing} more" if role.required > 1 else ""
    return f"{role.role} ({team}{more})"


def _and(items: Iterable[str]) -> str:
    words = list(items)
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _bullets(items: Iterable[str]) -> str:
    listed = list(items)
    shown = [f"- {item}" for item in listed[:LIST_LIMIT]]
    if len(listed) > LIST_LIMIT:
        shown.append(f"- … and {len(listed) - LIST_LIMIT} more")
    return "\n".join(shown)


def _text(text: str) -> str:
    """Plain text in markdown: no markup, no HTML, no table-breaking `|` or newline."""
    flat = re.sub(r"\s+", " ", text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat).replace("&", "&amp;")


def _prose(text: str) -> str:
    """Like `_text`, but `code spans` in it stay code spans (their content is literal)."""
    pieces: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(text):
        pieces.append(_text(text[last : span.start()]))
        pieces.append(_code(span.group(2)))
        last = span.end()
    pieces.append(_text(text[last:]))
    return "".join(pieces)


def _code(text: str) -> str:
    """An inline code span holding any text (its content is literal: nothing to escape
    but a backtick run, which a longer fence outlasts). Not for table cells."""
    text = re.sub(r"\s+", " ", text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"
