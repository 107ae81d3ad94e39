"""Turn SQL statements into `Action`s: what each statement does, for the rules.

sqlglot (postgres dialect) parses most statements; only the top of its tree is read.
Statements it keeps as an opaque `exp.Command` (row level security, policies,
VALIDATE CONSTRAINT, ... USING INDEX, ALTER TYPE ... ADD VALUE, REINDEX, VACUUM, ...)
are classified from a small tokenizer of our own; the cheapest shapes (BEGIN, COMMIT,
SET, RESET) never reach sqlglot at all.

Conventions beyond model.py's comments:
- `if_exists` is also set for `IF NOT EXISTS` (CREATE INDEX/TABLE/EXTENSION, ADD COLUMN).
- ALTER TYPE ... ADD VALUE: `name` is the type, `value` the new label.
- LOCK TABLE: `tables`/`table` as for TRUNCATE, `detail` the lock mode (e.g. ACCESS EXCLUSIVE).
- CLUSTER / REINDEX: `table` the table, `name` the index where one is named.
- ADD COLUMN of a serial type or an identity column counts as a volatile default: every
  existing row gets a sequence value, which rewrites the table.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError

from bot.analysis.model import Action, ActionKind, Statement

_DIALECT = Dialect.get_or_raise("postgres")

# Built-in functions whose volatility makes ADD COLUMN ... DEFAULT rewrite the table
# (PG 11+ stores stable/immutable defaults without a rewrite). sqlglot maps random()
# to exp.Rand and gen_random_uuid() to exp.Uuid; the rest stay exp.Anonymous.
_VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "random_normal",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "setval",
    }
)
_SERIAL_TYPES = frozenset(
    {exp.DataType.Type.SERIAL, exp.DataType.Type.BIGSERIAL, exp.DataType.Type.SMALLSERIAL}
)


class _DropCommandFallbackWarning(logging.Filter):
    """sqlglot logs a warning for every statement it keeps as a Command; we handle those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in str(record.msg)


logging.getLogger("sqlglot").addFilter(_DropCommandFallbackWarning())


_PER_THREAD = threading.local()


def _parse(sql: str) -> list[exp.Expr | None]:
    """`sqlglot.parse(sql, read="postgres")`, reusing one tokenizer and parser per thread.

    Building them costs about a fifth of a short statement's parse time.
    """
    tools = getattr(_PER_THREAD, "tools", None)
    if tools is None:
        tools = _PER_THREAD.tools = (_DIALECT.tokenizer(), _DIALECT.parser())
    tokenizer, parser = tools
    return parser.parse(tokenizer.tokenize(sql), sql)


# --------------------------------------------------------------------------- public API


def classify(sql: str) -> tuple[list[Action], str | None]:
    """The actions of one SQL statement, and an error text if it was not understood."""
    text = _clean(sql)
    if not text:
        return [Action(ActionKind.OTHER, detail="empty")], None
    if ";" in text and len(parts := split_sql(text)) > 1:
        return _classify_several(parts)
    words = _leading_words(text)
    quick = _classify_quick(text, words)
    if quick is not None:
        return quick, None
    if _routes_to_tokens(text, words):
        return _classify_tokens(text, words, strict=False) or _other(words), None
    try:
        trees = _parse(text)
    except ParseError as error:
        return _after_parse_error(text, words, _describe(error))
    except Exception as error:  # sqlglot can fail in other ways on odd input
        return _after_parse_error(text, words, f"{type(error).__name__}: {error}")
    if any(isinstance(tree, exp.Condition | exp.Alias) for tree in trees):
        # sqlglot accepts a bare expression (`foo`, `foo bar`); PostgreSQL does not.
        return _after_parse_error(text, words, f"not a SQL statement: {_keywords(words)}")
    actions: list[Action] = []
    for tree in trees:
        if tree is not None:
            actions.extend(_classify_tree(tree, text, words))
    return actions or _other(words), None


def _classify_several(parts: list[str]) -> tuple[list[Action], str | None]:
    """Several statements given as one (`op.execute("A; B")`): all their actions."""
    actions: list[Action] = []
    errors: list[str] = []
    for part in parts:
        part_actions, error = classify(part)
        actions.extend(part_actions)
        if error is not None:
            errors.append(error)
    return actions, "; ".join(errors) or None


def parse_statements(statements: Iterable[Statement]) -> list[Statement]:
    """Fill `actions` and `parse_error` of each statement in place; return them as a list."""
    result = list(statements)
    for statement in result:
        statement.actions, statement.parse_error = classify(statement.sql)
    return result


def split_sql(text: str) -> list[str]:
    """Split SQL text into statements, respecting quotes, dollar-quoting and comments.

    Leading comments of a statement are dropped, as are empty statements and pure comments.
    """
    statements: list[str] = []
    start = 0
    for match in _SPLIT_TOKEN.finditer(text):
        if match.group() == ";":
            _add_statement(statements, text[start : match.start()])
            start = match.end()
    _add_statement(statements, text[start:])
    return statements


def split_sql_located(text: str) -> list[tuple[int, str]]:
    """As `split_sql`, each statement with the line (from 1) its first word is on."""
    located: list[tuple[int, str]] = []
    start = 0
    for match in _SPLIT_TOKEN.finditer(text):
        if match.group() == ";":
            _add_located(located, text, start, match.start())
            start = match.end()
    _add_located(located, text, start, len(text))
    return located


def sql_comments(text: str) -> dict[int, str]:
    """Line -> text of the `--` comment on it (without the dashes); none inside strings."""
    return {
        text.count("\n", 0, match.start()) + 1: match.group()[2:].strip()
        for match in _SPLIT_TOKEN.finditer(text)
        if match.group().startswith("--")
    }


# --------------------------------------------------------------------------- text helpers

_SPLIT_TOKEN = re.compile(
    r"""--[^\n]*|/\*.*?(?:\*/|\Z)|\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z)
    |[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)|'(?:[^']|'')*(?:'|\Z)|"(?:[^"]|"")*(?:"|\Z)|;
    |[A-Za-z_][\w$]*""",
    re.S | re.X,
)
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?(?:\*/|\Z))*", re.S)
_TRAILING_NOISE = re.compile(r"[\s;]+\Z")
_WORD = re.compile(r"[A-Za-z_]\w*")


def _add_statement(statements: list[str], piece: str) -> None:
    cleaned = _clean(piece)
    if cleaned:
        statements.append(cleaned)


def _add_located(located: list[tuple[int, str]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    cleaned = _clean(piece)
    if cleaned:
        noise = _LEADING_NOISE.match(piece)
        begins = start + (noise.end() if noise else 0)
        located.append((text.count("\n", 0, begins) + 1, cleaned))


def _clean(sql: str) -> str:
    """The statement without leading comments, surrounding blanks and trailing semicolons."""
    start = _LEADING_NOISE.match(sql)
    text = sql[start.end() :] if start else sql
    return _TRAILING_NOISE.sub("", text)


def _leading_words(text: str, limit: int = 6) -> list[str]:
    """The first few words, upper-cased: enough to tell a statement's kind."""
    return [word.upper() for word in _WORD.findall(text, 0, 120)[:limit]]


def _keywords(words: list[str]) -> str:
    """The leading keywords naming a statement's kind: "GRANT", "CREATE OR REPLACE VIEW"."""
    if not words:
        return "?"
    if words[0] in {"CREATE", "ALTER", "DROP", "COMMENT", "REFRESH", "SET"}:
        count = 4 if words[1:2] == ["OR"] else 2
        if words[1:2] in (["MATERIALIZED"], ["UNIQUE"], ["ON"]):
            count = 3
        return " ".join(words[:count])
    return words[0]


def _other(words: list[str], detail: str | None = None) -> list[Action]:
    return [Action(ActionKind.OTHER, detail=detail or _keywords(words))]


def _describe(error: ParseError) -> str:
    """ParseError text without sqlglot's terminal colour codes."""
    if error.errors:
        first = error.errors[0]
        return f"{first.get('description')} (line {first.get('line')}, col {first.get('col')})"
    return re.sub(r"\x1b\[\d+m", "", str(error))


# --------------------------------------------------------------------------- quick shapes

_NAME = r"""(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))*"""
_SET = re.compile(
    rf"SET\s+(?:(?:SESSION|LOCAL)\s+)?(?P<name>{_NAME})\s*(?:=|\bTO\b)\s*(?P<value>.*)",
    re.I | re.S,
)
# Settings with their own syntax (no `=` / `TO`), and the parameter each one sets.
_SET_SPECIAL = re.compile(
    r"SET\s+(?:(?:SESSION|LOCAL)\s+)?(?P<name>TIME\s+ZONE|ROLE|SCHEMA|NAMES)\s+(?P<value>.*)",
    re.I | re.S,
)
_SPECIAL_SETTINGS = {
    "TIME ZONE": "timezone",
    "ROLE": "role",
    "SCHEMA": "search_path",
    "NAMES": "client_encoding",
}
_QUOTED_STRING = re.compile(r"'((?:[^']|'')*)'")


def _classify_quick(text: str, words: list[str]) -> list[Action] | None:
    """Transaction control and settings, without sqlglot."""
    first = words[0] if words else ""
    if first == "BEGIN" or words[:2] == ["START", "TRANSACTION"]:
        return [Action(ActionKind.BEGIN)]
    if first in {"COMMIT", "END"} and words[1:2] != ["PREPARED"]:
        return [Action(ActionKind.COMMIT)]
    if first in {"ROLLBACK", "ABORT"}:
        return [Action(ActionKind.OTHER, detail="ROLLBACK")]
    if first == "RESET":
        return [Action(ActionKind.SET, setting=_setting_name(text[5:].strip()), value=None)]
    if first == "SET":
        return _classify_set(text, words)
    return None


def _classify_set(text: str, words: list[str]) -> list[Action]:
    """SET [SESSION | LOCAL] name {= | TO} value; other SET forms (TRANSACTION, ...) are OTHER."""
    match = _SET.match(text) or _SET_SPECIAL.match(text)
    if match is None:
        return _other(words, " ".join(words[:2]))
    return [
        Action(
            ActionKind.SET,
            setting=_setting_name(match.group("name")),
            value=_setting_value(match.group("value")),
            local=words[1:2] == ["LOCAL"],
        )
    ]


def _setting_name(name: str) -> str:
    special = _SPECIAL_SETTINGS.get(" ".join(name.upper().split()))
    if special is not None:
        return special
    if '"' not in name:
        return name.lower()
    return ".".join(
        part[1:-1].replace('""', '"') if part.startswith('"') else part.lower()
        for part in re.findall(r'"(?:[^"]|"")+"|[^.]+', name)
    )


def _setting_value(value: str) -> str | None:
    value = value.strip()
    if value.upper() in {"DEFAULT", ""}:
        return None
    quoted = _QUOTED_STRING.fullmatch(value)
    return quoted.group(1).replace("''", "'") if quoted else value


# --------------------------------------------------------------------------- sqlglot trees


def _classify_tree(tree: exp.Expr, text: str, words: list[str]) -> list[Action]:
    if isinstance(tree, exp.Alter):
        return _classify_alter(tree, words)
    if isinstance(tree, exp.Create):
        return _classify_create(tree, words)
    if isinstance(tree, exp.Drop):
        return _classify_drop(tree, words)
    if isinstance(tree, exp.Command):
        return _classify_tokens(text, words, strict=False) or _other(words)
    handler = _SIMPLE_TREES.get(type(tree))
    if handler is not None:
        return handler(tree)
    if isinstance(tree, exp.Query):
        return [Action(ActionKind.SELECT)]
    return _other(words)


def _ident(node: exp.Expression | str | None) -> str | None:
    """A name as PostgreSQL folds it: lower-cased unless quoted."""
    if node is None:
        return None
    if isinstance(node, str):
        return node.lower()
    if isinstance(node, exp.Identifier):
        name = str(node.this)
        return name if node.args.get("quoted") else name.lower()
    if isinstance(node, exp.Column | exp.Table):
        return _qualified(node)
    return str(node.name).lower() or None


def _qualified(node: exp.Expression) -> str | None:
    """`schema.table` (or `table.column`) as written, each part folded."""
    args = node.args
    keys = ("catalog", "db", "this") if isinstance(node, exp.Table) else ("db", "table", "this")
    parts = [_ident(args.get(key)) for key in keys if args.get(key) is not None]
    return ".".join(part for part in parts if part) or None


def _table_of(node: exp.Expression | None) -> str | None:
    """The table name of a Table, or of a Schema wrapping one (`t (a, b)`)."""
    if isinstance(node, exp.Schema):
        node = node.this
    return _qualified(node) if isinstance(node, exp.Table) else None


def _column_names(nodes: Iterable[exp.Expression]) -> tuple[str, ...]:
    names: list[str] = []
    for node in nodes:
        inner = node.this if isinstance(node, exp.Ordered) else node
        if isinstance(inner, exp.Identifier | exp.Column):
            names.append(_ident(inner.this if isinstance(inner, exp.Column) else inner) or "")
        else:
            names.append(_sql(inner))
    return tuple(names)


_TYPE_TEXT: dict[tuple[object, ...], str] = {}


def _type_sql(node: exp.Expression) -> str:
    """SQL text of a data type; common shapes are memoised since generating costs ~10 µs."""
    params = node.expressions
    if not all(
        isinstance(p, exp.DataTypeParam) and isinstance(p.this, exp.Literal) for p in params
    ):
        return _sql(node)
    key = (node.this, *(p.this.this for p in params))
    text = _TYPE_TEXT.get(key)
    if text is None:
        text = _sql(node)
        if len(_TYPE_TEXT) < 4096:
            _TYPE_TEXT[key] = text
    return text


def _sql(node: exp.Expression) -> str:
    if isinstance(node, exp.Literal):
        value = str(node.this)
        return "'" + value.replace("'", "''") + "'" if node.is_string else value
    return node.sql(dialect=_DIALECT)


def _is_volatile(node: exp.Expression) -> bool:
    for sub in node.walk():
        if isinstance(sub, exp.Rand | exp.Uuid):
            return True
        if isinstance(sub, exp.Anonymous) and str(sub.this).lower() in _VOLATILE_FUNCTIONS:
            return True
    return False


# ALTER TABLE --------------------------------------------------------------------------


def _classify_alter(tree: exp.Alter, words: list[str]) -> list[Action]:
    if str(tree.args.get("kind") or "").upper() != "TABLE":
        return _other(words)
    table = _table_of(tree.this)
    if _renames_column(tree):
        # `ALTER TABLE t RENAME c TO d` (Alembic's spelling) comes back as a table rename
        # to `c` plus a "TO d" option: it renames column c.
        column = _table_of(tree.args["actions"][0].this)
        new = _table_of(tree.args["options"][0].this)
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
        return _add_column(clause, table)
    if isinstance(clause, exp.AlterColumn):
        return [_alter_column(clause, table)]
    if isinstance(clause, exp.Drop):
        return _alter_drop(clause, table)
    if isinstance(clause, exp.AddConstraint):
        return [_constraint(c, table) for c in clause.expressions]
    if isinstance(clause, exp.RenameColumn):
        column, new = _ident(clause.this), _ident(clause.args.get("to"))
        return [Action(ActionKind.RENAME_COLUMN, table=table, column=column, name=new)]
    if isinstance(clause, exp.AlterRename):
        return [_alter_rename(clause, table)]
    return [Action(ActionKind.OTHER, table=table, detail=f"ALTER TABLE {clause.key.upper()}")]


def _renames_column(tree: exp.Alter) -> bool:
    clauses, options = tree.args.get("actions") or [], tree.args.get("options") or []
    return (
        len(clauses) == 1
        and isinstance(clauses[0], exp.AlterRename)
        and len(options) == 1
        and isinstance(options[0], exp.ToTableProperty)
    )


def _alter_rename(clause: exp.AlterRename, table: str | None) -> Action:
    return Action(ActionKind.RENAME_TABLE, table=table, name=_table_of(clause.this))


def _add_column(column_def: exp.ColumnDef, table: str | None) -> list[Action]:
    column = _ident(column_def.this)
    kind = column_def.args.get("kind")
    add = Action(
        ActionKind.ADD_COLUMN,
        table=table,
        column=column,
        data_type=_type_sql(kind) if isinstance(kind, exp.DataType) else None,
        if_exists=bool(column_def.args.get("exists")),
        default_volatile=isinstance(kind, exp.DataType) and kind.this in _SERIAL_TYPES,
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
    name = _ident(constraint.this) if constraint.this else None
    columns = (add.column,) if add.column else ()
    if isinstance(kind, exp.NotNullColumnConstraint):
        add.not_null = not kind.args.get("allow_null")
    elif isinstance(kind, exp.DefaultColumnConstraint):
        add.default = _sql(kind.this)
        add.default_volatile = add.default_volatile or _is_volatile(kind.this)
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
        action.references = _table_of(kind.this)
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
    column = _ident(clause.this)
    if args.get("dtype") is not None:
        using = args.get("using")
        return Action(
            ActionKind.ALTER_COLUMN_TYPE,
            table=table,
            column=column,
            data_type=_type_sql(args["dtype"]),
            using=_sql(using) if using else None,
        )
    if args.get("allow_null") is not None:
        kind = ActionKind.DROP_NOT_NULL if args.get("allow_null") else ActionKind.SET_NOT_NULL
        return Action(kind, table=table, column=column)
    if args.get("default") is not None:
        return Action(
            ActionKind.SET_DEFAULT, table=table, column=column, default=_sql(args["default"])
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
        name = _ident(target.this) if isinstance(target, exp.Column | exp.Table) else None
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


def _constraint(node: exp.Expression, table: str | None) -> Action:
    """ADD [CONSTRAINT name] FOREIGN KEY / CHECK / UNIQUE / PRIMARY KEY / EXCLUDE ..."""
    name = None
    if isinstance(node, exp.Constraint):
        name = _ident(node.this)
        node = node.expressions[0] if node.expressions else node
    action = Action(
        ActionKind.ADD_CONSTRAINT,
        table=table,
        name=name,
        constraint_type=_CONSTRAINT_TYPES.get(type(node), node.key),
    )
    if isinstance(node, exp.ForeignKey):
        action.columns = _column_names(node.expressions)
        reference = node.args.get("reference")
        action.references = _table_of(reference.this) if reference else None
    elif isinstance(node, exp.PrimaryKey):
        action.columns = _column_names(node.expressions)
    elif isinstance(node, exp.UniqueColumnConstraint) and isinstance(node.this, exp.Schema):
        action.columns = _column_names(node.this.expressions)
    return action


# CREATE / DROP ------------------------------------------------------------------------


def _classify_create(tree: exp.Create, words: list[str]) -> list[Action]:
    kind = str(tree.args.get("kind") or "").upper()
    exists = bool(tree.args.get("exists"))
    if kind == "TABLE":
        return _create_table(tree, exists)
    if kind == "INDEX" and isinstance(tree.this, exp.Index):
        return [_create_index(tree, tree.this, exists)]
    named = _CREATE_NAMED_KINDS.get(kind)
    if named is not None:
        return [Action(named, name=_table_of(tree.this), if_exists=exists)]
    return _other(words)


_CREATE_NAMED_KINDS = {
    "VIEW": ActionKind.CREATE_VIEW,
    "SEQUENCE": ActionKind.CREATE_SEQUENCE,
    "TYPE": ActionKind.CREATE_TYPE,
}


def _create_table(tree: exp.Create, exists: bool) -> list[Action]:
    table = _table_of(tree.this)
    actions = [Action(ActionKind.CREATE_TABLE, table=table, if_exists=exists)]
    if not isinstance(tree.this, exp.Schema):
        return actions  # CREATE TABLE ... AS SELECT
    # Foreign keys lock the referenced table, so they are reported even on a new table.
    for item in tree.this.expressions:
        if isinstance(item, exp.ColumnDef):
            column = _ident(item.this)
            for constraint in item.args.get("constraints") or ():
                reference = constraint.args.get("kind")
                if isinstance(reference, exp.Reference):
                    actions.append(
                        Action(
                            ActionKind.ADD_CONSTRAINT,
                            table=table,
                            column=column,
                            name=_ident(constraint.this) if constraint.this else None,
                            columns=(column,) if column else (),
                            constraint_type="foreign_key",
                            references=_table_of(reference.this),
                        )
                    )
        elif isinstance(item, exp.Constraint | exp.ForeignKey):
            action = _constraint(item, table)
            if action.constraint_type == "foreign_key":
                actions.append(action)
    return actions


def _create_index(tree: exp.Create, index: exp.Index, exists: bool) -> Action:
    params = index.args.get("params")
    columns = params.args.get("columns") if params is not None else None
    return Action(
        ActionKind.CREATE_INDEX,
        table=_table_of(index.args.get("table")),
        name=_ident(index.this) if index.this else None,
        columns=_column_names(columns or ()),
        unique=bool(tree.args.get("unique")),
        concurrently=bool(tree.args.get("concurrently")),
        if_exists=exists,
    )


_DROP_KINDS = {
    "TABLE": ActionKind.DROP_TABLE,
    "INDEX": ActionKind.DROP_INDEX,
    "VIEW": ActionKind.DROP_VIEW,
    "SEQUENCE": ActionKind.DROP_SEQUENCE,
    "TYPE": ActionKind.DROP_TYPE,
    "SCHEMA": ActionKind.DROP_SCHEMA,
}


def _classify_drop(tree: exp.Drop, words: list[str]) -> list[Action]:
    kind = _DROP_KINDS.get(str(tree.args.get("kind") or "").upper())
    if kind is None:
        return _other(words)
    return _drop_actions(
        kind,
        [_qualified(t) for t in tree.args.get("tables") or ()],
        if_exists=bool(tree.args.get("exists")),
        cascade=bool(tree.args.get("cascade")),
        concurrently=bool(tree.args.get("concurrently")),
    )


def _drop_actions(
    kind: ActionKind,
    names: Iterable[str | None],
    *,
    if_exists: bool,
    cascade: bool,
    concurrently: bool,
) -> list[Action]:
    """One action per dropped object; a dropped table goes in `table`, anything else in `name`."""
    actions = []
    for name in names:
        action = Action(kind, if_exists=if_exists, cascade=cascade, concurrently=concurrently)
        if kind is ActionKind.DROP_TABLE:
            action.table = name
        else:
            action.name = name
        actions.append(action)
    return actions


# DML and the rest ----------------------------------------------------------------------


def _truncate(tree: exp.Expr) -> list[Action]:
    tables = tuple(name for t in tree.expressions if (name := _table_of(t)))
    cascade = str(tree.args.get("option") or "").upper() == "CASCADE"
    first = tables[0] if tables else None
    return [Action(ActionKind.TRUNCATE, table=first, tables=tables, cascade=cascade)]


def _update_or_delete(tree: exp.Expr) -> list[Action]:
    kind = ActionKind.UPDATE if isinstance(tree, exp.Update) else ActionKind.DELETE
    has_where = tree.args.get("where") is not None
    return [Action(kind, table=_table_of(tree.this), has_where=has_where)]


def _insert(tree: exp.Expr) -> list[Action]:
    return [Action(ActionKind.INSERT, table=_table_of(tree.this))]


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
            setting = _ident(assignment.this)
            actions.append(Action(ActionKind.SET, setting=setting, value=text, local=local))
    return actions or [Action(ActionKind.OTHER, detail="SET")]


def _comment(tree: exp.Expr) -> list[Action]:
    target = tree.this
    if isinstance(target, exp.Table):
        return [Action(ActionKind.COMMENT, table=_qualified(target))]
    if isinstance(target, exp.Column):
        table = _ident(target.args.get("table"))
        return [Action(ActionKind.COMMENT, table=table, column=_ident(target.this))]
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


# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""(?P<skip>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<dollar>\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z))
    |(?P<string>[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')
    |(?P<qident>"(?:[^"]|"")*")
    |(?P<word>[A-Za-z_][\w$]*)
    |(?P<other>\S)""",
    re.S | re.X,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # word | qident | string | dollar | other
    text: str  # words upper-cased; identifiers unquoted; strings without quotes
    raw: str
    start: int
    end: int


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        if kind == "skip":
            continue
        raw = match.group()
        value = raw
        if kind == "word":
            value = raw.upper()
        elif kind == "qident":
            value = raw[1:-1].replace('""', '"')
        elif kind == "string":
            body = raw[2:-1] if raw[0] in "Ee" else raw[1:-1]
            value = body.replace("''", "'")
        tokens.append(_Token(kind, value, raw, match.start(), match.end()))
    return tokens


class _Cursor:
    """A position in a token list, with the few reads the command shapes need."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self, offset: int = 0) -> str:
        index = self.position + offset
        if index < len(self.tokens) and self.tokens[index].kind == "word":
            return self.tokens[index].text
        return ""

    def accept(self, *words: str) -> bool:
        """Consume `words` if they come next, all of them."""
        if all(self.peek(i) == word for i, word in enumerate(words)):
            self.position += len(words)
            return True
        return False

    def skip_if_exists(self) -> bool:
        return self.accept("IF", "EXISTS") or self.accept("IF", "NOT", "EXISTS")

    def name(self) -> str | None:
        """A possibly qualified name (`a`, `"A".b`), folded."""
        parts: list[str] = []
        while self.position < len(self.tokens):
            token = self.tokens[self.position]
            if token.kind == "word":
                parts.append(token.raw.lower())
            elif token.kind == "qident":
                parts.append(token.text)
            else:
                break
            self.position += 1
            if self.position < len(self.tokens) and self.tokens[self.position].raw == ".":
                self.position += 1
            else:
                break
        return ".".join(parts) or None

    def names(self) -> tuple[str, ...]:
        """A comma-separated list of names (`a, s.b`), skipping `ONLY` and `*`."""
        names: list[str] = []
        while True:
            self.accept("ONLY")
            name = self.name()
            if name:
                names.append(name)
            if self.position < len(self.tokens) and self.tokens[self.position].raw == "*":
                self.position += 1
            if self.position < len(self.tokens) and self.tokens[self.position].raw == ",":
                self.position += 1
                continue
            return tuple(names)

    def words(self) -> list[str]:
        """The remaining words (keywords and unquoted names), upper-cased."""
        return [t.text for t in self.tokens[self.position :] if t.kind == "word"]


# Statements sqlglot always keeps as a Command (or fails on): go straight to the tokens.
_TOKEN_ROUTED = frozenset({"DO", "REINDEX", "VACUUM", "CLUSTER", "LOCK"})
_TOKEN_ROUTED_PAIRS = frozenset(
    {
        ("CREATE", "POLICY"),
        ("DROP", "POLICY"),
        ("ALTER", "POLICY"),
        ("ALTER", "TYPE"),
        ("CREATE", "EXTENSION"),
        ("CREATE", "FUNCTION"),
        ("CREATE", "PROCEDURE"),
        ("CREATE", "TRIGGER"),
    }
)
_ALTER_TABLE_COMMAND = re.compile(
    r"\b(?:ROW\s+LEVEL\s+SECURITY|VALIDATE\s+CONSTRAINT|USING\s+INDEX)\b", re.I
)


def _head(words: list[str]) -> list[str]:
    """The leading words without CREATE's `OR REPLACE`."""
    return [words[0], *words[3:]] if words[1:3] == ["OR", "REPLACE"] else words


def _routes_to_tokens(text: str, words: list[str]) -> bool:
    if not words:
        return False
    if words[0] in _TOKEN_ROUTED or tuple(_head(words)[:2]) in _TOKEN_ROUTED_PAIRS:
        return True
    return words[:2] == ["ALTER", "TABLE"] and _ALTER_TABLE_COMMAND.search(text) is not None


def _after_parse_error(text: str, words: list[str], error: str) -> tuple[list[Action], str | None]:
    actions = _classify_tokens(text, words, strict=True)
    if actions is not None:
        return actions, None
    return _other(words), error


def _classify_tokens(text: str, words: list[str], *, strict: bool) -> list[Action] | None:
    """Classify from tokens. `strict`: return None unless the shape is one we know."""
    tokens = _tokenize(text)
    cursor = _Cursor(tokens)
    head = tuple(_head(words)[:2])
    if head == ("ALTER", "TABLE"):
        return _alter_table_tokens(text, cursor, strict=strict)
    handler = _TOKEN_SHAPES.get(head) or _TOKEN_SHAPES.get(head[:1])
    if handler is not None:
        return handler(cursor)
    if head[:1] == ("CREATE",):
        create = _create_index_tokens if "INDEX" in words[1:3] else _create_table_tokens
        actions = create(cursor)
        if actions is not None or strict:
            return actions
    if strict:
        return None
    return _other(words)


def _alter_table_tokens(text: str, cursor: _Cursor, *, strict: bool) -> list[Action] | None:
    cursor.accept("ALTER", "TABLE")
    cursor.skip_if_exists()
    cursor.accept("ONLY")
    table = cursor.name()
    if cursor.position < len(cursor.tokens) and cursor.tokens[cursor.position].raw == "*":
        cursor.position += 1
    if table is None:
        return None if strict else [Action(ActionKind.OTHER, detail="ALTER TABLE")]
    prefix_end = cursor.tokens[cursor.position - 1].end
    actions: list[Action] = []
    understood = False
    clauses = _split_clauses(cursor.tokens[cursor.position :])
    for clause in clauses:
        known = _alter_clause_tokens(clause, table)
        if known is None and len(clauses) > 1:  # one clause alone already failed in sqlglot
            clause_text = text[clause[0].start : clause[-1].end]
            known = _reparse_clause(text[:prefix_end] + " " + clause_text, table, clause)
        elif known is None:
            known = [Action(ActionKind.OTHER, table=table, detail=_clause_detail(clause))]
        else:
            understood = True
        understood = understood or known[0].kind is not ActionKind.OTHER
        actions.extend(known)
    if strict and not understood:
        return None
    return actions or [Action(ActionKind.OTHER, table=table, detail="ALTER TABLE")]


def _split_clauses(tokens: list[_Token]) -> list[list[_Token]]:
    """Split at commas outside parentheses."""
    clauses: list[list[_Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.raw == "(":
            depth += 1
        elif token.raw == ")":
            depth -= 1
        elif token.raw == "," and depth == 0:
            clauses.append([])
            continue
        clauses[-1].append(token)
    return [clause for clause in clauses if clause]


_RLS_CLAUSES = {
    ("ENABLE",): ActionKind.ENABLE_RLS,
    ("DISABLE",): ActionKind.DISABLE_RLS,
    ("FORCE",): ActionKind.FORCE_RLS,
    ("NO", "FORCE"): ActionKind.NO_FORCE_RLS,
}


def _alter_clause_tokens(clause: list[_Token], table: str) -> list[Action] | None:
    """The clauses sqlglot cannot parse; None for the others."""
    cursor = _Cursor(clause)
    for lead, kind in _RLS_CLAUSES.items():
        if cursor.accept(*lead, "ROW", "LEVEL", "SECURITY"):
            return [Action(kind, table=table)]
    if cursor.accept("VALIDATE", "CONSTRAINT"):
        return [Action(ActionKind.VALIDATE_CONSTRAINT, table=table, name=cursor.name())]
    if cursor.accept("ADD"):
        name = cursor.name() if cursor.accept("CONSTRAINT") else None
        constraint_type = "unique" if cursor.accept("UNIQUE") else None
        if constraint_type is None and cursor.accept("PRIMARY", "KEY"):
            constraint_type = "primary_key"
        if constraint_type and cursor.accept("USING", "INDEX"):
            index = cursor.name()
            return [
                Action(
                    ActionKind.ADD_CONSTRAINT,
                    table=table,
                    name=name or index,
                    constraint_type=constraint_type,
                    using_index=True,
                )
            ]
    return None


def _clause_detail(clause: list[_Token]) -> str:
    return "ALTER TABLE " + " ".join(t.text for t in clause[:2] if t.kind == "word")


def _reparse_clause(sql: str, table: str, clause: list[_Token]) -> list[Action]:
    """One clause of a multi-clause ALTER TABLE that sqlglot rejected as a whole."""
    detail = _clause_detail(clause)
    try:
        trees = _parse(sql)
    except Exception:  # an unknown clause is reported as OTHER, not as an error
        trees = []
    tree = trees[0] if trees else None
    if isinstance(tree, exp.Alter):
        actions = _classify_alter(tree, ["ALTER", "TABLE"])
        if actions and actions[0].kind is not ActionKind.OTHER:
            return actions
    return [Action(ActionKind.OTHER, table=table, detail=detail)]


# Other command shapes ------------------------------------------------------------------


def _alter_type_tokens(cursor: _Cursor) -> list[Action]:
    cursor.accept("ALTER", "TYPE")
    name = cursor.name()
    if cursor.accept("ADD", "VALUE"):
        cursor.skip_if_exists()
        token = cursor.tokens[cursor.position] if cursor.position < len(cursor.tokens) else None
        label = token.text if token is not None and token.kind == "string" else None
        return [Action(ActionKind.ALTER_TYPE_ADD_VALUE, name=name, value=label)]
    return [Action(ActionKind.OTHER, name=name, detail="ALTER TYPE")]


def _policy_tokens(cursor: _Cursor) -> list[Action]:
    verb = cursor.peek()
    cursor.position += 2  # CREATE|DROP|ALTER POLICY
    if_exists = cursor.skip_if_exists()
    name = cursor.name()
    table = cursor.name() if cursor.accept("ON") else None
    kind = {"CREATE": ActionKind.CREATE_POLICY, "DROP": ActionKind.DROP_POLICY}.get(
        verb, ActionKind.ALTER_POLICY
    )
    cascade = "CASCADE" in cursor.words()
    return [Action(kind, table=table, name=name, if_exists=if_exists, cascade=cascade)]


def _create_extension_tokens(cursor: _Cursor) -> list[Action]:
    cursor.accept("CREATE", "EXTENSION")
    if_exists = cursor.skip_if_exists()
    return [Action(ActionKind.CREATE_EXTENSION, name=cursor.name(), if_exists=if_exists)]


def _reindex_tokens(cursor: _Cursor) -> list[Action]:
    cursor.accept("REINDEX")
    _skip_parenthesised(cursor)
    target = cursor.peek()
    cursor.position += 1
    concurrently = cursor.accept("CONCURRENTLY")
    name = cursor.name()
    if target == "TABLE":
        return [Action(ActionKind.REINDEX, table=name, concurrently=concurrently)]
    return [Action(ActionKind.REINDEX, name=name, concurrently=concurrently, detail=target)]


def _vacuum_tokens(cursor: _Cursor) -> list[Action]:
    cursor.accept("VACUUM")
    options = _skip_parenthesised(cursor)
    full = "FULL" in options and "FALSE" not in options and "OFF" not in options
    while cursor.peek() in {"FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"}:
        full = full or cursor.peek() == "FULL"
        cursor.position += 1
    if not full:
        return [Action(ActionKind.OTHER, detail="VACUUM")]
    tables = cursor.names()
    return [Action(ActionKind.VACUUM_FULL, table=tables[0] if tables else None, tables=tables)]


def _cluster_tokens(cursor: _Cursor) -> list[Action]:
    cursor.accept("CLUSTER")
    _skip_parenthesised(cursor)
    cursor.accept("VERBOSE")
    table = cursor.name()
    index = cursor.name() if cursor.accept("USING") else None
    return [Action(ActionKind.CLUSTER, table=table, name=index)]


def _lock_tokens(cursor: _Cursor) -> list[Action]:
    cursor.accept("LOCK")
    cursor.accept("TABLE")
    tables = cursor.names()
    words = cursor.words()
    mode = "ACCESS EXCLUSIVE"  # PostgreSQL's default
    if words[:1] == ["IN"] and "MODE" in words:
        mode = " ".join(words[1 : words.index("MODE")])
    first = tables[0] if tables else None
    return [Action(ActionKind.LOCK_TABLE, table=first, tables=tables, detail=mode)]


def _drop_tokens(cursor: _Cursor) -> list[Action] | None:
    cursor.accept("DROP")
    materialized = cursor.accept("MATERIALIZED")
    kind = _DROP_KINDS.get(cursor.peek())
    if kind is None or (materialized and kind is not ActionKind.DROP_VIEW):
        return None
    cursor.position += 1
    concurrently = cursor.accept("CONCURRENTLY")
    if_exists = cursor.skip_if_exists()
    names = cursor.names()
    cascade = cursor.accept("CASCADE")
    return _drop_actions(
        kind, names, if_exists=if_exists, cascade=cascade, concurrently=concurrently
    )


def _truncate_tokens(cursor: _Cursor) -> list[Action]:
    cursor.accept("TRUNCATE")
    cursor.accept("TABLE")
    tables = cursor.names()
    cascade = "CASCADE" in cursor.words()
    first = tables[0] if tables else None
    return [Action(ActionKind.TRUNCATE, table=first, tables=tables, cascade=cascade)]


def _create_index_tokens(cursor: _Cursor) -> list[Action] | None:
    cursor.accept("CREATE")
    unique = cursor.accept("UNIQUE")
    if not cursor.accept("INDEX"):
        return None
    concurrently = cursor.accept("CONCURRENTLY")
    if_exists = cursor.skip_if_exists()
    name = None if cursor.peek() == "ON" else cursor.name()
    if not cursor.accept("ON"):
        return None
    cursor.accept("ONLY")
    return [
        Action(
            ActionKind.CREATE_INDEX,
            table=cursor.name(),
            name=name,
            unique=unique,
            concurrently=concurrently,
            if_exists=if_exists,
        )
    ]


def _create_table_tokens(cursor: _Cursor) -> list[Action] | None:
    cursor.accept("CREATE")
    while cursor.peek() in {"GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED"}:
        cursor.position += 1
    if not cursor.accept("TABLE"):
        return None
    if_exists = cursor.skip_if_exists()
    return [Action(ActionKind.CREATE_TABLE, table=cursor.name(), if_exists=if_exists)]


def _skip_parenthesised(cursor: _Cursor) -> list[str]:
    """Skip a `( ... )` option list if one comes next; return its words."""
    tokens = cursor.tokens
    if cursor.position >= len(tokens) or tokens[cursor.position].raw != "(":
        return []
    end = cursor.position
    while end < len(tokens) and tokens[end].raw != ")":
        end += 1
    words = [t.text for t in tokens[cursor.position : end] if t.kind == "word"]
    cursor.position = end + 1
    return words


def _comment_tokens(cursor: _Cursor) -> list[Action]:
    return [Action(ActionKind.COMMENT)]


def _opaque_tokens(cursor: _Cursor) -> list[Action]:
    """Code blocks and functions: nothing the rules look into."""
    return _other(_head(cursor.words()[:6]))


_TOKEN_SHAPES: dict[tuple[str, ...], Callable[[_Cursor], list[Action] | None]] = {
    ("ALTER", "TYPE"): _alter_type_tokens,
    ("CREATE", "POLICY"): _policy_tokens,
    ("DROP", "POLICY"): _policy_tokens,
    ("ALTER", "POLICY"): _policy_tokens,
    ("CREATE", "EXTENSION"): _create_extension_tokens,
    ("REINDEX",): _reindex_tokens,
    ("VACUUM",): _vacuum_tokens,
    ("CLUSTER",): _cluster_tokens,
    ("LOCK",): _lock_tokens,
    ("DROP",): _drop_tokens,
    ("TRUNCATE",): _truncate_tokens,
    ("COMMENT",): _comment_tokens,
    ("DO",): _opaque_tokens,
    ("CREATE", "FUNCTION"): _opaque_tokens,
    ("CREATE", "PROCEDURE"): _opaque_tokens,
    ("CREATE", "TRIGGER"): _opaque_tokens,
}
