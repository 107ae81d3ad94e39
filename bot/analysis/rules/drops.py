"""Dropping schemas, types, views, sequences, functions, extensions and key constraints.

Like the checklist's destructive changes in `destructive.py`: what existed before the
change is lost (data, or a guarantee the data relies on) and the code still deployed may
depend on it. Objects created earlier in the same stream are not reported, nor views,
functions and constraints the change creates again (`state.recreated_objects`), nor the
old type of an enum swap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.analysis.model import Action, ActionKind, Family, Finding, RuleInfo, Severity, Statement
from bot.analysis.rule import Rule, Stage
from bot.analysis.rules.base import actions_of, bare_name, finding
from bot.analysis.state import StreamState

if TYPE_CHECKING:
    from bot.analysis.options import AnalysisOptions

# True of every rule here: the severity follows the environment matrix (Family.DESTRUCTIVE),
# and only drop-schema needs approval by default.
_SEVERITY = (
    "Its severity follows the environment, as for the checklist's destructive changes: an "
    "error where the environment asks for approvals, a warning elsewhere."
)
_NO_APPROVAL = (
    "It needs no approval by default; listing it under the policy's `approval.rules` makes "
    "it need the environment's approvals."
)


def _info(rule_id: str, summary: str, explanation: str, *, approval: bool = False) -> RuleInfo:
    approval_text = (
        "It needs the environment's approvals, like DROP TABLE." if approval else _NO_APPROVAL
    )
    return RuleInfo(
        id=rule_id,
        family=Family.DESTRUCTIVE,
        default_severity=Severity.ERROR,
        summary=summary,
        explanation=f"{explanation} {_SEVERITY} {approval_text}",
    )


DROP_SCHEMA = _info(
    "drop-schema",
    "DROP SCHEMA ... CASCADE (drops every object in the schema)",
    "DROP SCHEMA ... CASCADE drops every table, view, function and type in the schema, with "
    "all of their data, without listing them. Drop the objects one by one (each is then "
    "judged on its own), then drop the empty schema without CASCADE.",
    approval=True,
)
DROP_TYPE = _info(
    "drop-type",
    "DROP TYPE of a type that existed before this change",
    "Code still deployed may cast to the type or write its values; with CASCADE, every "
    "column of the type is dropped with its data. Deploy code that no longer uses the type, "
    "convert or drop its columns in their own steps, then drop it without CASCADE.",
)
DROP_VIEW = _info(
    "drop-view",
    "DROP VIEW of a view that existed before this change",
    "Queries of the release still running fail from the moment the view is gone, and "
    "CASCADE also drops every view built on it. To change a view's definition use CREATE "
    "OR REPLACE VIEW (it can add columns at the end); otherwise deploy code that no longer "
    "reads the view first.",
)
DROP_MATERIALIZED_VIEW = _info(
    "drop-materialized-view",
    "DROP MATERIALIZED VIEW of a view that existed before this change",
    "A materialized view holds data computed at its last refresh; dropping it loses that "
    "data (recomputing it may take long) and fails every query still reading it. Deploy "
    "code that no longer reads it first, then drop it.",
)
DROP_SEQUENCE = _info(
    "drop-sequence",
    "DROP SEQUENCE of a sequence that existed before this change",
    "Column defaults (nextval) and code that draw numbers from the sequence fail, and its "
    "current value is lost: recreating it restarts the numbering, which collides with "
    "existing keys. Drop the defaults and the code that use it first.",
)
DROP_FUNCTION = _info(
    "drop-function",
    "DROP FUNCTION / PROCEDURE of one that existed before this change",
    "Triggers, defaults, views and code that call the function fail, and CASCADE silently "
    "drops the triggers and defaults that use it. To change a function's body use CREATE "
    "OR REPLACE FUNCTION; drop an unused one only after deploying code that no longer "
    "calls it.",
)
DROP_EXTENSION = _info(
    "drop-extension",
    "DROP EXTENSION of an extension that existed before this change",
    "Dropping an extension removes its types, functions and operators; with CASCADE also "
    "every column, index and view that uses them, with their data. Check "
    "`pg_depend` for what uses it, remove those in their own steps, then drop it.",
)
DROP_KEY_CONSTRAINT = _info(
    "drop-constraint",
    "DROP CONSTRAINT of a primary key, unique or foreign key constraint",
    "Dropping a primary key or unique constraint stops enforcing uniqueness (and drops its "
    "index); dropping a foreign key stops enforcing that rows reference existing ones. Bad "
    "data written meanwhile stays after the constraint comes back, if it can come back at "
    "all. The kind is read from the constraint's name only (PostgreSQL's _pkey, _key, _fkey "
    "and the usual pk_, uq_, fk_ conventions; ck_, chk_, check_ and _check, _ck name a CHECK, "
    "not reported); a constraint added again later in the change (a primary-key swap, a "
    "foreign key re-added NOT VALID) is not reported.",
)

# names of key constraints: PostgreSQL's defaults and the usual naming conventions
_KEY_NAME = re.compile(
    r"(?:_(?:pkey|key|fkey|pk|uq|uniq|unique|fk)$|^(?:pk|uq|uniq|unique|fk)_)", re.IGNORECASE
)
# names of CHECK constraints: the usual naming conventions
_CHECK_NAME = re.compile(r"(?:^(?:ck|chk|check)_|_(?:check|ck|chk)$)", re.IGNORECASE)
_KEY_KIND = {"pkey": "primary key", "pk": "primary key", "fkey": "foreign key", "fk": "foreign key"}


def check_drop_schema(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.DROP_SCHEMA):
        if not action.cascade:
            continue  # PostgreSQL refuses to drop a schema that still has objects in it
        yield finding(
            DROP_SCHEMA,
            stmt,
            f"DROP SCHEMA {action.name} CASCADE drops every object in the schema and its data",
            advice=(
                f"Drop the objects of {action.name} one by one (each is then reviewed), then:\n"
                f"DROP SCHEMA {action.name};"
            ),
        )


def check_drop_type(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in _existing(stmt, state, ActionKind.DROP_TYPE, "type"):
        if state.is_swapped_type(action.name):
            continue  # the enum swap: the old type's columns moved to its replacement
        cascade = " CASCADE (also dropping every column of the type)" if action.cascade else ""
        what = action.detail or "TYPE"  # DOMAIN for a domain
        yield finding(
            DROP_TYPE,
            stmt,
            f"DROP {what} {action.name}{cascade} removes a type the running code may use",
            advice=(
                f"Deploy code that no longer uses {action.name}, convert or drop its columns "
                f"first, then: DROP {what} {action.name};"
            ),
        )


def check_drop_view(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in _dropped_views(stmt, state, materialized=False):
        yield finding(
            DROP_VIEW,
            stmt,
            f"DROP VIEW {action.name} fails the running release's queries of it",
            advice=(
                f"To change its definition: CREATE OR REPLACE VIEW {action.name} AS ...;\n"
                f"To remove it: deploy code that no longer reads it first."
            ),
        )


def check_drop_materialized_view(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in _dropped_views(stmt, state, materialized=True):
        yield finding(
            DROP_MATERIALIZED_VIEW,
            stmt,
            f"DROP MATERIALIZED VIEW {action.name} loses its computed rows and fails queries "
            f"still reading it",
            advice=f"Deploy code that no longer reads {action.name} first, then drop it.",
        )


def _dropped_views(stmt: Statement, state: StreamState, *, materialized: bool) -> Iterator[Action]:
    for action in _existing(stmt, state, ActionKind.DROP_VIEW, "view"):
        if (action.detail == "MATERIALIZED") is not materialized:
            continue
        # A plain view created again is a redefinition; a materialized one re-created
        # still loses its rows until the CREATE recomputes them.
        if materialized or not state.is_recreated("view", action.name):
            yield action


def _existing(
    stmt: Statement, state: StreamState, kind: ActionKind, object_kind: str
) -> Iterator[Action]:
    """The statement's `kind` actions on objects not created earlier in the stream."""
    for action in actions_of(stmt, kind):
        if not state.is_new_object(object_kind, action.name):
            yield action


def check_drop_sequence(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in _existing(stmt, state, ActionKind.DROP_SEQUENCE, "sequence"):
        yield finding(
            DROP_SEQUENCE,
            stmt,
            f"DROP SEQUENCE {action.name} breaks every default and query that draws from it",
            advice=(
                f"Find its users first: SELECT * FROM pg_depend WHERE refobjid = "
                f"'{action.name}'::regclass;"
            ),
        )


def check_drop_function(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in _existing(stmt, state, ActionKind.DROP_FUNCTION, "function"):
        if state.is_recreated("function", action.name):
            continue
        kind = (action.detail or "FUNCTION").lower()
        cascade = " CASCADE (also dropping the triggers and defaults that use it)"
        yield finding(
            DROP_FUNCTION,
            stmt,
            f"DROP {kind.upper()} {action.name}{cascade if action.cascade else ''} breaks "
            f"everything that still calls it",
            advice=(
                f"To change it: CREATE OR REPLACE {kind.upper()} {action.name}(...) ...;\n"
                f"To remove it: deploy code that no longer calls it first."
            ),
        )


def check_drop_extension(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in _existing(stmt, state, ActionKind.DROP_EXTENSION, "extension"):
        cascade = " CASCADE (also dropping every column and index that uses it)"
        yield finding(
            DROP_EXTENSION,
            stmt,
            f"DROP EXTENSION {action.name}{cascade if action.cascade else ''} removes its "
            f"types and functions",
            advice=(
                f"See what depends on it first:\n"
                f"SELECT classid::regclass, objid FROM pg_depend WHERE refobjid = "
                f"(SELECT oid FROM pg_extension WHERE extname = '{bare_name(action.name)}');"
            ),
        )


def check_drop_key_constraint(
    stmt: Statement, state: StreamState, options: AnalysisOptions
) -> Iterator[Finding]:
    for action in actions_of(stmt, ActionKind.DROP_CONSTRAINT):
        kind = _key_kind(action)
        if kind is None or not state.is_existing_table(action.table):
            continue
        if state.is_new_constraint(action.table, action.name) or state.is_recreated(
            "constraint", action.name, action.table
        ):
            continue  # added earlier in the change, or added again (e.g. a primary-key swap)
        guarantee = "rows referencing existing ones" if kind == "foreign key" else "unique values"
        yield finding(
            DROP_KEY_CONSTRAINT,
            stmt,
            f"DROP CONSTRAINT {action.name} on {action.table} removes a {kind} (judged by its "
            f"name alone): {guarantee} are no longer enforced",
            advice=(
                "Make sure no code relies on it, and keep the constraint until the release "
                "that stops relying on it is deployed; with a backup taken, drop it then."
            ),
        )


def _key_kind(action: Action) -> str | None:
    """'primary key' / 'unique' / 'foreign key' from the constraint's name, or None (a
    CHECK constraint's name, e.g. ck_orders_api_key, wins over a key-like ending)."""
    name = bare_name(action.name)
    if _CHECK_NAME.search(name):
        return None
    match = _KEY_NAME.search(name)
    if match is None:
        return None
    word = match.group().strip("_").lower()
    return _KEY_KIND.get(word, "unique")


RULES: tuple[Rule, ...] = (
    Rule(
        DROP_SCHEMA,
        Stage.SQL,
        "move the tables out first, or drop the schema's objects one by one, each reviewed",
        judges=(ActionKind.DROP_SCHEMA,),
        check=check_drop_schema,
        needs_approval=True,
    ),
    Rule(
        DROP_TYPE,
        Stage.SQL,
        "stop using the type in every column and function first, then drop it in a later release",
        judges=(ActionKind.DROP_TYPE,),
        check=check_drop_type,
    ),
    Rule(
        DROP_VIEW,
        Stage.SQL,
        "CREATE OR REPLACE VIEW, or drop it only after no code reads it",
        judges=(ActionKind.DROP_VIEW,),
        check=check_drop_view,
    ),
    Rule(
        DROP_MATERIALIZED_VIEW,
        Stage.SQL,
        "drop it only after no code reads it, in a release of its own",
        judges=(ActionKind.DROP_VIEW,),
        check=check_drop_materialized_view,
    ),
    Rule(
        DROP_SEQUENCE,
        Stage.SQL,
        "drop it only after no column default or code uses it",
        judges=(ActionKind.DROP_SEQUENCE,),
        check=check_drop_sequence,
    ),
    Rule(
        DROP_FUNCTION,
        Stage.SQL,
        "CREATE OR REPLACE FUNCTION, or drop it only after nothing calls it",
        judges=(ActionKind.DROP_FUNCTION,),
        check=check_drop_function,
    ),
    Rule(
        DROP_EXTENSION,
        Stage.SQL,
        "drop the extension only after no object depends on it, without CASCADE",
        judges=(ActionKind.DROP_EXTENSION,),
        check=check_drop_extension,
    ),
    Rule(
        DROP_KEY_CONSTRAINT,
        Stage.SQL,
        "keep the guarantee until the code no longer relies on it, and document the drop",
        judges=(ActionKind.DROP_CONSTRAINT,),
        check=check_drop_key_constraint,
    ),
)
