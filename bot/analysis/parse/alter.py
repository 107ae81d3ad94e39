"""ALTER TABLE as sqlglot parses it: one action per clause.

ADD COLUMN of a serial type or an identity column counts as a volatile default: every
existing row gets a sequence value, which rewrites the table.
"""

from __future__ import annotations

from sqlglot import exp

from bot.analysis.model import Action, ActionKind
from bot.analysis.parse.nodes import column_names, ident, table_of, to_sql, type_sql
from bot.analysis.parse.split import other
from bot.analysis.parse.volatility import is_volatile

SERIAL_TYPES = frozenset(
    {exp.DataType.Type.SERIAL, exp.DataType.Type.BIGSERIAL, exp.DataType.Type.SMALLSERIAL}
)


def classify_alter(tree: exp.Alter, words: list[str]) -> list[Action]:
    if str(tree.args.get("kind") or "").upper() != "TABLE":
        return other(words)
    table = table_of(tree.this)
    if _renames_column(tree):
        # `ALTER TABLE t RENAME c TO d` (Alembic's spelling) comes back as a table rename
        # to `c` plus a "TO d" option: it renames column c.
        column = table_of(tree.args["actions"][0].this)
        new = table_of(tree.args["options"][0].this)
        return [Action(ActionKind.RENAME_COLUMN, table=table, column=column, name=new)]
    actions: list[Action] = []
    for clause in tree.args.get("actions") or ():
        actions.extend(_alter_clause(clause, table))
    if tree.args.get("not_valid"):
        # sqlglot keeps NOT VALID on the statement; PostgreSQL binds it to the last clause.
        last = actions[-1] if actions else None
        if last is not None and last.kind is ActionKind.ADD_CONSTRAINT:
            last.not_valid = True
    return actions or [Action(ActionKind.OTHER, table=table, detail="ALTER TABLE")]


def _alter_clause(clause: exp.Expression, table: str | None) -> list[Action]:
    if isinstance(clause, exp.ColumnDef):
        return add_column(clause, table)
    if isinstance(clause, exp.AlterColumn):
        return [_alter_column(clause, table)]
    if isinstance(clause, exp.Drop):
        return _alter_drop(clause, table)
    if isinstance(clause, exp.AddConstraint):
        return [constraint_action(c, table) for c in clause.expressions]
    if isinstance(clause, exp.RenameColumn):
        column, new = ident(clause.this), ident(clause.args.get("to"))
        return [Action(ActionKind.RENAME_COLUMN, table=table, column=column, name=new)]
    if isinstance(clause, exp.AlterRename):
        return [_alter_rename(clause, table)]
    if isinstance(clause, exp.AlterSet):
        persistence = _PERSISTENCE.get(str(clause.args.get("option") or "").upper())
        if persistence is not None:
            return [Action(persistence, table=table)]
    clause_name = "SET" if isinstance(clause, exp.AlterSet) else clause.key.upper()
    return [Action(ActionKind.OTHER, table=table, detail=f"ALTER TABLE {clause_name}")]


_PERSISTENCE = {"LOGGED": ActionKind.SET_LOGGED, "UNLOGGED": ActionKind.SET_UNLOGGED}


def _renames_column(tree: exp.Alter) -> bool:
    clauses, options = tree.args.get("actions") or [], tree.args.get("options") or []
    return (
        len(clauses) == 1
        and isinstance(clauses[0], exp.AlterRename)
        and len(options) == 1
        and isinstance(options[0], exp.ToTableProperty)
    )


def _alter_rename(clause: exp.AlterRename, table: str | None) -> Action:
    return Action(ActionKind.RENAME_TABLE, table=table, name=table_of(clause.this))


def add_column(column_def: exp.ColumnDef, table: str | None) -> list[Action]:
    column = ident(column_def.this)
    kind = column_def.args.get("kind")
    add = Action(
        ActionKind.ADD_COLUMN,
        table=table,
        column=column,
        data_type=type_sql(kind) if isinstance(kind, exp.DataType) else None,
        if_exists=bool(column_def.args.get("exists")),
        default_volatile=isinstance(kind, exp.DataType) and kind.this in SERIAL_TYPES,
    )
    actions = [add]
    for constraint in column_def.args.get("constraints") or ():
        extra = _column_constraint(constraint, add)
        if extra is not None:
            actions.append(extra)
    return actions


def _column_constraint(constraint: exp.Expression, add: Action) -> Action | None:
    """Apply an inline column constraint to `add`; return the constraint action it implies."""
    kind = constraint.args.get("kind")
    name = ident(constraint.this) if constraint.this else None
    columns = (add.column,) if add.column else ()
    if isinstance(kind, exp.NotNullColumnConstraint):
        add.not_null = not kind.args.get("allow_null")
    elif isinstance(kind, exp.DefaultColumnConstraint):
        add.default = to_sql(kind.this)
        add.default_volatile = add.default_volatile or is_volatile(kind.this)
    elif isinstance(kind, exp.ComputedColumnConstraint):
        add.generated_stored = True
    elif isinstance(kind, exp.GeneratedAsIdentityColumnConstraint):
        add.default_volatile = True
        add.identity = True
    elif isinstance(kind, exp.PrimaryKeyColumnConstraint):
        add.not_null = True
        return _inline_constraint(add, "primary_key", name, columns)
    elif isinstance(kind, exp.UniqueColumnConstraint):
        return _inline_constraint(add, "unique", name, columns)
    elif isinstance(kind, exp.CheckColumnConstraint):
        return _inline_constraint(add, "check", name, columns)
    elif isinstance(kind, exp.Reference):
        action = _inline_constraint(add, "foreign_key", name, columns)
        action.references = table_of(kind.this)
        return action
    return None


def _inline_constraint(
    add: Action, constraint_type: str, name: str | None, columns: tuple[str, ...]
) -> Action:
    return Action(
        ActionKind.ADD_CONSTRAINT,
        table=add.table,
        column=add.column,
        name=name,
        columns=columns,
        constraint_type=constraint_type,
    )


def _alter_column(clause: exp.AlterColumn, table: str | None) -> Action:
    args = clause.args
    column = ident(clause.this)
    if args.get("dtype") is not None:
        using = args.get("using")
        return Action(
            ActionKind.ALTER_COLUMN_TYPE,
            table=table,
            column=column,
            data_type=type_sql(args["dtype"]),
            using=to_sql(using) if using else None,
        )
    if args.get("allow_null") is not None:
        kind = ActionKind.DROP_NOT_NULL if args.get("allow_null") else ActionKind.SET_NOT_NULL
        return Action(kind, table=table, column=column)
    if args.get("default") is not None:
        return Action(
            ActionKind.SET_DEFAULT, table=table, column=column, default=to_sql(args["default"])
        )
    if args.get("drop"):
        return Action(ActionKind.DROP_DEFAULT, table=table, column=column)
    return Action(ActionKind.OTHER, table=table, column=column, detail="ALTER TABLE ALTER COLUMN")


def _alter_drop(clause: exp.Drop, table: str | None) -> list[Action]:
    kind = str(clause.args.get("kind") or "").upper()
    action_kind = {"COLUMN": ActionKind.DROP_COLUMN, "CONSTRAINT": ActionKind.DROP_CONSTRAINT}
    if kind not in action_kind:
        return [Action(ActionKind.OTHER, table=table, detail=f"ALTER TABLE DROP {kind}")]
    if_exists, cascade = bool(clause.args.get("exists")), bool(clause.args.get("cascade"))
    actions = []
    for target in clause.args.get("tables") or ():
        name = ident(target.this) if isinstance(target, exp.Column | exp.Table) else None
        action = Action(action_kind[kind], table=table, if_exists=if_exists, cascade=cascade)
        if kind == "COLUMN":
            action.column = name
        else:
            action.name = name
        actions.append(action)
    return actions


_CONSTRAINT_TYPES: dict[type[exp.Expression], str] = {
    exp.ForeignKey: "foreign_key",
    exp.CheckColumnConstraint: "check",
    exp.UniqueColumnConstraint: "unique",
    exp.PrimaryKey: "primary_key",
    exp.PrimaryKeyColumnConstraint: "primary_key",
    exp.ExcludeColumnConstraint: "exclude",
}


def constraint_action(node: exp.Expression, table: str | None) -> Action:
    """ADD [CONSTRAINT name] FOREIGN KEY / CHECK / UNIQUE / PRIMARY KEY / EXCLUDE ..."""
    name = None
    if isinstance(node, exp.Constraint):
        name = ident(node.this)
        node = node.expressions[0] if node.expressions else node
    action = Action(
        ActionKind.ADD_CONSTRAINT,
        table=table,
        name=name,
        constraint_type=_CONSTRAINT_TYPES.get(type(node), node.key),
    )
    if isinstance(node, exp.ForeignKey):
        action.columns = column_names(node.expressions)
        reference = node.args.get("reference")
        action.references = table_of(reference.this) if reference else None
    elif isinstance(node, exp.PrimaryKey):
        action.columns = column_names(node.expressions)
    elif isinstance(node, exp.UniqueColumnConstraint) and isinstance(node.this, exp.Schema):
        action.columns = column_names(node.this.expressions)
    return action
