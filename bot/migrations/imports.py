"""The repository modules a set of Python files imports, found without running anything.

An approval is for what runs, and `env.py` and the revisions run whatever repository
modules they import (models, settings, helpers). The repository is untrusted, so its
files are only parsed with `ast`, never imported; an import is resolved against the
directories Alembic's child would search (the caller passes them, first to last) and
against the importing file's own package for relative imports. Only files inside the
repository count: a third-party or standard-library module is not the change's.

Resolution errs towards including: every search root that holds a name counts (the
order Python would pick from depends on what the setup installs), imports inside
functions, `try` blocks and `if TYPE_CHECKING:` count, and so do `importlib.import_module`
and `__import__` calls with a literal name. The walk is bounded (files, depth, bytes
parsed); where a bound cuts it short, `Closure.truncated` says so.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILES = 2000  # modules followed; a real application's import graph is far smaller
MAX_DEPTH = 50  # import hops from a seed
MAX_PARSED_BYTES = 2 * 1024**2  # a larger file is covered (hashed) but not followed
_DYNAMIC_IMPORTERS = {"import_module", "__import__"}


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
    root = repo_root.resolve()
    roots = [r for r in (_inside(root, p) for p in search_roots) if r is not None and r.is_dir()]
    seen: set[Path] = set()
    level = sorted({p for p in (_inside(root, s) for s in seeds) if p is not None and _is_file(p)})
    truncated = False
    depth = 0
    while level:
        if depth > MAX_DEPTH:
            truncated = True
            break
        following: set[Path] = set()
        for path in level:  # sorted: where a bound cuts the walk, it cuts it the same way
            if path in seen:
                continue
            if len(seen) >= MAX_FILES:
                truncated = True
                break
            seen.add(path)
            source = _source(path)
            if source is None:
                truncated = truncated or _is_large(path)
                continue
            for found in _imported_files(root, path, source, roots):
                if found not in seen:
                    following.add(found)
        level = sorted(following - seen)
        depth += 1
    return Closure(files=sorted(seen), truncated=truncated)


# -- reading a module ------------------------------------------------------------------------


def _source(path: Path) -> ast.Module | None:
    """The parsed module, or None: too large, unreadable or not Python (still covered)."""
    if _is_large(path):
        return None
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):  # ValueError: NUL bytes in the source
        return None


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


def _imports(tree: ast.Module) -> Iterator[_Import]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _Import(alias.name)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            yield _Import(node.module or "", names, node.level)
        elif isinstance(node, ast.Call) and (name := _dynamic_import_name(node)) is not None:
            yield _Import(name)


def _dynamic_import_name(call: ast.Call) -> str | None:
    """`importlib.import_module("a.b")`, `import_module("a.b")`, `__import__("a.b")`."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in _DYNAMIC_IMPORTERS or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        # A relative name needs the `package` argument's value: not followed.
        return first.value if first.value and not first.value.startswith(".") else None
    return None


# -- resolving -------------------------------------------------------------------------------


def _imported_files(
    root: Path, importer: Path, tree: ast.Module, roots: Sequence[Path]
) -> Iterator[Path]:
    for found in _imports(tree):
        if found.level:
            base = importer.parent
            for _ in range(found.level - 1):
                base = base.parent
            if _inside(root, base) is None:
                continue  # `from ... import` climbing out of the repository
            yield from _resolve(root, base, found)
        else:
            for search_root in roots:
                yield from _resolve(root, search_root, found)


def _resolve(root: Path, base: Path, found: _Import) -> Iterator[Path]:
    """The files importing `found` from `base` runs: each package's `__init__.py` on the
    way, the module itself, and those of the `from` names that are submodules."""
    parts = [part for part in found.module.split(".") if part]
    files, directory = _walk_packages(root, base, parts)
    yield from files
    if directory is not None:
        for name in found.names:
            yield from _module_files(root, directory, name)


def _walk_packages(root: Path, base: Path, parts: list[str]) -> tuple[list[Path], Path | None]:
    """Follow `parts` down from `base`: the files run on the way, and the package directory
    reached (None when the name ends at a plain module or is not the repository's)."""
    files: list[Path] = []
    directory = base
    for part in parts:
        if not part.isidentifier():
            return files, None
        package = _inside(root, directory / part)
        init = _inside(root, directory / part / "__init__.py")
        if init is not None and _is_file(init):
            files.append(init)
        elif package is None or not _is_dir(package):
            module = _inside(root, directory / f"{part}.py")
            if module is not None and _is_file(module):
                files.append(module)
            return files, None  # a module has no submodules to walk into
        # else: a namespace package, where no file runs but its submodules may
        if package is None:
            return files, None
        directory = package
    return files, directory


def _module_files(root: Path, directory: Path, name: str) -> Iterator[Path]:
    """`from package import name`: the submodule's file when `name` is one."""
    if not name.isidentifier():
        return
    init = _inside(root, directory / name / "__init__.py")
    if init is not None and _is_file(init):
        yield init
        return
    module = _inside(root, directory / f"{name}.py")
    if module is not None and _is_file(module):
        yield module


def _inside(root: Path, path: Path) -> Path | None:
    """`path` resolved, if it stays inside the repository (a link out of it does not)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    return resolved if resolved == root or resolved.is_relative_to(root) else None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False
