"""The repository modules a set of Python files imports, found without running anything.

An approval is for what runs, and `env.py` and the revisions run whatever repository
modules they import (models, settings, helpers). The repository is untrusted, so its
files are only parsed with `ast`, never imported; an import is resolved against the
directories Alembic's child would search (the caller passes them) and against the
importing file's own package for relative imports. Only files inside the
repository count: a third-party or standard-library module is not the change's.

Resolution errs towards including: every search root that holds a name counts (the
order Python would pick from depends on what the setup installs), imports inside
functions, `try` blocks and `if TYPE_CHECKING:` count, and so do `importlib.import_module`
and `__import__` calls with a literal name. The walk is bounded (files, depth, bytes
parsed); where a bound cuts it short, `Closure.truncated` says so.
"""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILES = 2000  # modules followed; a real application's import graph is far smaller
MAX_DEPTH = 50  # import hops from a seed
MAX_PARSED_BYTES = 2 * 1024**2  # a larger file is covered (hashed) but not followed
_DYNAMIC_IMPORTERS = ("import_module", "__import__")
# Where statements nest: bodies of blocks, `except` handlers, `match` cases.
_STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")
_STATEMENT_NODES = (ast.stmt, ast.excepthandler, ast.match_case)


@dataclass
class Closure:
    files: list[Path] = field(default_factory=list)  # resolved, inside the repository, sorted
    truncated: bool = False  # a bound stopped the walk: some imports were not followed


def import_closure(repo_root: Path, seeds: Iterable[Path], search_roots: Sequence[Path]) -> Closure:
    """The seeds and every repository module they import, transitively.

    `search_roots` are the directories absolute imports are looked up in (sys.path as the
    migration child sees it, restricted to the repository). Seeds outside the repository
    or not regular files are ignored.
    """
    resolver = _Resolver(repo_root.resolve(), search_roots)
    seen: set[Path] = set()
    level = sorted({p for p in map(resolver.file, seeds) if p is not None})
    truncated = False
    depth = 0
    while level:
        if depth > MAX_DEPTH:
            truncated = True
            break
        following: set[Path] = set()
        for path in level:  # sorted: where a bound cuts the walk, it cuts it the same way
            if len(seen) >= MAX_FILES:
                truncated = True
                break
            seen.add(path)
            imported = _imports_of(path)
            if imported is None:
                truncated = truncated or _is_large(path)
                continue
            for found in imported:
                following.update(resolver.files_of(path, found))
        level = sorted(following - seen)
        depth += 1
    return Closure(files=sorted(seen), truncated=truncated)


# -- reading a module ------------------------------------------------------------------------


def _imports_of(path: Path) -> list[_Import] | None:
    """The imports of a module, or None: too large, unreadable or not Python (the file is
    still covered, only not followed)."""
    if _is_large(path):
        return None
    try:
        source = path.read_bytes()
        tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError):  # ValueError: NUL bytes in the source
        return None
    found = list(_import_statements(tree))
    if any(name.encode() in source for name in _DYNAMIC_IMPORTERS):
        # Only then are the expressions walked too: most of a module's nodes are in them.
        found += [_Import(name) for node in ast.walk(tree) if (name := _dynamic_import(node))]
    return found


def _is_large(path: Path) -> bool:
    try:
        return path.stat().st_size > MAX_PARSED_BYTES
    except OSError:
        return False


@dataclass(frozen=True)
class _Import:
    module: str  # dotted, "" for `from . import x`
    names: tuple[str, ...] = ()  # `from module import names`: each may be a submodule
    level: int = 0  # leading dots of a relative import


def _import_statements(tree: ast.Module) -> Iterator[_Import]:
    """`import` and `from ... import` statements, at any depth of the statement tree
    (functions, classes, `if TYPE_CHECKING:`, `try`); expressions are not entered."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            yield from (_Import(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            yield _Import(node.module or "", names, node.level)
        for field_name in _STATEMENT_LISTS:
            children = getattr(node, field_name, None)
            if isinstance(children, list):
                stack.extend(c for c in children if isinstance(c, _STATEMENT_NODES))


def _dynamic_import(node: ast.AST) -> str | None:
    """The name of `importlib.import_module("a.b")`, `import_module("a.b")` or
    `__import__("a.b")`, when it is a literal absolute name."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    if name not in _DYNAMIC_IMPORTERS or not isinstance(first, ast.Constant):
        return None
    # A relative name needs the `package` argument's value: not followed.
    value = first.value
    return value if isinstance(value, str) and value and not value.startswith(".") else None


# -- resolving -------------------------------------------------------------------------------


class _Resolver:
    """Imports resolved against one repository. Cached: the same names are imported from
    many modules, and resolving a path through links costs system calls each time."""

    def __init__(self, root: Path, search_roots: Sequence[Path]) -> None:
        self.root = root
        self._entries: dict[Path, tuple[Path, bool] | None] = {}
        self._resolved: dict[tuple[Path, str, tuple[str, ...]], list[Path]] = {}
        self.roots = [r for r in map(self.directory, search_roots) if r is not None]

    def files_of(self, importer: Path, found: _Import) -> list[Path]:
        """The repository files running `found` (as written in `importer`) runs."""
        if not found.level:
            return [f for base in self.roots for f in self._from(base, found)]
        base: Path | None = importer.parent
        for _ in range(found.level - 1):
            base = self.directory(base.parent) if base is not None else None
        # `from ... import` climbing out of the repository finds nothing of it.
        return self._from(base, found) if base is not None else []

    def _from(self, base: Path, found: _Import) -> list[Path]:
        key = (base, found.module, found.names)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(base, found)
        return self._resolved[key]

    def _resolve(self, base: Path, found: _Import) -> list[Path]:
        """Each package's `__init__.py` on the way, the module itself, and those of the
        `from` names that are submodules."""
        files: list[Path] = []
        directory = base
        for part in (part for part in found.module.split(".") if part):
            if not part.isidentifier():
                return files
            # Python's order within one directory: a package, a module, a namespace package.
            if (init := self.file(directory / part / "__init__.py")) is not None:
                files.append(init)
                directory = init.parent
            elif (module := self.file(directory / f"{part}.py")) is not None:
                files.append(module)
                return files  # a module has no submodules to walk into
            elif (namespace := self.directory(directory / part)) is not None:
                directory = namespace
            else:
                return files  # not the repository's: a third-party or standard module
        for name in found.names:
            if name.isidentifier():
                submodule = self.file(directory / name / "__init__.py") or self.file(
                    directory / f"{name}.py"
                )
                files += [submodule] if submodule is not None else []
        return files

    def file(self, path: Path) -> Path | None:
        """`path` resolved, if it is a regular file inside the repository."""
        entry = self._entry(path)
        return entry[0] if entry is not None and not entry[1] else None

    def directory(self, path: Path) -> Path | None:
        """`path` resolved, if it is a directory inside the repository."""
        entry = self._entry(path)
        return entry[0] if entry is not None and entry[1] else None

    def _entry(self, path: Path) -> tuple[Path, bool] | None:
        """(resolved path, is a directory) for a file or directory inside the repository:
        a link out of it is not the repository's and is never read."""
        if path not in self._entries:
            self._entries[path] = None
            try:
                mode = path.stat().st_mode  # most names are not here: one call says so
                resolved = path.resolve()
            except (OSError, RuntimeError):
                return None
            inside = resolved == self.root or resolved.is_relative_to(self.root)
            if inside and (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                self._entries[path] = (resolved, stat.S_ISDIR(mode))
        return self._entries[path]
