"""The lines of a revision file where SQL can be emitted, read with `ast` (never run).

A child running the repository's code says which file and line emitted each statement; the
parent accepts such a line only where this scan finds a call that could emit it
(`bot.analysis.origins`). Recorded per line, by the name of the operation:

- `op.<name>(...)` (under any alias of `alembic.op`), and `<alias>.<name>(...)` inside a
  `with op.batch_alter_table(...) as <alias>:` block;
- the `with op.batch_alter_table(...)` line itself, with every operation of its block:
  Alembic emits a batch's SQL when the block exits, and Python reports the `with` line then;
- `<anything>.execute(...)` / `.exec_driver_sql(...)` as "execute" (`op.get_bind().execute`);
- `<anything>.create(...)` / `.drop(...)` as "create" / "drop" (`sa.Enum(...).create(bind)`).

Python reports a call spanning lines at its first line, or (3.11+, a method call) at the line
of the attribute's name: both lines are recorded. Each call keeps the names it gives as plain
string literals (table, column, index, constraint): the statement it emits names them too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import replace

from bot.analysis.migration_model import BATCH, BATCH_RECREATE, CallSite
from bot.analysis.parse import split_sql

# op helpers that build values or hand out objects: they emit nothing.
_NOT_EMITTING = {
    "f",
    "inline_literal",
    "get_bind",
    "get_context",
    "implementation_for",
    "register_operation",
}
_EXECUTE = {"execute", "exec_driver_sql"}
_SCHEMA_ITEM = {"create", "drop"}
# Keywords of op.* calls that name things every statement of the operation names too (not
# new_column_name: alter_column's type change, emitted apart from its rename, lacks it).
_NAMING_KEYWORDS = {
    "table_name",
    "column_name",
    "index_name",
    "constraint_name",
    "source_table",
    "referent_table",
    "new_table_name",
    "old_table_name",
    "schema",
}
# PostgreSQL's DROP INDEX names the index, not its table.
_TABLE_UNNAMED = {"drop_index"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def call_sites(tree: ast.Module, op_names: set[str]) -> dict[int, tuple[CallSite, ...]]:
    """Line -> the calls Python reports at that line."""
    sites: dict[int, list[CallSite]] = {}
    aliases = dict(_batch_blocks(tree, op_names))
    functions = _functions(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        site = _site(node, op_names, aliases)
        if site is not None:
            site = replace(site, function=_function_at(functions, node.lineno))
            for line in _lines(node):
                sites.setdefault(line, []).append(site)
    for with_line, batch in _batch_lines(tree, op_names, aliases):
        function = _function_at(functions, with_line)
        sites.setdefault(with_line, []).extend(replace(s, function=function) for s in batch)
    return {line: tuple(found) for line, found in sites.items()}


def _functions(tree: ast.Module) -> list[tuple[int, int, str]]:
    """(first line, last line, name) of each top-level function."""
    return [
        (node.lineno, node.end_lineno or node.lineno, node.name)
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def _function_at(functions: list[tuple[int, int, str]], line: int) -> str | None:
    return next((name for first, last, name in functions if first <= line <= last), None)


def _site(node: ast.Call, op_names: set[str], aliases: dict[int, str]) -> CallSite | None:
    assert isinstance(node.func, ast.Attribute)
    name = _operation(node.func, op_names, aliases)
    if name is None:
        return None
    if name == "execute":
        literal = _literal_sql(node)
        return CallSite(name, sql=literal or (), opaque=literal is None)
    if name in _SCHEMA_ITEM:
        return CallSite(name, opaque=True)  # sa.Enum(...).create(bind): names not read
    words = _words(node, name)
    return CallSite(name, words, opaque=not words)


def _literal_sql(node: ast.Call) -> tuple[str, ...] | None:
    """The statements of `execute("...")` or `execute(text("..."))`; None when the SQL is
    not a string literal (a variable, an f-string, a built expression)."""
    argument = node.args[0] if node.args else None
    if (
        isinstance(argument, ast.Call)
        and len(argument.args) == 1
        and (
            (isinstance(argument.func, ast.Name) and argument.func.id == "text")
            or (isinstance(argument.func, ast.Attribute) and argument.func.attr == "text")
        )
    ):
        argument = argument.args[0]
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return tuple(split_sql(argument.value)) or None
    return None


def _words(node: ast.Call, name: str) -> tuple[str, ...]:
    """The identifier-like string literals among the call's naming arguments."""
    if name in _TABLE_UNNAMED:
        values = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "index_name")]
    else:
        keywords = [k.value for k in node.keywords if k.arg in _NAMING_KEYWORDS]
        values = [*node.args, *keywords]
    return tuple(
        value.value
        for value in values
        if isinstance(value, ast.Constant)
        and isinstance(value.value, str)
        and _IDENTIFIER.fullmatch(value.value)
    )


def _operation(func: ast.Attribute, op_names: set[str], aliases: dict[int, str]) -> str | None:
    receiver = func.value
    if func.attr in _EXECUTE:
        return "execute"
    if isinstance(receiver, ast.Name) and receiver.id in op_names:
        return None if func.attr in _NOT_EMITTING else func.attr
    if id(func) in aliases:
        return func.attr
    if func.attr in _SCHEMA_ITEM:
        return func.attr
    return None


def _lines(node: ast.Call) -> set[int]:
    lines = {node.lineno}
    if node.func.end_lineno is not None:
        lines.add(node.func.end_lineno)
    return lines


def batch_withs(
    tree: ast.AST, op_names: set[str]
) -> Iterator[tuple[ast.With | ast.AsyncWith, ast.Call, str]]:
    """(with statement, its op.batch_alter_table(...) call, the alias it binds), outer
    blocks first."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.With | ast.AsyncWith):
            continue
        for item in node.items:
            call = item.context_expr
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == BATCH
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id in op_names
                and isinstance(item.optional_vars, ast.Name)
                and item.optional_vars.id not in op_names
            ):
                yield node, call, item.optional_vars.id


def _batch_blocks(tree: ast.Module, op_names: set[str]) -> Iterator[tuple[int, str]]:
    """id(attribute node) of each `<alias>.<name>` call inside a batch block -> its name."""
    for node, _, alias in batch_withs(tree, op_names):
        for call in _alias_calls(node, alias):
            assert isinstance(call.func, ast.Attribute)
            yield id(call.func), call.func.attr


def _batch_lines(
    tree: ast.Module, op_names: set[str], aliases: dict[int, str]
) -> Iterator[tuple[int, list[CallSite]]]:
    """Each batch's `with` line with what its exit can emit: the block's operations (on the
    batch's table)."""
    for node, call, alias in batch_withs(tree, op_names):
        table = _words(call, BATCH)
        inner = [_site(c, op_names, aliases) for c in _alias_calls(node, alias)]
        batch = [CallSite(BATCH, table)]
        batch += [
            CallSite(s.name, s.words if s.name in _TABLE_UNNAMED else table + s.words)
            for s in inner
            if s is not None
        ]
        if any(
            keyword.arg == "recreate"
            and isinstance(keyword.value, ast.Constant)
            and keyword.value.value == "always"
            for keyword in call.keywords
        ):
            batch.append(CallSite(BATCH_RECREATE, table))
        yield node.lineno, batch


def _alias_calls(node: ast.With | ast.AsyncWith, alias: str) -> Iterator[ast.Call]:
    return calls_on(node.body, alias)


def calls_on(body: list[ast.stmt], receiver: str) -> Iterator[ast.Call]:
    """Every `<receiver>.<name>(...)` call in `body`."""
    for statement in body:
        for node in ast.walk(statement):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == receiver
            ):
                yield node
