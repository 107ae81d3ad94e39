"""Findings from what the parent measured after a step: the schema against the base and
the dry-run's SQL (`undeclared-change`), the rollback, the models (`schema-drift`).

The trace (the child's word) only names the statement that most likely made a change.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bot.analysis.origins import vouched
from bot.analysis.rules import sandbox as rules
from bot.analysis.sandbox_model import TracedStatement
from bot.sandbox.declared import undeclared_changes
from bot.sandbox.schema import DEFAULT_IGNORED_TABLES, SchemaSnapshot, describe, diff_schema
from bot.sandbox.seed import DataLoss
from bot.sandbox.session import ChildRun, Run
from bot.sandbox.snapshot import take_snapshot
from bot.sandbox.trace import clean_record

_DRIFT_SHOWN = 5  # differences named in the finding's message


def check_models(run: Run) -> tuple[list[str], str | None]:
    """`schema-drift`: (problems, what the step says about the models otherwise)."""
    drift, error = run.model_drift()
    if error:
        return [], f"models not compared: {error}"
    if drift is None:
        return [], "no models to compare (env.py sets no target_metadata)"
    if not drift:
        return [], "schema matches the models (target_metadata)"
    unmodelled = [
        line.removeprefix(_NOT_IN_MODELS) for line in drift if line.startswith(_NOT_IN_MODELS)
    ]
    if len(unmodelled) * 2 > len(drift):
        # Mostly tables the models lack: target_metadata loads only part of the models.
        others = [line for line in drift if not line.startswith(_NOT_IN_MODELS)]
        rest = f"; the other {len(others)}: {_first(others)}" if others else ""
        summary = (
            f"{len(unmodelled)} of the {len(drift)} difference(s) are tables the database has "
            f"and the models do not ({_first(unmodelled)}): env.py's target_metadata seems to "
            f"load only part of the models (import every models module in env.py){rest}"
        )
        run.fail(
            "schema-drift",
            f"after the upgrade the database differs from the models (env.py's target_metadata) "
            f"in {len(drift)} place(s), as `alembic check` would report: {summary}",
        )
        return [f"{len(drift)} difference(s) from the models: {summary}"], None
    shown = _first(drift)
    run.fail(
        "schema-drift",
        f"after the upgrade the database differs from the models (env.py's target_metadata) "
        f"in {len(drift)} place(s), as `alembic check` would report: {shown}",
    )
    return [f"{len(drift)} difference(s) from the models: {shown}"], None


_NOT_IN_MODELS = "remove_table "  # what `alembic check` would drop: a table without a model


def _first(items: list[str]) -> str:
    """The first _DRIFT_SHOWN items, and how many more."""
    more = f"; and {len(items) - _DRIFT_SHOWN} more" if len(items) > _DRIFT_SHOWN else ""
    return "; ".join(items[:_DRIFT_SHOWN]) + more


def failed_statement(run: Run, result: ChildRun) -> dict[str, Any] | None:
    """The statement the child says failed, where the parent can vouch for its location."""
    for record in reversed(result.statements):
        statement, _ = clean_record(record, {})
        if statement is not None and statement.error:
            path, line, refused = vouched(
                statement.sql, statement.path, statement.line, run.request.files
            )
            if refused is not None:
                run.unvouched.append(refused)
            return {"sql": statement.sql, "path": path, "line": line}
    return None


def rollback_findings(run: Run, lost: list[DataLoss]) -> list[str]:
    details = []
    if run.report.rollback_diff:
        shown = "; ".join(run.report.rollback_diff[:5])
        run.fail(
            "rollback-schema-mismatch",
            f"after the downgrade the schema differs from the base: {shown}",
        )
        details.append(f"{len(run.report.rollback_diff)} schema difference(s)")
    for loss in lost:
        run.fail("rollback-data-loss", loss.describe())
        details.append(f"data lost in {loss.table}")
    return details


def measure_head(
    run: Run, base: SchemaSnapshot, *, lock_timeout: str | None = None
) -> SchemaSnapshot:
    """The schema after the upgrade to head, and its difference from the base's."""
    run.settle("when migsafe read the schema")
    with run.admin() as admin:
        if lock_timeout:
            admin.execute(psycopg.sql.SQL("SET lock_timeout = {}").format(lock_timeout))
        head = take_snapshot(admin)
    # Alembic's version table, whatever env.py called it, is bookkeeping (seen on each run).
    ignored = {*DEFAULT_IGNORED_TABLES, run.version_table, rules.bare(run.version_table)}
    run.report.schema_diff = [describe(c) for c in diff_schema(base, head, ignore_tables=ignored)]
    return head


_FAILED_UPGRADE_LOCK_TIMEOUT = "3s"


def measure_failed_upgrade(run: Run, base: SchemaSnapshot) -> None:
    """undeclared-change for what a failed upgrade left behind. The child's sessions are
    ended first, so only a session from outside the check can make the catalogs wait: then
    the measurement is given up, and that is a finding too (fail closed)."""
    try:
        head = measure_head(run, base, lock_timeout=_FAILED_UPGRADE_LOCK_TIMEOUT)
    except psycopg.errors.LockNotAvailable as error:
        run.fail(
            "sandbox-failed",
            "what the failed upgrade left in the database could not be compared with the "
            f"dry-run's SQL: {str(error).strip()}",
        )
        return
    undeclared(run, base, head)


def undeclared(run: Run, base: SchemaSnapshot, head: SchemaSnapshot) -> None:
    """Every change of the schema (measured: the parent's snapshots) that the dry-run's
    offline SQL did not declare (see `bot.sandbox.declared`). The trace only names the
    statement that most likely made it."""
    request = run.request
    declared = request.pending_dry_run() if request.pending_dry_run else request.dry_run_upgrade
    upgrade = [statement for statement in declared if statement.phase == "upgrade"]
    for found in undeclared_changes(diff_schema(base, head), upgrade, base, head):
        run.fail(
            "undeclared-change",
            found.message,
            _statement_mentioning(run.report.trace, *found.names),
        )


def _statement_mentioning(trace: list[TracedStatement], *names: str) -> dict[str, Any] | None:
    """The traced statement that most likely made a change: the last one naming it."""
    wanted = [rules.bare(n).rsplit(".", 1)[-1].lower() for n in names]
    for statement in reversed(trace):
        if all(name in statement.sql.lower() for name in wanted):
            return {"sql": statement.sql, "path": statement.path, "line": statement.line}
    return None
