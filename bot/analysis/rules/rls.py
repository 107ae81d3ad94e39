"""Row level security switched off or loosened on an existing table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rules.base import Check, actions_of, finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

DISABLE_RLS = RuleInfo(
    id="disable-rls",
    family=Family.SECURITY,
    default_severity=Severity.ERROR,
    summary="ROW LEVEL SECURITY disabled (or NO FORCE) on an existing table",
    explanation=(
        "With row level security disabled every policy on the table stops applying: each "
        "tenant can read and write every other tenant's rows. NO FORCE exempts the table's "
        "owner (often the application's role) from the policies. The checklist's "
        "post-migration checks expect RLS to stay enabled. To change what a policy allows, "
        "replace it in one transaction (CREATE POLICY the new one, DROP POLICY the old one) "
        "or use ALTER POLICY, keeping RLS enabled."
    ),
)

DROP_POLICY = RuleInfo(
    id="drop-policy",
    family=Family.SECURITY,
    default_severity=Severity.ERROR,
    summary="DROP POLICY of a row level security policy that existed before this change",
    explanation=(
        "Dropping a policy changes who sees which rows: with RLS enabled and no policy left, "
        "the table looks empty to the application; with other permissive policies left, rows "
        "the dropped policy filtered out may become visible. Replace a policy in the same "
        "transaction (create the new one before dropping the old one) or use ALTER POLICY, "
        "and verify tenant isolation afterwards (the checklist's RLS policy verification)."
    ),
)


def check_disable_rls(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in stmt.actions:
        if action.kind not in (ActionKind.DISABLE_RLS, ActionKind.NO_FORCE_RLS):
            continue
        if not state.is_existing_table(action.table):
            continue
        table = action.table
        if action.kind is ActionKind.DISABLE_RLS:
            message = f"ROW LEVEL SECURITY disabled on {table}: its policies stop applying"
        else:
            message = f"NO FORCE ROW LEVEL SECURITY on {table}: its owner bypasses the policies"
        yield finding(
            DISABLE_RLS,
            stmt,
            message,
            advice=(
                f"Keep RLS on and change the policies instead:\n"
                f"ALTER POLICY <policy> ON {table} USING (<new condition>);\n"
                f"-- and verify: SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                f"WHERE oid = '{table}'::regclass;"
            ),
        )


def check_drop_policy(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.DROP_POLICY):
        table, name = action.table, action.name
        if not state.is_existing_table(table) or state.is_new_policy(table, name):
            continue
        yield finding(
            DROP_POLICY,
            stmt,
            f"DROP POLICY {name} on {table} changes which rows each role can see",
            advice=(
                f"Replace the policy rather than removing it, in the same transaction:\n"
                f"CREATE POLICY {name}_v2 ON {table} USING (<new condition>);\n"
                f"DROP POLICY {name} ON {table};\n"
                f"-- or change it in place:\n"
                f"ALTER POLICY {name} ON {table} USING (<new condition>);"
            ),
        )


RULES: list[tuple[RuleInfo, Check]] = [
    (DISABLE_RLS, check_disable_rls),
    (DROP_POLICY, check_drop_policy),
]
KINDS: dict[str, tuple[ActionKind, ...]] = {
    DISABLE_RLS.id: (ActionKind.DISABLE_RLS, ActionKind.NO_FORCE_RLS),
    DROP_POLICY.id: (ActionKind.DROP_POLICY,),
}
