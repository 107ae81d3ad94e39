"""Read Alembic revision files with `ast` and `tokenize`: never import or run them.

Over 400 lines: one reader of a revision file's syntax tree; its helpers go together.

Migration files come from pull requests and are untrusted; everything here works on
their text. `op.<name>(...)` calls in `upgrade()` / `downgrade()` (and in module-level
helpers those call) become `OpCall`s with their literal arguments. Calls on a
`with op.batch_alter_table("t") as batch_op:` alias are recorded under the same names,
with the table put where the `op.*` signature has it, so rules read both forms alike.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from collections.abc import Iterator
from pathlib import Path

from bot.analysis.migration_model import Function, MigrationFile, OpCall, suppressions_in
from bot.errors import UserError
from bot.migrations.callsites import batch_withs, call_sites, calls_on
from bot.migrations.project import AlembicProject

# Alembic reads revision ids from file names when `revision` is missing (legacy layout).
_LEGACY_REVISION_FILE = re.compile(r"^([a-f0-9]+)\.py$")
FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_FUNCTIONS: tuple[Function, ...] = ("upgrade", "downgrade")
# sa.text("..."), textwrap.dedent("...") and the name markers op.f("ix") / conv("ix") keep
# their string argument.
_TEXT_CALLS = {"text", "dedent", "f", "conv"}
_NOT_OPERATIONS = {"f", "inline_literal"}  # op helpers that build values, not operations
_COLUMN_CALLS = {"Column"}
# Where batch_op.<name>(...) misses the table that op.<name>(...) takes: positional index.
_BATCH_TABLE_POSITION = {
    "add_column": 0,
    "drop_column": 0,
    "alter_column": 0,
    "create_index": 1,
    "create_unique_constraint": 1,
    "create_foreign_key": 1,
    "create_check_constraint": 1,
    "create_primary_key": 1,
    "drop_constraint": 1,
}


def scan_file(path: Path, rel_path: str) -> MigrationFile:
    """Scan one revision file on disk; `rel_path` names it in results and errors."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", path=rel_path) from exc
    return scan_source(data, rel_path)


def scan_source(source: str | bytes, rel_path: str) -> MigrationFile:
    """Scan the text of one revision file (from disk or from a git object)."""
    text = _decode(source, rel_path)
    tree = _parse(text, rel_path)
    constants = _module_constants(tree)
    revision = _revision(tree, rel_path, constants)
    comments, comment_only = _comments(text)
    functions = _top_level_functions(tree)
    return MigrationFile(
        path=rel_path,
        revision=revision,
        down_revisions=_id_tuple(tree, "down_revision", rel_path, constants),
        depends_on=_id_tuple(tree, "depends_on", rel_path, constants),
        branch_labels=_id_tuple(tree, "branch_labels", rel_path, constants),
        message=_first_docstring_line(tree),
        ops=_op_calls(tree, functions, constants),
        upgrade_line=_def_line(functions, "upgrade"),
        downgrade_line=_def_line(functions, "downgrade"),
        downgrade_empty=_downgrade_empty(functions),
        comments=comments,
        comment_only_lines=comment_only,
        suppressions=suppressions_in(comments),
        call_sites=call_sites(tree, _op_aliases(tree)),
    )


def scan_project(project: AlembicProject) -> list[MigrationFile]:
    """Every revision file of the project's version directories, sorted by path."""
    files: list[MigrationFile] = []
    for path in _revision_paths(project):
        if not path.resolve().is_relative_to(project.repo_root):
            raise UserError(
                "is a link to a file outside the repository; migsafe reads only files inside it",
                path=_rel_unresolved(project, path),
            )
        files.append(scan_file(path, project.rel(path)))
    return sorted(files, key=lambda migration: migration.path)


def is_revision_file_name(name: str) -> bool:
    """As Alembic: *.py files, except __init__.py and editor lock files."""
    return name.endswith(".py") and not name.startswith(("__init__", ".#"))


def _revision_paths(project: AlembicProject) -> Iterator[Path]:
    for directory in project.versions_dirs:
        if not directory.is_dir():
            continue
        pattern = "**/*.py" if project.recursive_versions else "*.py"
        for path in sorted(directory.glob(pattern)):
            if "__pycache__" not in path.parts and is_revision_file_name(path.name):
                yield path


def _rel_unresolved(project: AlembicProject, path: Path) -> str:
    return path.absolute().relative_to(project.repo_root).as_posix()


# --- parsing ---------------------------------------------------------------------------------


def _decode(source: str | bytes, rel_path: str) -> str:
    if isinstance(source, str):
        return source
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        return source.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot decode the file: {exc}", path=rel_path) from exc


def _parse(text: str, rel_path: str) -> ast.Module:
    try:
        return ast.parse(text, filename=rel_path)
    except SyntaxError as exc:
        raise UserError(
            f"line {exc.lineno}: {exc.msg} (migsafe reads migration files as Python source)",
            path=rel_path,
        ) from exc
    except ValueError as exc:  # e.g. null bytes
        raise UserError(f"not Python source: {exc}", path=rel_path) from exc


def _module_assignments(tree: ast.Module) -> Iterator[tuple[str, ast.expr, int]]:
    """(name, value, line) of `name = value` and `name: T = value` at module level."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, node.value, node.lineno
        elif (
            isinstance(node, ast.AnnAssign)
            and node.value is not None
            and isinstance(node.target, ast.Name)
        ):
            yield node.target.id, node.value, node.lineno


def _module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level names bound to literals, so `op.drop_table(TABLE)` still names its table."""
    constants: dict[str, object] = {}
    for name, value, _ in _module_assignments(tree):
        try:
            constants[name] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            constants.pop(name, None)
    return constants


def _revision(tree: ast.Module, rel_path: str, constants: dict[str, object]) -> str:
    for name, _, line in _module_assignments(tree):
        if name == "revision":
            value = constants.get("revision")
            if not isinstance(value, str) or not value:
                raise UserError(f"line {line}: `revision` is not a string literal", path=rel_path)
            return value
    legacy = _LEGACY_REVISION_FILE.match(rel_path.rsplit("/", 1)[-1])
    if legacy:
        return legacy.group(1)
    raise UserError(
        'no module-level `revision = "..."` assignment: Alembic cannot identify this revision',
        path=rel_path,
    )


def _id_tuple(
    tree: ast.Module, name: str, rel_path: str, constants: dict[str, object]
) -> tuple[str, ...]:
    """down_revision / depends_on / branch_labels: a string, None, or a tuple/list of them."""
    for assigned, _, line in _module_assignments(tree):
        if assigned != name:
            continue
        value = constants.get(name, _NOT_LITERAL)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, tuple | list) and all(isinstance(item, str) for item in value):
            return tuple(str(item) for item in value)
        raise UserError(
            f"line {line}: `{name}` must be a string, None, or a tuple/list of strings",
            path=rel_path,
        )
    return ()


_NOT_LITERAL = object()


def _first_docstring_line(tree: ast.Module) -> str | None:
    docstring = ast.get_docstring(tree)
    if not docstring:
        return None
    for line in docstring.splitlines():
        if line.strip():
            return line.strip()
    return None


# --- functions and op calls ------------------------------------------------------------------


def _top_level_functions(tree: ast.Module) -> dict[str, FunctionNode]:
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _def_line(functions: dict[str, FunctionNode], name: str) -> int | None:
    node = functions.get(name)
    return node.lineno if node else None


def _roots(functions: dict[str, FunctionNode], kind: Function) -> list[str]:
    """`upgrade`, plus `upgrade_<engine>` of Alembic's multi-database template."""
    return [name for name in functions if name == kind or name.startswith(f"{kind}_")]


def _reachable(functions: dict[str, FunctionNode], roots: list[str]) -> list[FunctionNode]:
    """The root functions and the module-level helpers they call, directly or not."""
    seen: list[str] = []
    pending = list(roots)
    while pending:
        name = pending.pop(0)
        if name in seen or name not in functions:
            continue
        seen.append(name)
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                pending.append(node.func.id)
    return [functions[name] for name in seen]


def _op_calls(
    tree: ast.Module,
    functions: dict[str, FunctionNode],
    constants: dict[str, object],
) -> list[OpCall]:
    op_names = _op_aliases(tree)
    calls: list[OpCall] = []
    for kind in _FUNCTIONS:
        for function in _reachable(functions, _roots(functions, kind)):
            calls.extend(_calls_in(function, kind, op_names, constants))
    return calls


def _op_aliases(tree: ast.Module) -> set[str]:
    """Names under which `alembic.op` is bound (`from alembic import op as o`)."""
    names = {"op"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "alembic":
            names.update(alias.asname or alias.name for alias in node.names if alias.name == "op")
    return names


def _calls_in(
    function: FunctionNode,
    kind: Function,
    op_names: set[str],
    constants: dict[str, object],
) -> list[OpCall]:
    batches = _batch_blocks(function, op_names, constants)
    calls: list[OpCall] = []
    for node in ast.walk(function):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = node.func.value
        if not isinstance(receiver, ast.Name):
            continue
        if receiver.id in op_names and node.func.attr not in _NOT_OPERATIONS:
            calls.append(_op_call(node, kind, constants))
        elif id(node) in batches:
            table, with_line = batches[id(node)]
            calls.append(_batch_call(node, kind, constants, table, with_line))
    return sorted(calls, key=lambda call: (call.line, call.end_line))


def _batch_blocks(
    function: FunctionNode,
    op_names: set[str],
    constants: dict[str, object],
) -> dict[int, tuple[object, int]]:
    """Calls on a `with op.batch_alter_table("t") as batch_op:` alias inside its block:
    id(call node) -> (table, line of the `with`). The innermost block wins."""
    calls: dict[int, tuple[object, int]] = {}
    for node, call, alias in batch_withs(function, op_names):  # outer ones first: inner win
        table = _argument(call, 0, "table_name", constants)
        for inner in calls_on(node.body, alias):
            calls[id(inner)] = (table, node.lineno)
    return calls


def _argument(call: ast.Call, position: int, keyword: str, constants: dict[str, object]) -> object:
    if len(call.args) > position:
        return _value(call.args[position], constants)
    for kw in call.keywords:
        if kw.arg == keyword:
            return _value(kw.value, constants)
    return None


def _op_call(node: ast.Call, kind: Function, constants: dict[str, object]) -> OpCall:
    assert isinstance(node.func, ast.Attribute)
    return OpCall(
        name=node.func.attr,
        function=kind,
        line=node.lineno,
        end_line=node.end_lineno or node.lineno,
        args=[_value(arg, constants) for arg in node.args],
        kwargs={kw.arg: _value(kw.value, constants) for kw in node.keywords if kw.arg},
    )


def _batch_call(
    node: ast.Call, kind: Function, constants: dict[str, object], table: object, with_line: int
) -> OpCall:
    call = _op_call(node, kind, constants)
    call.batch_line = with_line
    position = _BATCH_TABLE_POSITION.get(call.name)
    if call.name == "drop_index" or (position is not None and len(call.args) < position):
        call.kwargs.setdefault("table_name", table)
    elif position is not None:
        call.args.insert(position, table)
    return call


# --- literal values --------------------------------------------------------------------------


def _value(node: ast.expr, constants: dict[str, object]) -> object:
    """A literal value, the SQL of sa.text("..."), a column description, or None."""
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.Call):
        return _call_value(node, constants)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _call_value(node: ast.Call, constants: dict[str, object]) -> object:
    name = _callee_name(node)
    if name in _TEXT_CALLS and node.args:
        text = _value(node.args[0], constants)
        if isinstance(text, str):
            return textwrap.dedent(text) if name == "dedent" else text
        return None
    if name in _COLUMN_CALLS:
        return _column_description(node, constants)
    return None


def _callee_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _column_description(node: ast.Call, constants: dict[str, object]) -> dict[str, object]:
    """sa.Column("email", sa.String(), nullable=False) -> {"column": "email", "type": ...}."""
    description: dict[str, object] = {}
    positional = list(node.args)
    if positional and isinstance(name := _value(positional[0], constants), str):
        description["column"] = name
        positional = positional[1:]
    if positional:
        description["type"] = ast.unparse(positional[0])
    for kw in node.keywords:
        if kw.arg in {"nullable", "primary_key", "unique", "index"}:
            description[kw.arg] = _value(kw.value, constants)
        elif kw.arg in {"server_default", "default"}:
            description[kw.arg] = ast.unparse(kw.value)
    return description


# --- downgrade -------------------------------------------------------------------------------


def _downgrade_empty(functions: dict[str, FunctionNode]) -> bool:
    """No downgrade, or only pass / docstring / ... / raise NotImplementedError in it.

    With the multi-database template, `downgrade(engine_name)` only dispatches to
    `downgrade_<engine>()`: those decide.
    """
    engines = [name for name in _roots(functions, "downgrade") if name != "downgrade"]
    names = engines or (["downgrade"] if "downgrade" in functions else [])
    return all(_body_is_empty(functions[name].body) for name in names)


def _body_is_empty(body: list[ast.stmt]) -> bool:
    return all(_statement_is_empty(statement) for statement in body)


def _statement_is_empty(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return isinstance(statement.value.value, str) or statement.value.value is Ellipsis
    if isinstance(statement, ast.Raise) and statement.exc is not None:
        exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


# --- comments and suppressions ---------------------------------------------------------------


def _comments(text: str) -> tuple[dict[int, str], set[int]]:
    """(line -> comment text without '#', lines holding nothing but a comment)."""
    comments: dict[int, str] = {}
    comment_only: set[int] = set()
    code_lines: set[int] = set()
    skipped = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string[1:].strip()
            elif token.type not in skipped:
                code_lines.update(range(token.start[0], token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        pass  # ast accepted the file; keep the comments read so far
    comment_only = {line for line in comments if line not in code_lines}
    return comments, comment_only
