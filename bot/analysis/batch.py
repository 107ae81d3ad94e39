"""SQL findings of `with op.batch_alter_table(...)` blocks, moved onto their batch_op call.

Alembic emits a batch's SQL when the `with` block exits, so the dry-run traces it to the
`with` line, while the static scan, suppressions and documenting comments sit on the
`batch_op.<name>(...)` line. Pure: findings and scanned files in, findings out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from bot.analysis.migration_model import MigrationFile, OpCall
from bot.analysis.model import Finding
from bot.analysis.registry import points_at
from bot.analysis.rule import PointsAt

_Matches = Callable[[OpCall], bool]


def _named(*names: str) -> _Matches:
    return lambda call: call.name in names


def _altering(keyword: str) -> _Matches:
    return lambda call: call.name == "alter_column" and keyword in call.kwargs


def _setting_not_null(call: OpCall) -> bool:
    return call.name == "alter_column" and call.kwargs.get("nullable") is False


def _typed(call: OpCall) -> bool:
    return call.name == "add_column" or (call.name == "alter_column" and "type_" in call.kwargs)


# The batch_op calls each kind of `Rule.points_at` names (STATEMENT names none).
BATCH_CALLS: dict[PointsAt, _Matches] = {
    PointsAt.ADD_COLUMN: _named("add_column"),
    PointsAt.TYPED_COLUMN: _typed,
    PointsAt.ALTER_TYPE: _altering("type_"),
    PointsAt.SET_NOT_NULL: _setting_not_null,
    PointsAt.RENAME_COLUMN: _altering("new_column_name"),
    PointsAt.DROP_COLUMN: _named("drop_column"),
    PointsAt.CREATE_INDEX: _named("create_index"),
    PointsAt.DROP_INDEX: _named("drop_index"),
    PointsAt.CREATE_FOREIGN_KEY: _named("create_foreign_key"),
    PointsAt.CREATE_CHECK_CONSTRAINT: _named("create_check_constraint"),
    PointsAt.CREATE_UNIQUE: _named("create_unique_constraint", "create_primary_key"),
}


def onto_batch_calls(findings: list[Finding], files: Iterable[MigrationFile]) -> list[Finding]:
    """Findings traced to a batch `with` line, moved to the line of the batch call they
    come from (the k-th finding of a rule to the k-th matching call, as Alembic emits the
    batch's operations in order). Findings with no matching call stay where they are."""
    batches = _batch_calls(files)
    used: dict[tuple[str, int, str, str], int] = {}
    moved: list[Finding] = []
    for finding in findings:
        matches = BATCH_CALLS.get(points_at(finding.rule))
        calls = batches.get((finding.path or "", finding.line or 0, finding.phase or ""), [])
        candidates = [call for call in calls if matches is not None and matches(call)]
        key = (finding.path or "", finding.line or 0, finding.phase or "", finding.rule)
        index = used.get(key, 0)
        if index < len(candidates):
            used[key] = index + 1
            finding = replace(finding, line=candidates[index].line)
        moved.append(finding)
    return moved


def _batch_calls(files: Iterable[MigrationFile]) -> dict[tuple[str, int, str], list[OpCall]]:
    """(path, `with` line, function) -> the batch calls of that block, in line order."""
    batches: dict[tuple[str, int, str], list[OpCall]] = {}
    for migration in files:
        for call in migration.ops:
            if call.batch_line is not None:
                key = (migration.path, call.batch_line, call.function)
                batches.setdefault(key, []).append(call)
    return batches
