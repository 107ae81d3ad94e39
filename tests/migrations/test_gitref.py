"""Reading revisions at a git ref without touching the work tree (real git repositories)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.analysis.revision_graph import RevisionGraph
from bot.errors import UserError
from bot.migrations.gitref import (
    export_tree,
    files_at_ref,
    read_file_at_ref,
    resolve_commit,
    scan_files_at_ref,
)
from bot.migrations.project import find_project
from bot.migrations.scan import scan_project

LINEAR = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "linear"
NEW_REVISION = "migrations/versions/3c4d5e6f7a8b_drop_legacy_name.py"


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=migsafe", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The linear project committed without its last revision, then with it."""
    root = tmp_path / "repo"
    shutil.copytree(LINEAR, root, ignore=shutil.ignore_patterns("__pycache__"))
    latest = root / NEW_REVISION
    content = latest.read_text()
    latest.unlink()
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "two revisions")
    git(root, "tag", "before")
    latest.write_text(content)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "third revision")
    return root


def test_files_at_ref_reads_the_base_without_the_new_revision(repo: Path) -> None:
    before = files_at_ref(repo, "before", ["migrations/versions"])
    assert sorted(before) == [
        "migrations/versions/1a2b3c4d5e6f_create_users.py",
        "migrations/versions/2b3c4d5e6f7a_add_email.py",
        "migrations/versions/__init__.py",
    ]
    assert before["migrations/versions/2b3c4d5e6f7a_add_email.py"] == (
        (repo / "migrations/versions/2b3c4d5e6f7a_add_email.py").read_bytes()
    )
    assert NEW_REVISION in files_at_ref(repo, "HEAD", ["migrations/versions"])


def test_work_tree_is_untouched(repo: Path) -> None:
    (repo / NEW_REVISION).write_text("revision = 'edited'\n")
    files_at_ref(repo, "before", ["migrations"])
    assert (repo / NEW_REVISION).read_text() == "revision = 'edited'\n"
    assert git(repo, "status", "--porcelain") == f"M {NEW_REVISION}"


def test_new_compared_to_the_base_ref(repo: Path) -> None:
    project = find_project(repo)
    base_ids = {f.revision for f in scan_files_at_ref(repo, "before", project)}
    assert base_ids == {"1a2b3c4d5e6f", "2b3c4d5e6f7a"}
    graph = RevisionGraph(scan_project(project))
    new = graph.new_compared_to(base_ids)
    assert new == ["3c4d5e6f7a8b"]
    assert graph.base_point(new) == ("2b3c4d5e6f7a",)


def test_repo_root_may_be_a_subdirectory_of_the_work_tree(tmp_path: Path) -> None:
    outer = tmp_path / "mono"
    shutil.copytree(LINEAR, outer / "services" / "db", ignore=shutil.ignore_patterns("__pycache__"))
    git(outer, "init", "-q")
    git(outer, "add", ".")
    git(outer, "commit", "-q", "-m", "init")
    sub = outer / "services" / "db"
    files = scan_files_at_ref(sub, "HEAD", find_project(sub))
    assert [f.revision for f in files] == ["1a2b3c4d5e6f", "2b3c4d5e6f7a", "3c4d5e6f7a8b"]
    assert files[0].path == "migrations/versions/1a2b3c4d5e6f_create_users.py"


def test_unknown_ref_is_a_user_error(repo: Path) -> None:
    with pytest.raises(UserError) as error:
        files_at_ref(repo, "origin/nope", ["migrations"])
    assert str(error.value) == f"unknown git ref 'origin/nope' in {repo}"


def test_ref_that_looks_like_an_option_is_just_unknown(repo: Path) -> None:
    with pytest.raises(UserError, match="unknown git ref '--output=x'"):
        resolve_commit(repo, "--output=x")


def test_not_a_git_repository_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not inside a git work tree"):
        files_at_ref(tmp_path, "HEAD", ["."])


def test_broken_file_at_the_ref_names_file_and_ref(repo: Path) -> None:
    (repo / "migrations/versions/9999_bad.py").write_text("revision = (\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "bad")
    with pytest.raises(UserError) as error:
        scan_files_at_ref(repo, "HEAD", find_project(repo))
    assert "migrations/versions/9999_bad.py: line" in str(error.value)
    assert "(at git ref 'HEAD')" in str(error.value)


def test_export_tree_writes_the_ref_and_keeps_inside_links(repo: Path, tmp_path: Path) -> None:
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "inside").symlink_to("alembic.ini")
    (repo / "outside").symlink_to("/etc/passwd")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "extras")
    dest = tmp_path / "export"
    export_tree(repo, "before", dest)
    assert not (dest / NEW_REVISION).exists()
    assert (dest / "alembic.ini").read_bytes() == (repo / "alembic.ini").read_bytes()
    export_tree(repo, "HEAD", dest)
    assert (dest / NEW_REVISION).is_file()
    assert (dest / "run.sh").stat().st_mode & 0o111
    assert (dest / "inside").is_symlink()
    assert not (dest / "outside").exists() and not (dest / "outside").is_symlink()
    assert find_project(dest).script_location == dest.resolve() / "migrations"


def test_scan_files_at_ref_with_directories(repo: Path) -> None:
    files = scan_files_at_ref(repo, "before", ["migrations/versions"])
    assert [f.revision for f in files] == ["1a2b3c4d5e6f", "2b3c4d5e6f7a"]
    nested = repo / "migrations" / "versions" / "2024" / "4444aaaa_nested.py"
    nested.parent.mkdir()
    nested.write_text("revision = '4444aaaa'\ndown_revision = '3c4d5e6f7a8b'\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "nested")
    flat = scan_files_at_ref(repo, "HEAD", ["migrations/versions"])
    deep = scan_files_at_ref(repo, "HEAD", ["migrations/versions"], recursive=True)
    assert "4444aaaa" not in {f.revision for f in flat}
    assert "4444aaaa" in {f.revision for f in deep}


def test_read_file_at_ref(repo: Path) -> None:
    assert read_file_at_ref(repo, "before", "alembic.ini") == (repo / "alembic.ini").read_text()
    assert read_file_at_ref(repo, "before", NEW_REVISION) is None
    assert read_file_at_ref(repo, "before", ".github/migsafe.yml") is None
    with pytest.raises(UserError, match="unknown git ref 'nope'"):
        read_file_at_ref(repo, "nope", "alembic.ini")
