"""Which changed files are migrations; who may ask for a re-run."""

from __future__ import annotations

import pytest

from bot.github.pulls import PullFile, can_write, touches_migrations

GLOBS = ["migrations/versions/*.py"]


@pytest.mark.parametrize(
    ("files", "globs", "touched"),
    [
        (
            ["migrations/versions/0001_a.py", "app/models.py"],
            GLOBS,
            ["migrations/versions/0001_a.py"],
        ),
        (["migrations/versions/sub/0001.py"], GLOBS, []),  # `*` stays in one directory
        (["README.md"], GLOBS, []),
        (
            ["svc/db/migrations/versions/0002.py"],
            ["**/versions/*.py"],
            ["svc/db/migrations/versions/0002.py"],
        ),
        (["versions/0002.py"], ["**/versions/*.py"], ["versions/0002.py"]),  # `**/` spans none
        (["alembic/versions/0003.py"], None, ["alembic/versions/0003.py"]),  # the default
        (["alembic/versions/0003.pyc"], None, []),
        (["db/x.sql", "db/a/b/c.sql"], ["db/**"], ["db/x.sql", "db/a/b/c.sql"]),
    ],
)
def test_touches_migrations(files: list[str], globs: list[str] | None, touched: list[str]) -> None:
    if globs is None:
        assert touches_migrations(files) == touched
    else:
        assert touches_migrations(files, globs) == touched


def test_a_migration_renamed_away_still_counts() -> None:
    moved = PullFile(
        filename="attic/0001_a.py",
        status="renamed",
        previous_filename="migrations/versions/0001_a.py",
    )
    assert touches_migrations([moved], GLOBS) == ["migrations/versions/0001_a.py"]


def test_removed_migration_counts() -> None:
    removed = PullFile(filename="migrations/versions/0001_a.py", status="removed")
    assert touches_migrations([removed], GLOBS) == ["migrations/versions/0001_a.py"]


@pytest.mark.parametrize(
    ("permission", "allowed"),
    [
        ("admin", True),
        ("maintain", True),
        ("write", True),
        ("triage", False),
        ("read", False),
        ("none", False),
        ("", False),
    ],
)
def test_can_write(permission: str, allowed: bool) -> None:
    assert can_write(permission) is allowed
