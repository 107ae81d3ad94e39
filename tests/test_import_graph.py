"""The import graph of `bot/` has no loops: neither between packages nor between modules.

The graph is read statically with `ast`, so it counts every import a module can make: those
at the top, those inside functions (deferred imports still tie the two modules together),
and those under `if TYPE_CHECKING:` (a loop the type checker sees is a loop in the design).
Relative imports are resolved against the importing module's package.

At package level each of bot/analysis, bot/migrations, bot/sandbox, bot/policy, bot/report,
bot/github, bot/store, bot/web, bot/webhooks, bot/jobs and bot/service is one node (its
subpackages included), and each top-level module (bot/check.py, bot/cli.py, ...) is a node
of its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[1] / "bot"
PACKAGES = (
    "analysis",
    "migrations",
    "sandbox",
    "policy",
    "report",
    "github",
    "store",
    "web",
    "webhooks",
    "jobs",
    "service",
)

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(BOT.rglob("*.py"))}


def resolve(name: str, modules: Iterable[str]) -> str | None:
    """The most specific module of `bot` that importing `name` runs, if any."""
    known = set(modules)
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name `module` imports, anywhere in its body (functions included)."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from bot.x import y` imports module bot.x.y when y is one, else a name of bot.x.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def module_graph() -> Graph:
    modules = all_modules()
    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for imported in imported_names(tree, name, path.name == "__init__.py"):
            target = resolve(imported, modules)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] in PACKAGES:
        return ".".join(parts[:2])
    return module  # a top-level module (or `bot` itself, or bot.<package> is already here)


def package_graph(modules: Mapping[str, set[str]]) -> Graph:
    graph: Graph = {}
    for source, targets in modules.items():
        node = package_of(source)
        graph.setdefault(node, set())
        for target in targets:
            if package_of(target) != node:
                graph[node].add(package_of(target))
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One loop through each strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [loop_within(graph, set(component)) for component in components]


def loop_within(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """A shortest loop from the component's first node back to itself, for the message."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no loop through {start}")  # a strongly connected component has one


def describe(loops: list[list[str]]) -> str:
    return "\n".join(" -> ".join(loop) for loop in loops)


# -- the reader itself ---------------------------------------------------------------------------


def test_reader_counts_deferred_type_checking_and_relative_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import model\n"
        "from ..result import CheckResult\n"
        "if TYPE_CHECKING:\n"
        "    from bot.sandbox.model import Observation\n"
        "def later() -> None:\n"
        "    import bot.jobs\n"
    )
    names = imported_names(ast.parse(source), "bot.analysis.engine", is_package=False)
    assert {
        "bot.analysis.model",
        "bot.result.CheckResult",
        "bot.sandbox.model.Observation",
        "bot.jobs",
    } <= names
    modules = ["bot", "bot.result", "bot.sandbox", "bot.sandbox.model", "bot.jobs"]
    assert resolve("bot.result.CheckResult", modules) == "bot.result"
    assert resolve("bot.sandbox.model.Observation", modules) == "bot.sandbox.model"


def test_a_loop_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_packages_group_their_subpackages() -> None:
    assert package_of("bot.analysis.rules.columns") == "bot.analysis"
    assert package_of("bot.store.migrations.env") == "bot.store"
    assert package_of("bot.jobs.queue") == "bot.jobs"
    assert package_of("bot.check") == "bot.check"
    assert package_of("bot.analysis") == "bot.analysis"


# -- bot/ ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return module_graph()


def test_the_graph_sees_bot(graph: Graph) -> None:
    assert "bot.cli" in graph
    assert "bot.analysis.model" in graph["bot.analysis.engine"]


def test_no_loop_between_packages(graph: Graph) -> None:
    loops = cycles(package_graph(graph))
    assert not loops, "import loops between packages:\n" + describe(loops)


def test_no_loop_between_modules(graph: Graph) -> None:
    loops = cycles(graph)
    assert not loops, "import loops between modules:\n" + describe(loops)
