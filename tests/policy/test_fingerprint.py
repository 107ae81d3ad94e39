"""The migration fingerprint: unrelated pushes keep it, any migration change changes it."""

from __future__ import annotations

import pytest

from bot.policy.config import Policy
from bot.policy.fingerprint import matches_any, migration_fingerprint

GLOBS = Policy.default().migration_globs("migrations")  # migrations/versions/*.py
MIGRATION = (
    b'"""drop note"""\nrevision = "0003"\n\ndef upgrade():\n    op.drop_column("orders", "note")\n'
)
TREE = {
    "migrations/versions/0001_create.py": b'revision = "0001"\n',
    "migrations/versions/0003_orders_cleanup.py": MIGRATION,
    "migrations/env.py": b"# env\n",
    "app/models.py": b"class Order: ...\n",
    "README.md": b"# shop\n",
}
BASE = migration_fingerprint(TREE, GLOBS)


def test_unrelated_file_change_keeps_it() -> None:
    edited = dict(TREE)
    edited["app/models.py"] = b"class Order:\n    note: str\n"
    edited["docs/adr/0007.md"] = b"# ADR\n"
    assert migration_fingerprint(edited, GLOBS) == BASE


def test_whitespace_change_in_a_migration_changes_it() -> None:
    tree = dict(TREE)
    tree["migrations/versions/0003_orders_cleanup.py"] = MIGRATION + b"\n"
    assert migration_fingerprint(tree, GLOBS) != BASE


def test_rename_changes_it() -> None:
    tree = dict(TREE)
    tree["migrations/versions/0003_orders_cleanup_v2.py"] = tree.pop(
        "migrations/versions/0003_orders_cleanup.py"
    )
    assert migration_fingerprint(tree, GLOBS) != BASE


def test_added_or_removed_migration_changes_it() -> None:
    added = {**TREE, "migrations/versions/0004_more.py": b'revision = "0004"\n'}
    removed = {k: v for k, v in TREE.items() if not k.endswith("0001_create.py")}
    assert migration_fingerprint(added, GLOBS) != BASE
    assert migration_fingerprint(removed, GLOBS) != BASE


def test_order_independence() -> None:
    reordered = dict(reversed(list(TREE.items())))
    assert migration_fingerprint(reordered, GLOBS) == BASE


def test_contents_cannot_be_moved_between_files_unnoticed() -> None:
    a = {"migrations/versions/a.py": b"x", "migrations/versions/b.py": b"y"}
    swapped = {"migrations/versions/a.py": b"y", "migrations/versions/b.py": b"x"}
    assert migration_fingerprint(a) != migration_fingerprint(swapped)


def test_without_globs_every_given_file_counts_and_paths_are_normalised() -> None:
    only_migrations = {k: v for k, v in TREE.items() if k.startswith("migrations/versions/")}
    assert migration_fingerprint(only_migrations) == BASE
    dotted = {f"./{k}": v for k, v in only_migrations.items()}
    assert migration_fingerprint(dotted) == BASE
    assert len(BASE) == 64 and int(BASE, 16) >= 0


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
