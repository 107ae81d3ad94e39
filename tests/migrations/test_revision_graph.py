"""The revision graph: heads, order, ancestry, revision specs, and what a change adds."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.analysis.migration_model import MigrationFile
from bot.analysis.revision_graph import RevisionGraph
from bot.errors import UserError
from bot.migrations.project import find_project
from bot.migrations.scan import scan_project

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"


def fixture_graph(name: str) -> RevisionGraph:
    return RevisionGraph(scan_project(find_project(FIXTURES / name)))


def rev(
    revision: str, *down: str, depends: tuple[str, ...] = (), labels: tuple[str, ...] = ()
) -> MigrationFile:
    return MigrationFile(
        path=f"versions/{revision}.py",
        revision=revision,
        down_revisions=down,
        depends_on=depends,
        branch_labels=labels,
    )


def test_linear_heads_bases_and_order() -> None:
    graph = fixture_graph("linear")
    assert graph.heads() == ("3c4d5e6f7a8b",)
    assert graph.bases() == ("1a2b3c4d5e6f",)
    assert graph.upgrade_order() == ["1a2b3c4d5e6f", "2b3c4d5e6f7a", "3c4d5e6f7a8b"]
    assert graph.ancestors("3c4d5e6f7a8b") == {"1a2b3c4d5e6f", "2b3c4d5e6f7a"}
    assert graph.descendants("1a2b3c4d5e6f") == {"2b3c4d5e6f7a", "3c4d5e6f7a8b"}


def test_branches_have_two_heads_and_merge_has_one() -> None:
    assert fixture_graph("branches").heads() == ("bbbb00000002", "cccc00000003")
    merged = fixture_graph("merge")
    assert merged.heads() == ("dddd00000004",)
    assert merged.upgrade_order()[-1] == "dddd00000004"
    assert merged.ancestors("dddd00000004") == {"aaaa00000001", "bbbb00000002", "cccc00000003"}


def test_order_is_parents_first_whatever_the_file_names() -> None:
    graph = RevisionGraph([rev("c", "b"), rev("a"), rev("b", "a"), rev("z", "a")])
    order = graph.upgrade_order()
    assert order.index("a") < order.index("b") < order.index("c")
    assert order == ["a", "b", "c", "z"]  # ties broken by path: deterministic


def test_depends_on_orders_but_does_not_change_heads() -> None:
    graph = RevisionGraph([rev("aaaa"), rev("cccc"), rev("bbbb", "aaaa", depends=("cccc",))])
    assert graph.heads() == ("cccc", "bbbb")  # as Alembic: a dependency is still a head
    assert graph.upgrade_order() == ["aaaa", "cccc", "bbbb"]
    assert "cccc" in graph.ancestors("bbbb")


def test_duplicate_revision_names_both_files() -> None:
    with pytest.raises(UserError) as error:
        RevisionGraph(
            [
                rev("aaaa"),
                MigrationFile(path="versions/copy.py", revision="aaaa", down_revisions=()),
            ]
        )
    assert str(error.value).startswith("versions/copy.py: ")
    assert "versions/aaaa.py" in str(error.value)


def test_dangling_down_revision_names_the_file() -> None:
    with pytest.raises(UserError) as error:
        fixture_graph("dangling_down_revision")
    assert str(error.value).startswith("migrations/versions/5555eeee6666_orphan.py: ")
    assert "'deadbeef0000'" in str(error.value)


def test_unknown_depends_on_names_the_file() -> None:
    with pytest.raises(UserError, match=r"^versions/bbbb.py: depends_on 'zzzz'"):
        RevisionGraph([rev("aaaa"), rev("bbbb", "aaaa", depends=("zzzz",))])


def test_cycle_is_reported() -> None:
    with pytest.raises(UserError, match=r"cycle"):
        RevisionGraph([rev("root"), rev("aaaa", "bbbb"), rev("bbbb", "aaaa")])


def test_resolve_full_id_prefix_and_symbols() -> None:
    graph = fixture_graph("linear")
    assert graph.resolve("2b3c4d5e6f7a") == ("2b3c4d5e6f7a",)
    assert graph.resolve("2b3c") == ("2b3c4d5e6f7a",)
    assert graph.resolve("head") == ("3c4d5e6f7a8b",)
    assert graph.resolve("heads") == ("3c4d5e6f7a8b",)
    assert graph.resolve("base") == ()


def test_resolve_unknown_lists_the_heads() -> None:
    with pytest.raises(UserError) as error:
        fixture_graph("linear").resolve("abc")
    assert str(error.value) == "unknown revision 'abc' (known heads: 3c4d5e6f7a8b)"


def test_resolve_ambiguous_prefix() -> None:
    with pytest.raises(UserError, match=r"'aaaa' is ambiguous"):
        RevisionGraph([rev("aaaa1"), rev("aaaa2", "aaaa1")]).resolve("aaaa")


def test_resolve_head_with_two_heads_is_ambiguous() -> None:
    graph = fixture_graph("branches")
    assert graph.resolve("heads") == ("bbbb00000002", "cccc00000003")
    with pytest.raises(UserError, match=r"several heads"):
        graph.resolve("head")


def test_resolve_branch_labels() -> None:
    graph = RevisionGraph([rev("aaaa", labels=("core",)), rev("bbbb", "aaaa"), rev("cccc")])
    assert graph.resolve("core") == ("aaaa",)
    assert graph.resolve("core@head") == ("bbbb",)


def test_new_since_is_everything_after_the_revision_and_marks_files() -> None:
    graph = fixture_graph("linear")
    assert graph.new_since("1a2b") == ["2b3c4d5e6f7a", "3c4d5e6f7a8b"]
    assert [f.new for f in graph.ordered_files()] == [False, True, True]
    assert graph.new_since("head") == []
    assert graph.new_since("base") == graph.upgrade_order()


def test_new_since_on_a_branch_includes_what_alembic_upgrade_would_run() -> None:
    graph = fixture_graph("merge")
    assert graph.new_since("bbbb00000002") == ["cccc00000003", "dddd00000004"]


def test_new_since_unknown_revision() -> None:
    with pytest.raises(UserError, match=r"unknown revision 'nope'"):
        fixture_graph("linear").new_since("nope")


def test_new_compared_to_and_base_point() -> None:
    graph = fixture_graph("merge")
    new = graph.new_compared_to({"aaaa00000001", "bbbb00000002"})
    assert new == ["cccc00000003", "dddd00000004"]
    assert graph["cccc00000003"].new and not graph["bbbb00000002"].new
    assert graph.base_point(new) == ("aaaa00000001", "bbbb00000002")


def test_base_point_is_the_old_head_and_empty_when_all_is_new() -> None:
    graph = fixture_graph("linear")
    assert graph.base_point(["3c4d5e6f7a8b"]) == ("2b3c4d5e6f7a",)
    assert graph.base_point(graph.upgrade_order()) == ()
    assert graph.base_point([]) == ()


def test_new_since_accepts_resolved_ids() -> None:
    graph = fixture_graph("merge")
    assert graph.new_since(graph.resolve("bbbb")) == ["cccc00000003", "dddd00000004"]
    assert graph.new_since(()) == graph.upgrade_order()  # `base` resolves to no revision
    assert graph.by_id["dddd00000004"].new
    with pytest.raises(UserError, match="unknown revision 'zzzz'"):
        graph.new_since(["zzzz"])
