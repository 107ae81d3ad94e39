"""The approval fingerprint's hash: order-independent, sensitive to names and contents.
(Which files it covers: tests/policy/test_approval_inputs.py.)"""

from __future__ import annotations

import pytest

from bot.policy.fingerprint import content_digest, fingerprint, matches_any

TREE = {
    "migrations/versions/0001_create.py": content_digest(b'revision = "0001"\n'),
    "migrations/versions/0003_orders_cleanup.py": content_digest(b'revision = "0003"\n'),
    "migrations/env.py": content_digest(b"# env\n"),
}
BASE = fingerprint(TREE)


def test_a_changed_content_changes_it() -> None:
    tree = {**TREE, "migrations/env.py": content_digest(b"# env\n\n")}
    assert fingerprint(tree) != BASE


def test_rename_changes_it() -> None:
    tree = dict(TREE)
    tree["migrations/versions/0003_v2.py"] = tree.pop("migrations/versions/0003_orders_cleanup.py")
    assert fingerprint(tree) != BASE


def test_added_or_removed_file_changes_it() -> None:
    added = {**TREE, "app/models.py": content_digest(b"")}
    removed = {k: v for k, v in TREE.items() if not k.endswith("0001_create.py")}
    assert fingerprint(added) != BASE
    assert fingerprint(removed) != BASE


def test_order_independence_and_normalised_paths() -> None:
    assert fingerprint(dict(reversed(list(TREE.items())))) == BASE
    assert fingerprint({f"./{k}": v for k, v in TREE.items()}) == BASE
    assert fingerprint({k.replace("/", "\\"): v for k, v in TREE.items()}) == BASE
    assert len(BASE) == 64 and int(BASE, 16) >= 0


def test_contents_cannot_be_moved_between_files_unnoticed() -> None:
    a = {"a.py": content_digest(b"x"), "b.py": content_digest(b"y")}
    swapped = {"a.py": content_digest(b"y"), "b.py": content_digest(b"x")}
    assert fingerprint(a) != fingerprint(swapped)


def test_a_truncated_walk_never_equals_a_complete_one() -> None:
    assert fingerprint(TREE, truncated=True) != BASE


@pytest.mark.parametrize(
    ("path", "glob", "expected"),
    [
        ("migrations/versions/0001.py", "migrations/versions/*.py", True),
        ("migrations/versions/sub/0001.py", "migrations/versions/*.py", False),
        ("other/migrations/versions/0001.py", "migrations/versions/*.py", False),
        ("migrations/versions/__pycache__/0001.cpython-311.pyc", "migrations/versions/*.py", False),
        ("a/b/c/versions/0001.py", "**/versions/*.py", True),
        ("versions/0001.py", "**/versions/*.py", True),
        ("docs/adr/0007-drop.md", "docs/adr/*.md", True),
        ("docs/adr/0007.MD", "docs/adr/*.md", False),
        ("docs/adr/7.md", "docs/adr/[0-9].md", True),
        ("docs/adr/x.md", "docs/adr/[!0-9].md", True),
    ],
)
def test_glob_matching(path: str, glob: str, expected: bool) -> None:
    assert matches_any(path, [glob]) is expected
