"""Every rule id migsafe can report, with its explanation: the public list of ids."""

from __future__ import annotations

from bot.analysis.model import Family, RuleInfo, Severity
from bot.analysis.rules import RULE_INFOS as STATEMENT_RULE_INFOS
from bot.analysis.rules.revisions import RULE_INFOS as REVISION_RULE_INFOS
from bot.analysis.rules.sandbox import RULE_INFOS as SANDBOX_RULE_INFOS
from bot.analysis.suppress import RULE_INFOS as SUPPRESSION_RULE_INFOS

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

RULES: dict[str, RuleInfo] = {
    **STATEMENT_RULE_INFOS,
    **REVISION_RULE_INFOS,
    **SUPPRESSION_RULE_INFOS,
    **SANDBOX_RULE_INFOS,
    DRY_RUN_FAILED.id: DRY_RUN_FAILED,
    UNPARSED_STATEMENT.id: UNPARSED_STATEMENT,
}
