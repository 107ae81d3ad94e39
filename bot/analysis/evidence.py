"""One finding per operation: what the sandbox saw is folded into the finding it confirms.

The SQL rules predict what a statement will do (`alter-column-type`: "rewrites the table
under ACCESS EXCLUSIVE"); the sandbox observes it (`table-rewrite`, `access-exclusive-lock`).
Reported side by side, one operation reads as two or three problems. Here an observation
joins the operation's own finding as `evidence` when that finding already says at least as
much: same revision, file, line and phase, the same statement (or one on the same table),
the same suppression state, and a severity at least as high — so folding never lowers what
blocks, and a suppression of one rule never hides another. An observation with nothing to
join (a rewrite no rule predicted) stays a finding of its own. The gate still sees every
folded rule (`Finding.rules`), so a policy that asks approval, an ADR or a window for
`table-rewrite` keeps asking.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.analysis.model import Evidence, Finding
from bot.analysis.origins import acted_on, same_sql
from bot.analysis.parse import classify
from bot.analysis.rules.sandbox import ACCESS_EXCLUSIVE_LOCK, TABLE_REWRITE

# The sandbox's observations of what a statement did to the locks and the table; each is
# evidence for the finding about the operation that did it.
OBSERVATIONS = frozenset({TABLE_REWRITE.id, ACCESS_EXCLUSIVE_LOCK.id})

_Place = tuple[str | None, str | None, int, str | None, bool]


def one_per_operation(findings: Iterable[Finding]) -> list[Finding]:
    """`findings` with each foldable observation moved into its operation's finding,
    in their original order."""
    findings = list(findings)
    primary: dict[_Place, Finding] = {}
    for finding in findings:
        place = _place(finding)
        if place is None or finding.rule in OBSERVATIONS:
            continue
        best = primary.get(place)
        if best is None or _rank(finding) > _rank(best):
            primary[place] = finding
    kept: list[Finding] = []
    for finding in findings:
        place = _place(finding)
        target = primary.get(place) if place is not None else None
        if (
            finding.rule in OBSERVATIONS
            and target is not None
            and target.severity.rank >= finding.severity.rank
            and _same_statement(finding, target)
        ):
            _fold(finding, into=target)
        else:
            kept.append(finding)
    return kept


def _same_statement(observation: Finding, finding: Finding) -> bool:
    """Whether the observation is about the statement the finding judges: the same SQL
    (the sandbox runs it online, the dry-run printed it offline: spacing and case aside),
    or one acting on the same table. A line can emit several statements (a batch's `with`,
    an `op.execute` of a script): a rewrite of another table there is not this finding's."""
    if observation.statement is None or finding.statement is None:
        return False
    if same_sql(observation.statement, finding.statement):
        return True
    seen, judged = (
        acted_on(classify(sql)[0], indexes=False)
        for sql in (observation.statement, finding.statement)
    )
    return bool(seen & judged)


def _place(finding: Finding) -> _Place | None:
    """The operation a finding is about, or None when it has no line to share."""
    if finding.line is None:
        return None
    return (finding.revision, finding.path, finding.line, finding.phase, finding.suppressed)


def _rank(finding: Finding) -> tuple[int, int]:
    """The operation's main finding: the most severe; among equals, the SQL rule's."""
    return (finding.severity.rank, 1 if finding.source == "sql" else 0)


def _fold(observation: Finding, into: Finding) -> None:
    into.evidence.append(Evidence(observation.rule, observation.source, observation.message))
    into.evidence.extend(observation.evidence)
    for role in observation.approval_roles:
        if role not in into.approval_roles:
            into.approval_roles.append(role)
