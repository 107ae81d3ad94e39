"""Rules about migsafe's own inputs: a dry-run that failed, SQL no rule could read."""

from __future__ import annotations

from bot.analysis.model import Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import ProjectFacts, Rule, Stage

DRY_RUN_FAILED = RuleInfo(
    id="dry-run-failed",
    family=Family.META,
    default_severity=Severity.ERROR,
    summary="Alembic could not produce the offline SQL of the new revisions",
    explanation=(
        "migsafe runs `alembic upgrade --sql` and `alembic downgrade --sql` for the new "
        "revisions in an isolated child process. When that fails, times out or exceeds its "
        "limits, reviewers cannot see what SQL the change will run, and only the static scan "
        "of the migration files is left. Make the migrations work in offline mode: env.py "
        "must have a `run_migrations_offline()` branch, and migration code must not query "
        "the database (use `op.execute` with SQL instead of reading rows in Python)."
    ),
)

UNPARSED_STATEMENT = RuleInfo(
    id="unparsed-statement",
    family=Family.META,
    default_severity=Severity.NOTICE,
    summary="a statement of the dry-run that no rule could understand",
    explanation=(
        "migsafe parses every statement with sqlglot (PostgreSQL dialect) and a token-level "
        "fallback. A statement it cannot parse is not judged by any rule: review it by hand, "
        "and report it to migsafe if it is valid PostgreSQL."
    ),
)


def check_dry_run_failed(facts: ProjectFacts) -> list[Finding]:
    dry = facts.dry_run
    if not dry.error:
        return []
    return [
        Finding(
            rule=DRY_RUN_FAILED.id,
            severity=DRY_RUN_FAILED.default_severity,
            message="alembic could not produce the offline SQL: "
            f"{dry.error_summary or dry.error.strip() or 'no error text'}",
            path=dry.error_path,
            line=dry.error_line,
            source="project",
        )
    ]


def check_unparsed(facts: ProjectFacts) -> list[Finding]:
    dry = facts.dry_run
    return [_unparsed(s) for s in [*dry.upgrade, *dry.downgrade] if s.parse_error]


def _unparsed(statement: Statement) -> Finding:
    return Finding(
        rule=UNPARSED_STATEMENT.id,
        severity=UNPARSED_STATEMENT.default_severity,
        message=f"migsafe could not parse this statement, so no rule judged it: "
        f"{statement.parse_error}",
        path=statement.path,
        line=statement.line,
        revision=statement.revision,
        statement=statement.sql,
        phase=statement.phase,
    )


RULES: tuple[Rule, ...] = (
    Rule(
        DRY_RUN_FAILED,
        Stage.META,
        "give env.py a run_migrations_offline() branch; never read rows in migration code",
        check=check_dry_run_failed,
    ),
    Rule(
        UNPARSED_STATEMENT,
        Stage.META,
        "review the statement by hand; report it if it is valid PostgreSQL",
        check=check_unparsed,
    ),
)
