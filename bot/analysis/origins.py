"""Which file and line a statement came from, as far as the parent can vouch for it (pure).

The dry-run's and the sandbox's children run the repository's code, and they say which
revision file and line emitted each statement over a channel that code can write to. A
forged line could put a finding on a line whose `# migsafe: ignore[rule] reason` comment
was written for another operation, or on a line with no operation at all. So a reported
line stands only where the parent's own scan of that revision's file (`ast`, never
imported: `MigrationFile.call_sites`) finds a call starting there that could emit the
statement's kind, and names nothing (table, column, index) the statement does not:
`op.drop_column("accounts", "legacy")` for ALTER TABLE accounts DROP COLUMN legacy,
`op.execute` for anything. Otherwise the statement keeps the revision's file without a
line, the finding says why, and no suppression comment can apply to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from bot.analysis.migration_model import BATCH, BATCH_RECREATE, CallSite, MigrationFile
from bot.analysis.model import Action, ActionKind, Finding, Statement
from bot.analysis.parse import classify
from bot.analysis.rules.base import bare_name, tables_of

AK = ActionKind
_CREATING = frozenset(
    {AK.CREATE_TABLE, AK.CREATE_INDEX, AK.CREATE_TYPE, AK.CREATE_SEQUENCE, AK.COMMENT, AK.SELECT}
)
_DROPPING = frozenset({AK.DROP_TABLE, AK.DROP_TYPE, AK.DROP_INDEX, AK.DROP_SEQUENCE, AK.SELECT})
_ADD_CONSTRAINT = frozenset({AK.ADD_CONSTRAINT})
_BESIDE_THE_TABLE = frozenset(
    {AK.CREATE_TYPE, AK.DROP_TYPE, AK.CREATE_SEQUENCE, AK.DROP_SEQUENCE, AK.SELECT}
)
# What each operation can emit on PostgreSQL (a SELECT: SQLAlchemy's checkfirst for types).
# None: anything (op.execute, bind.execute); an op.* name not listed here is a custom
# operation (Operations.register_operation), which can emit anything as well.
EMITS: dict[str, frozenset[ActionKind] | None] = {
    "execute": None,
    "create_table": _CREATING | {AK.ADD_CONSTRAINT, AK.ADD_COLUMN},  # its columns: ADD_COLUMN
    "drop_table": _DROPPING,
    "rename_table": frozenset({AK.RENAME_TABLE}),
    "add_column": frozenset(
        {AK.ADD_COLUMN, AK.ADD_CONSTRAINT, AK.CREATE_TYPE, AK.CREATE_INDEX, AK.COMMENT, AK.SELECT}
    ),
    "drop_column": frozenset({AK.DROP_COLUMN}),
    "alter_column": frozenset(
        {
            AK.ALTER_COLUMN_TYPE,
            AK.SET_NOT_NULL,
            AK.DROP_NOT_NULL,
            AK.SET_DEFAULT,
            AK.DROP_DEFAULT,
            AK.RENAME_COLUMN,
            AK.COMMENT,
        }
    ),
    "create_index": frozenset({AK.CREATE_INDEX}),
    "drop_index": frozenset({AK.DROP_INDEX}),
    "create_unique_constraint": _ADD_CONSTRAINT,
    "create_foreign_key": _ADD_CONSTRAINT,
    "create_check_constraint": _ADD_CONSTRAINT,
    "create_primary_key": _ADD_CONSTRAINT,
    "create_exclude_constraint": _ADD_CONSTRAINT,
    "drop_constraint": frozenset({AK.DROP_CONSTRAINT}),
    "bulk_insert": frozenset({AK.INSERT}),
    "create_table_comment": frozenset({AK.COMMENT}),
    "drop_table_comment": frozenset({AK.COMMENT}),
    "create": _CREATING,  # sa.Enum(...).create(bind), sa.Index(...).create(bind)
    "drop": _DROPPING,
    BATCH: frozenset(),  # what its block's operations emit is recorded at its line too
    BATCH_RECREATE: frozenset(
        {AK.CREATE_TABLE, AK.INSERT, AK.DROP_TABLE, AK.RENAME_TABLE, AK.CREATE_INDEX}
    )
    | _ADD_CONSTRAINT,
}


# What the note of a refused or unvouched line says of suppressions.
NO_SUPPRESSION = "no suppression comment applies to it"

Strength = Literal["vouched", "shown"]  # shown: the line is kept, no suppression applies


@dataclass(frozen=True)
class Refused:
    """A location a child reported for a statement, and what the parent kept of it."""

    sql: str
    path: str | None  # the revision's file, when the parent knows it; else None
    claimed: str  # "path:line" as the child said
    kept_line: int | None = None  # the line is shown, but cannot be tied to the statement

    def note(self) -> str:
        if self.kept_line is not None:
            return (
                f"(the process running the migration reported this statement at "
                f"{self.claimed}, where migsafe's own reading of the revision file cannot tell "
                f"what the call emits (SQL that is not a string literal, names it cannot read, "
                f"or a custom operation): the line is shown, but {NO_SUPPRESSION})"
            )
        kept = f"names {self.path} without a line" if self.path else "names no file"
        return (
            f"(the process running the migration reported this statement at {self.claimed}, "
            "where migsafe's own reading of the revision file finds no operation that could "
            f"emit it: the finding {kept}, and {NO_SUPPRESSION})"
        )


def vouched(
    sql: str,
    path: str | None,
    line: int | None,
    files: Mapping[str, MigrationFile],
    *,
    revision: str | None = None,
    kinds: Iterable[ActionKind] | None = None,
    phase: str | None = None,
) -> tuple[str | None, int | None, Refused | None]:
    """(path, line, what was refused) for a statement a child said `path`:`line` emitted,
    while running `revision` (when the child says which) in `phase` (upgrade / downgrade,
    when known). `kinds`: the statement's actions, if parsed already."""
    if path is None:  # env.py's own statements, or Alembic's
        return None, None, None
    migration = files.get(path)
    if revision is not None and (migration is None or migration.revision != revision):
        own = next((m.path for m in files.values() if m.revision == revision), None)
        return own, None, Refused(sql, own, _claimed(path, line))
    if migration is None:
        return None, None, Refused(sql, None, _claimed(path, line))
    if line is None:
        return path, None, None
    strength = emits(migration.call_sites.get(line, ()), sql, kinds, phase)
    if strength == "vouched":
        return path, line, None
    if strength == "shown":
        return path, line, Refused(sql, path, _claimed(path, line), kept_line=line)
    return path, None, Refused(sql, path, _claimed(path, line))


def can_emit(
    sites: Iterable[CallSite], sql: str, kinds: Iterable[ActionKind] | None = None
) -> bool:
    """Whether one of the calls reported at a line could emit this statement."""
    return emits(sites, sql, kinds) is not None


def emits(
    sites: Iterable[CallSite],
    sql: str,
    kinds: Iterable[ActionKind] | None = None,
    phase: str | None = None,
) -> Strength | None:
    """How far a call at the line accounts for the statement. "vouched": an operation able
    to emit its kind, in the function of its phase, naming exactly what it acts on (every
    table and index the parser finds is among the call's names, and each of the call's names
    is in the statement), or an `execute` whose string literal is this statement. "shown":
    a call whose output the source does not tell (SQL in a variable, names the scan cannot
    read, a custom operation). None: nothing at the line could have emitted it."""
    sites = [s for s in sites if phase is None or s.function not in _OTHER_PHASE.get(phase, ())]
    actions = classify(sql)[0]
    found = set(kinds) if kinds is not None else {a.kind for a in actions}
    # A type, sequence or checkfirst query an operation emits on the side names none of it.
    named = not found <= _BESIDE_THE_TABLE
    shown = False
    for site in sites:
        if site.name == "execute":
            if site.opaque:
                shown = True
            elif any(same_sql(sql, piece) for piece in site.sql):
                return "vouched"
            continue
        allowed = EMITS.get(site.name)
        if allowed is None:  # a custom operation (register_operation): anything
            shown = True
            continue
        if not found <= allowed:
            continue
        if site.opaque:
            shown = True
        elif not named or (
            all(_names(sql, word) for word in site.words) and acted_on(actions) <= _may_act_on(site)
        ):
            return "vouched"
    return "shown" if shown else None


_OTHER_PHASE = {"upgrade": ("downgrade",), "downgrade": ("upgrade",)}


def _may_act_on(site: CallSite) -> set[str]:
    """The names a call's statements may act on: its own; for a batch that copies its table,
    Alembic's temporary copy too."""
    words = {word.casefold() for word in site.words}
    if site.name == BATCH_RECREATE:
        words |= {f"_alembic_tmp_{word}" for word in words}
    return words


def same_sql(one: str, other: str) -> bool:
    """The same statement as written offline and as run online: spacing, a final `;` and
    case aside."""
    return _normal(one) == _normal(other)


def _normal(sql: str) -> str:
    return " ".join(sql.strip().rstrip(";").split()).casefold()


def acted_on(actions: Iterable[Action], *, indexes: bool = True) -> set[str]:
    """The tables (and, with `indexes`, the indexes) a statement's actions act on, as bare
    lower-case names."""
    names = {bare_name(table).casefold() for action in actions for table in tables_of(action)}
    if indexes:
        names |= {
            bare_name(action.name).casefold()
            for action in actions
            if action.kind in (ActionKind.CREATE_INDEX, ActionKind.DROP_INDEX) and action.name
        }
    return names


def _names(sql: str, word: str) -> bool:
    """`word` in `sql` as a whole name (quoted or not), case aside."""
    return re.search(rf"(?<![\w$]){re.escape(word)}(?![\w$])", sql, re.IGNORECASE) is not None


def vouch_statements(
    statements: Iterable[Statement], files: Mapping[str, MigrationFile]
) -> list[Refused]:
    """The dry-run's statements with only the locations the parent can vouch for (in place)."""
    refused: list[Refused] = []
    for statement in statements:
        statement.path, statement.line, rejected = vouched(
            statement.sql,
            statement.path,
            statement.line,
            files,
            revision=statement.revision,
            kinds=[action.kind for action in statement.actions] if statement.actions else None,
            phase=statement.phase,
        )
        if rejected is not None:
            refused.append(rejected)
    return refused


def with_notes(findings: list[Finding], refused: Iterable[Refused]) -> list[Finding]:
    """Each finding about a statement whose reported location was refused says so. (A line
    kept without being vouched for is noted only where a suppression would have applied:
    `unsuppress_unvouched`.)"""
    notes = {(r.path, r.sql): r.note() for r in refused if r.kept_line is None}
    return [
        replace(finding, message=f"{finding.message} {notes[(finding.path, finding.statement)]}")
        if finding.line is None
        and finding.statement is not None
        and (finding.path, finding.statement) in notes
        else finding
        for finding in findings
    ]


def unsuppressible(refused: Iterable[Refused]) -> dict[tuple[str | None, int | None, str], str]:
    """The lines kept without being vouched for, by (path, line, statement), with the note
    a finding there carries instead of a suppression (`apply_suppressions`)."""
    return {(r.path, r.kept_line, r.sql): r.note() for r in refused if r.kept_line is not None}


def _claimed(path: str, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else path
