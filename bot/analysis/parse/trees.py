"""Statements as sqlglot parses them (postgres dialect); only the top of the tree is read.

ALTER TABLE is in `alter`; statements sqlglot keeps as an opaque `exp.Command` are left
to the token reader (`classify_tree` returns None for them).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from bot.analysis.model import Action, ActionKind
from bot.analysis.parse.alter import add_column, classify_alter, constraint_action
from bot.analysis.parse.nodes import column_names, ident, qualified, table_of
from bot.analysis.parse.split import drop_actions, other


def classify_tree(tree: exp.Expr, words: list[str]) -> list[Action] | None:
    """The actions of one parsed statement; None for a Command, which the tokens must read."""
    if isinstance(tree, exp.Alter):
        return classify_alter(tree, words)
    if isinstance(tree, exp.Create):
        return _classify_create(tree, words)
    if isinstance(tree, exp.Drop):
        return _classify_drop(tree, words)
    if isinstance(tree, exp.Command):
        return None
    handler = _SIMPLE_TREES.get(type(tree))
    if handler is not None:
        return handler(tree)
    if isinstance(tree, exp.Query):
        return [Action(ActionKind.SELECT)]
    return other(words)


def _classify_create(tree: exp.Create, words: list[str]) -> list[Action]:
    kind = str(tree.args.get("kind") or "").upper()
    exists = bool(tree.args.get("exists"))
    if kind == "TABLE":
        return _create_table(tree, exists)
    if kind == "INDEX" and isinstance(tree.this, exp.Index):
        return [_create_index(tree, tree.this, exists)]
    named = _CREATE_NAMED_KINDS.get(kind)
    if named is not None:
        return [Action(named, name=table_of(tree.this), if_exists=exists)]
    return other(words)


_CREATE_NAMED_KINDS = {
    "VIEW": ActionKind.CREATE_VIEW,
    "SEQUENCE": ActionKind.CREATE_SEQUENCE,
    "TYPE": ActionKind.CREATE_TYPE,
}


def _create_table(tree: exp.Create, exists: bool) -> list[Action]:
    """CREATE TABLE, then one ADD_COLUMN per column (with its inline constraints) and the
    table's PRIMARY KEY and FOREIGN KEY constraints. The rules about existing tables skip
    them (the table is new); the column-type rules and the foreign keys' lock on the
    referenced table still apply."""
    table = table_of(tree.this)
    actions = [Action(ActionKind.CREATE_TABLE, table=table, if_exists=exists)]
    if not isinstance(tree.this, exp.Schema):
        return actions  # CREATE TABLE ... AS SELECT
    for item in tree.this.expressions:
        if isinstance(item, exp.ColumnDef):
            actions.extend(add_column(item, table))
        elif isinstance(item, exp.Constraint | exp.ForeignKey | exp.PrimaryKey):
            action = constraint_action(item, table)
            if action.constraint_type in ("foreign_key", "primary_key"):
                actions.append(action)
    return actions


def _create_index(tree: exp.Create, index: exp.Index, exists: bool) -> Action:
    params = index.args.get("params")
    columns = params.args.get("columns") if params is not None else None
    return Action(
        ActionKind.CREATE_INDEX,
        table=table_of(index.args.get("table")),
        name=ident(index.this) if index.this else None,
        columns=column_names(columns or ()),
        unique=bool(tree.args.get("unique")),
        concurrently=bool(tree.args.get("concurrently")),
        if_exists=exists,
    )


DROP_KINDS = {
    "TABLE": ActionKind.DROP_TABLE,
    "INDEX": ActionKind.DROP_INDEX,
    "VIEW": ActionKind.DROP_VIEW,
    "SEQUENCE": ActionKind.DROP_SEQUENCE,
    "TYPE": ActionKind.DROP_TYPE,
    "SCHEMA": ActionKind.DROP_SCHEMA,
}


def _classify_drop(tree: exp.Drop, words: list[str]) -> list[Action]:
    kind = DROP_KINDS.get(str(tree.args.get("kind") or "").upper())
    if kind is None:
        return other(words)
    return drop_actions(
        kind,
        [qualified(t) for t in tree.args.get("tables") or ()],
        if_exists=bool(tree.args.get("exists")),
        cascade=bool(tree.args.get("cascade")),
        concurrently=bool(tree.args.get("concurrently")),
        detail="MATERIALIZED" if tree.args.get("materialized") else None,
    )


# DML and the rest ----------------------------------------------------------------------


def _truncate(tree: exp.Expr) -> list[Action]:
    tables = tuple(name for t in tree.expressions if (name := table_of(t)))
    cascade = str(tree.args.get("option") or "").upper() == "CASCADE"
    first = tables[0] if tables else None
    return [Action(ActionKind.TRUNCATE, table=first, tables=tables, cascade=cascade)]


def _update_or_delete(tree: exp.Expr) -> list[Action]:
    kind = ActionKind.UPDATE if isinstance(tree, exp.Update) else ActionKind.DELETE
    has_where = tree.args.get("where") is not None
    return [Action(kind, table=table_of(tree.this), has_where=has_where)]


def _insert(tree: exp.Expr) -> list[Action]:
    return [Action(ActionKind.INSERT, table=table_of(tree.this))]


def _select(tree: exp.Expr) -> list[Action]:
    """A plain SELECT, or `SELECT set_config('name', 'value', is_local)`."""
    expressions = tree.expressions
    call = expressions[0] if len(expressions) == 1 else None
    if isinstance(call, exp.Dot):
        call = call.expression
    if isinstance(call, exp.Anonymous) and str(call.this).lower() == "set_config":
        args = call.expressions
        if len(args) == 3 and isinstance(args[0], exp.Literal) and isinstance(args[1], exp.Literal):
            local = isinstance(args[2], exp.Boolean) and bool(args[2].this)
            setting, value = str(args[0].this).lower(), str(args[1].this)
            return [Action(ActionKind.SET, setting=setting, value=value, local=local)]
    return [Action(ActionKind.SELECT)]


def _set(tree: exp.Expr) -> list[Action]:
    actions = []
    for item in tree.expressions:
        assignment = item.this
        if isinstance(assignment, exp.EQ):
            value = assignment.expression
            text = str(value.this) if isinstance(value, exp.Literal) else None
            local = str(item.args.get("kind") or "").upper() == "LOCAL"
            setting = ident(assignment.this)
            actions.append(Action(ActionKind.SET, setting=setting, value=text, local=local))
    return actions or [Action(ActionKind.OTHER, detail="SET")]


def _comment(tree: exp.Expr) -> list[Action]:
    target = tree.this
    if isinstance(target, exp.Table):
        return [Action(ActionKind.COMMENT, table=qualified(target))]
    if isinstance(target, exp.Column):
        table = ident(target.args.get("table"))
        return [Action(ActionKind.COMMENT, table=table, column=ident(target.this))]
    return [Action(ActionKind.COMMENT)]


_SIMPLE_TREES: dict[type[exp.Expr], Callable[[exp.Expr], list[Action]]] = {
    exp.TruncateTable: _truncate,
    exp.Update: _update_or_delete,
    exp.Delete: _update_or_delete,
    exp.Insert: _insert,
    exp.Select: _select,
    exp.Set: _set,
    exp.Comment: _comment,
    exp.Transaction: lambda _: [Action(ActionKind.BEGIN)],
    exp.Commit: lambda _: [Action(ActionKind.COMMIT)],
    exp.Rollback: lambda _: [Action(ActionKind.OTHER, detail="ROLLBACK")],
}
