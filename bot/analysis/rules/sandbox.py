"""Rules on what the sandbox run observed: locks, rewrites, timeouts, rollback, models, RLS.

The trace rules here are pure (trace in, findings out); the check-based ids
(rollback, models, indexes, RLS) are raised by `bot.sandbox.run` and described here.

Over 400 lines: the declarations of the nineteen sandbox rules and their pure trace
checks, one short function each.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.analysis.durations import format_ms, parse_duration_ms
from bot.analysis.model import Family, Finding, RuleInfo, Severity
from bot.analysis.rule import Rule, Stage, rule_infos
from bot.analysis.sandbox_model import LockSpan, TracedStatement


def _info(rule_id: str, family: Family, severity: Severity, summary: str, text: str) -> RuleInfo:
    return RuleInfo(rule_id, family, severity, summary, text)


ACCESS_EXCLUSIVE_LOCK = _info(
    "access-exclusive-lock",
    Family.LOCKING,
    Severity.WARNING,
    "an ACCESS EXCLUSIVE lock on a table that existed before the change",
    "ACCESS EXCLUSIVE blocks every read and write of the table, and Alembic holds it from "
    "the statement that takes it until the migration's transaction commits, across every "
    "later statement (a backfill included). Keep such statements short and alone in their "
    "transaction (`transaction_per_migration=True`), set lock_timeout so the lock is given "
    "up instead of queueing the application behind it, and move backfills out of the "
    "DDL transaction.",
)
TABLE_REWRITE = _info(
    "table-rewrite",
    Family.LOCKING,
    Severity.ERROR,
    "a statement rewrote a whole existing table (its relfilenode changed)",
    "A rewrite copies every row of the table while holding ACCESS EXCLUSIVE: on a large "
    "table that is downtime. Column type changes, volatile defaults and some constraint "
    "changes rewrite. Add a new column, backfill it in batches, and swap instead.",
)
LOCK_TIMEOUT_NOT_SET = _info(
    "lock-timeout-not-set",
    Family.TIMEOUT,
    Severity.ERROR,
    "observed: a lock was taken on an existing table with no lock_timeout in effect",
    "The sandbox read `current_setting('lock_timeout')` on the migration's own connection "
    "before each statement, so this includes timeouts set by env.py that the offline SQL "
    "never shows. Without it a migration queues behind a long transaction and every query "
    "of the application queues behind the migration. Set `lock_timeout = '30s'` (or less).",
)
STATEMENT_TIMEOUT_NOT_SET = _info(
    "statement-timeout-not-set",
    Family.TIMEOUT,
    Severity.ERROR,
    "observed: a statement ran on an existing table with no statement_timeout in effect",
    "As read on the migration's connection while it ran. Without a statement_timeout a "
    "runaway statement holds its locks indefinitely. Set `statement_timeout = '5min'` "
    "(or less) and run longer work outside the migration.",
)
UPGRADE_FAILED = _info(
    "upgrade-failed",
    Family.REVISION,
    Severity.ERROR,
    "the upgrade failed on a real PostgreSQL",
    "Applying the new revisions to a throwaway copy of the base schema failed; the "
    "deploy would fail the same way. PostgreSQL's error and the statement are reported.",
)
DOWNGRADE_FAILED = _info(
    "downgrade-failed",
    Family.REVISION,
    Severity.ERROR,
    "rolling back to the base revision failed",
    "`alembic downgrade` to the base revision failed in the sandbox: if the deploy goes "
    "wrong there is no way back but restoring the backup. Make downgrade() undo exactly "
    "what upgrade() did.",
)
ROLLBACK_SCHEMA_MISMATCH = _info(
    "rollback-schema-mismatch",
    Family.REVISION,
    Severity.ERROR,
    "after the rollback the schema differs from the base",
    "Upgrading and then downgrading must give back the schema the change started from. "
    "The difference is listed: objects the downgrade forgot, or restored differently.",
)
ROLLBACK_DATA_LOSS = _info(
    "rollback-data-loss",
    Family.REVISION,
    Severity.ERROR,
    "after the rollback, rows that existed at the base are lost or changed",
    "migsafe seeds rows into every table of the base and compares a checksum per table "
    "after upgrade and downgrade. A dropped column that the downgrade re-adds comes back "
    "empty: rolling back loses that data, and restoring a backup is the only way back.",
)
REUPGRADE_FAILED = _info(
    "reupgrade-failed",
    Family.REVISION,
    Severity.ERROR,
    "upgrading again after the rollback failed",
    "A migration that only works once (for example because its downgrade leaves an object "
    "behind) blocks a redeploy after a rollback.",
)
# A warning, not an error: autogenerate's comparison has known false positives (server
# defaults, types that reflect differently) and in an expand/contract deploy the models may
# lead or trail the schema on purpose. The deploy itself does not fail; the next
# `alembic revision --autogenerate` would just carry the difference. Policies raise it.
SCHEMA_DRIFT = _info(
    "schema-drift",
    Family.REVISION,
    Severity.WARNING,
    "after the upgrade, the database differs from the models (env.py's target_metadata)",
    "migsafe compared the upgraded sandbox database with the `target_metadata` env.py "
    "passes to `context.configure()`, with env.py's own comparison options, as "
    "`alembic check` does. A difference means the migrations and the models disagree: a "
    "revision is missing, or does something else than the models say. Run `alembic check` "
    "locally and add the revision it asks for, or fix the models.",
)
INVALID_INDEX = _info(
    "invalid-index",
    Family.LOCKING,
    Severity.ERROR,
    "a new index is missing or invalid (indisvalid = false) after the upgrade",
    "A failed CREATE INDEX CONCURRENTLY leaves an invalid index that is maintained on "
    "every write but never used. Drop it and build it again.",
)
INDEX_UNUSABLE = _info(
    "index-unusable",
    Family.LOCKING,
    Severity.WARNING,
    "the planner cannot use a new index for a query on its leading columns",
    "After ANALYZE, EXPLAIN of an equality query on the index's leading column did not "
    "use it (with sequential scans disabled). Check the column order and the operator "
    "class, or whether the index is needed.",
)
RLS_DISABLED = _info(
    "rls-disabled",
    Family.SECURITY,
    Severity.ERROR,
    "a tenant table has row level security disabled after the upgrade",
    "The policy file marks this table as a tenant table: without RLS every tenant can read "
    "every other tenant's rows. `ALTER TABLE ... ENABLE ROW LEVEL SECURITY`.",
)
RLS_NO_POLICY = _info(
    "rls-no-policy",
    Family.SECURITY,
    Severity.ERROR,
    "a tenant table has no row level security policy",
    "With RLS enabled and no policy, non-owners see no rows at all; the application breaks. "
    "Create a policy that filters on the tenant setting.",
)
TENANT_ISOLATION_BROKEN = _info(
    "tenant-isolation-broken",
    Family.SECURITY,
    Severity.ERROR,
    "a tenant could read another tenant's rows",
    "migsafe inserted rows for two tenants and read them as a non-owner role with the "
    "tenant setting of each; one saw the other's rows. Fix the policy's USING clause.",
)
UNDECLARED_CHANGE = _info(
    "undeclared-change",
    Family.DESTRUCTIVE,
    Severity.ERROR,
    "the schema changed in a way the dry-run's SQL never declared",
    "migsafe compares what the catalogs say changed between the base and the head (tables, "
    "columns and their types, nullability and defaults, indexes, constraints, row level "
    "security, policies, views, triggers, sequences, types) with what the offline SQL "
    "declared. A change no statement of the dry-run declares (SQL built at run time, a "
    "second connection of the migration's own, or code that behaves differently online) "
    "escaped every rule that reads the SQL, so it needs approval like a destructive change. "
    "Make the migration emit what it does through `op` in offline mode too.",
)
SANDBOX_SIDE_CONNECTION = _info(
    "sandbox-side-connection",
    Family.META,
    Severity.ERROR,
    "the migration opened a database connection of its own beside Alembic's",
    "The sandbox role may hold one connection at a time: Alembic's. A second one, opened "
    "while Alembic's is open, is refused by the server; one still open after a step is "
    "ended by migsafe. What a migration does over a connection of its own is outside "
    "Alembic's transaction, its offline SQL and the trace: in a deploy it commits even when "
    "the migration fails. Run every statement through `op` (`op.execute`, `op.get_bind()`).",
)
SANDBOX_SIZE_LIMIT = _info(
    "sandbox-size-limit",
    Family.META,
    Severity.ERROR,
    "the sandbox database outgrew the policy's size limit",
    "After each step migsafe measures the sandbox database (`pg_database_size`). A database "
    "that grows past `sandbox.max_database_size` (default 1 GiB) stops the run: the "
    "migration writes far more than a schema change on a few seeded rows needs. Move "
    "bulk data loads out of the migration, or raise the limit in the policy file.",
)
SANDBOX_FAILED = _info(
    "sandbox-failed",
    Family.META,
    Severity.ERROR,
    "the sandbox run itself could not be carried out",
    "migsafe could not create the throwaway database or start the child process. This is "
    "an infrastructure problem, not the migration's: the report says what failed.",
)

# Decided in bot.sandbox (run.py, rls.py) and by `observed_findings` below, which the
# sandbox run calls: no check the registry runs.
RULES: tuple[Rule, ...] = (
    Rule(
        ACCESS_EXCLUSIVE_LOCK,
        Stage.SANDBOX,
        "keep the statement short and alone in its transaction, with lock_timeout set",
    ),
    Rule(
        TABLE_REWRITE,
        Stage.SANDBOX,
        "add a new column, backfill it in batches and swap, instead of rewriting the table",
    ),
    Rule(
        LOCK_TIMEOUT_NOT_SET,
        Stage.SANDBOX,
        "SET lock_timeout = '30s' (or less) in the migration's SQL",
    ),
    Rule(
        STATEMENT_TIMEOUT_NOT_SET,
        Stage.SANDBOX,
        "SET statement_timeout = '5min' (or less) in the migration's SQL",
    ),
    Rule(
        UPGRADE_FAILED,
        Stage.SANDBOX,
        "fix the statement PostgreSQL rejected; run the upgrade against a copy of the schema",
    ),
    Rule(
        DOWNGRADE_FAILED,
        Stage.SANDBOX,
        "make downgrade() undo exactly what upgrade() did",
    ),
    Rule(
        ROLLBACK_SCHEMA_MISMATCH,
        Stage.SANDBOX,
        "make downgrade() restore every object upgrade() changed, as it was",
    ),
    Rule(
        ROLLBACK_DATA_LOSS,
        Stage.SANDBOX,
        "keep the old data until the change is final (contract in a later release)",
    ),
    Rule(
        REUPGRADE_FAILED,
        Stage.SANDBOX,
        "make downgrade() remove everything upgrade() creates, so it runs again",
    ),
    Rule(
        SCHEMA_DRIFT,
        Stage.SANDBOX,
        "run `alembic check` and add the revision it asks for, or fix the models",
    ),
    Rule(
        INVALID_INDEX,
        Stage.SANDBOX,
        "drop the invalid index and build it again (CONCURRENTLY)",
    ),
    Rule(
        INDEX_UNUSABLE,
        Stage.SANDBOX,
        "check the index's column order and operator class, or drop it",
    ),
    Rule(
        RLS_DISABLED,
        Stage.SANDBOX,
        "ALTER TABLE ... ENABLE ROW LEVEL SECURITY on every tenant table",
    ),
    Rule(
        RLS_NO_POLICY,
        Stage.SANDBOX,
        "CREATE POLICY ... USING (tenant column = the tenant setting)",
    ),
    Rule(
        TENANT_ISOLATION_BROKEN,
        Stage.SANDBOX,
        "make the policy's USING clause compare the tenant column to the setting",
    ),
    Rule(
        UNDECLARED_CHANGE,
        Stage.SANDBOX,
        "make the migration do everything through op, in offline mode too",
        needs_approval=True,
    ),
    Rule(
        SANDBOX_SIDE_CONNECTION,
        Stage.SANDBOX,
        "run every statement through op (op.execute, op.get_bind())",
    ),
    Rule(
        SANDBOX_SIZE_LIMIT,
        Stage.SANDBOX,
        "move bulk data loads out of the migration, or raise sandbox.max_database_size",
    ),
    Rule(
        SANDBOX_FAILED,
        Stage.SANDBOX,
        "fix the sandbox's setup or server (the report says what failed)",
    ),
)
RULE_INFOS: dict[str, RuleInfo] = rule_infos(RULES)  # what bot.sandbox.run reads


def bare(relation: str) -> str:
    """`public.orders` and `orders` name the same table for these comparisons."""
    return relation.removeprefix("public.").strip('"')


def observed_findings(
    trace: list[TracedStatement],
    spans: list[LockSpan],
    base_tables: set[str],
    *,
    lock_timeout_max_ms: float,
    statement_timeout_max_ms: float,
) -> list[Finding]:
    existing = {bare(t) for t in base_tables}
    findings = list(_access_exclusive(trace, spans, existing))
    findings += _rewrites(trace, existing)
    findings += _timeouts(trace, existing, lock_timeout_max_ms, statement_timeout_max_ms)
    return findings


def _at(statement: TracedStatement, rule: RuleInfo, message: str) -> Finding:
    return Finding(
        rule=rule.id,
        severity=rule.default_severity,
        message=message,
        path=statement.path,
        line=statement.line,
        revision=statement.revision,
        statement=statement.sql,
        phase="upgrade",
        source="sandbox",
    )


def _access_exclusive(
    trace: list[TracedStatement], spans: list[LockSpan], existing: set[str]
) -> Iterable[Finding]:
    for span in spans:
        if span.mode != "AccessExclusiveLock" or bare(span.relation) not in existing:
            continue
        count = span.last_statement - span.first_statement + 1
        yield _at(
            trace[span.first_statement],
            ACCESS_EXCLUSIVE_LOCK,
            f"ACCESS EXCLUSIVE lock on {bare(span.relation)} held {span.held_s * 1000:.0f} ms "
            f"in the sandbox, across {count} statement(s) until the transaction ended",
        )


def _rewrites(trace: list[TracedStatement], existing: set[str]) -> Iterable[Finding]:
    for statement in trace:
        for table in statement.rewritten:
            if bare(table) in existing:
                yield _at(statement, TABLE_REWRITE, f"this statement rewrote table {bare(table)}")


def unreported_rewrites(
    base: dict[str, tuple[int, int]],
    head: dict[str, tuple[int, int]],
    trace: list[TracedStatement],
) -> list[Finding]:
    """Tables whose storage the upgrade replaced (same oid, new relfilenode: the parent's
    own reading of pg_class before and after) that no traced statement says it rewrote.
    The trace comes from the process running the migration, which may leave statements out;
    this measure does not."""
    reported = {bare(table) for statement in trace for table in statement.rewritten}
    findings = []
    for table, (oid, node) in sorted(base.items()):
        after = head.get(table)
        if after is None or after[0] != oid or after[1] == node or bare(table) in reported:
            continue  # dropped, re-created (another oid), untouched, or traced
        findings.append(
            Finding(
                rule=TABLE_REWRITE.id,
                severity=TABLE_REWRITE.default_severity,
                message=(
                    f"table {bare(table)} was rewritten during the upgrade (migsafe saw its "
                    "storage replaced), but no traced statement says it did: the process "
                    "running the migration did not report it"
                ),
                phase="upgrade",
                source="sandbox",
            )
        )
    return findings


def _timeouts(
    trace: list[TracedStatement], existing: set[str], lock_max: float, statement_max: float
) -> Iterable[Finding]:
    reported: set[tuple[str, str | None]] = set()
    for statement in trace:
        if not any(bare(rel) in existing for rel, _ in statement.locks):
            continue
        checks = (
            (LOCK_TIMEOUT_NOT_SET, "lock_timeout", statement.lock_timeout, lock_max),
            (
                STATEMENT_TIMEOUT_NOT_SET,
                "statement_timeout",
                statement.statement_timeout,
                statement_max,
            ),
        )
        for rule, setting, value, limit in checks:
            problem = _timeout_problem(setting, value, limit)
            key = (rule.id, statement.revision)
            if problem and key not in reported:
                reported.add(key)
                yield _at(statement, rule, problem)


def _timeout_problem(setting: str, value: str | None, limit_ms: float) -> str | None:
    if value is None:
        return None
    ms = parse_duration_ms(value)
    if ms is None or ms == 0:
        return f"{setting} was not set on the migration's connection when it took this lock"
    if ms > limit_ms:
        return f"{setting} was {value} on the migration's connection; at most {format_ms(limit_ms)}"
    return None
