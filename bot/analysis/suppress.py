"""`# migsafe: ignore[rule-a, rule-b] reason` comments in migration files (pure).

A suppression on line L covers findings on L and L+1 that name one of its rules. It must
give a reason; suppressed findings stay in reports, marked, and stop counting as errors.
Only new files are checked for malformed suppressions: old ones were reviewed before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

from bot.analysis.migration_model import MigrationFile, Suppression
from bot.analysis.model import Family, Finding, RuleInfo, Severity
from bot.analysis.rule import Rule, Stage

SUPPRESSION_MISSING_REASON = RuleInfo(
    id="suppression-missing-reason",
    family=Family.META,
    default_severity=Severity.WARNING,
    summary="a `# migsafe: ignore[...]` comment without a reason",
    explanation=(
        "A suppression tells reviewers that a finding was looked at and accepted; without a "
        "reason they cannot tell why, so migsafe does not honour it. Write the reason after "
        "the brackets: `# migsafe: ignore[drop-column] column unused since 2.3, data in ADR-12`."
    ),
)

SUPPRESSION_UNKNOWN_RULE = RuleInfo(
    id="suppression-unknown-rule",
    family=Family.META,
    default_severity=Severity.WARNING,
    summary="a `# migsafe: ignore[...]` comment naming a rule id migsafe does not have",
    explanation=(
        "Suppressions name rules by their stable id (see `migsafe rules` or the README). An "
        "unknown id, usually a typo, suppresses nothing, so the finding it was meant for "
        "still counts."
    ),
)

# Raised by `apply_suppressions`, not by a stage's run: it must come last, after every
# other finding is made, because it marks them.
RULES: tuple[Rule, ...] = (
    Rule(
        SUPPRESSION_MISSING_REASON,
        Stage.META,
        "write the reason after the brackets: `# migsafe: ignore[rule-id] why it is safe`",
    ),
    Rule(
        SUPPRESSION_UNKNOWN_RULE,
        Stage.META,
        "name rules by their id as `migsafe rules` lists them",
    ),
)


# (path, line, statement) -> why a suppression comment there does not count for that
# statement (the line was reported by the process running the migration, and migsafe's own
# reading of the file cannot tie it to the statement: `bot.analysis.origins`).
Unsuppressible = Mapping[tuple[str | None, int | None, str], str]


def apply_suppressions(
    findings: list[Finding],
    files: dict[str, MigrationFile],
    known_rules: Collection[str],
    unsuppressible: Unsuppressible | None = None,
) -> list[Finding]:
    """The findings with suppressed ones marked, then a finding per malformed suppression.

    `files` is keyed by repository-relative path; findings without a path or line, or in
    files not given, are returned unchanged. A finding `unsuppressible` names is never
    suppressed; where a comment would have suppressed it, its message says why not.
    """
    refused = unsuppressible or {}
    marked = [_suppress(finding, files, refused) for finding in findings]
    problems = [
        problem
        for migration in files.values()
        if migration.new
        for problem in _problems(migration, known_rules)
    ]
    return marked + problems


def _suppress(
    finding: Finding, files: dict[str, MigrationFile], refused: Unsuppressible
) -> Finding:
    migration = files.get(finding.path or "")
    if migration is None or finding.line is None or finding.suppressed:
        return finding
    for suppression in migration.suppressions:
        if _covers(suppression, finding.line, finding.rule) and suppression.reason:
            why = refused.get((finding.path, finding.line, finding.statement or ""))
            if why is not None:
                return dataclasses.replace(finding, message=f"{finding.message} {why}")
            return dataclasses.replace(
                finding, suppressed=True, suppression_reason=suppression.reason
            )
    return finding


def _covers(suppression: Suppression, line: int, rule: str) -> bool:
    return line in (suppression.line, suppression.line + 1) and rule in suppression.rules


def _problems(migration: MigrationFile, known_rules: Collection[str]) -> list[Finding]:
    problems: list[Finding] = []
    for suppression in migration.suppressions:
        if not suppression.reason:
            problems.append(
                _meta(
                    SUPPRESSION_MISSING_REASON,
                    migration,
                    suppression.line,
                    f"ignore[{', '.join(suppression.rules)}] gives no reason, so it suppresses "
                    "nothing; add the reason after the brackets",
                )
            )
        unknown = [rule for rule in suppression.rules if rule not in known_rules]
        if unknown or not suppression.rules:
            named = ", ".join(repr(rule) for rule in unknown)
            message = (
                f"ignore[...] names unknown rule id(s) {named}"
                if unknown
                else "ignore[] names no rule id"
            )
            problems.append(_meta(SUPPRESSION_UNKNOWN_RULE, migration, suppression.line, message))
    return problems


def _meta(info: RuleInfo, migration: MigrationFile, line: int, message: str) -> Finding:
    return Finding(
        rule=info.id,
        severity=info.default_severity,
        message=message,
        path=migration.path,
        line=line,
        revision=migration.revision,
        source="static",
    )
