"""The check's private copy of the tree it checks, and naming the user's tree in errors.

The children that run repository code see this copy read-only; every path they report is
relative to it, and errors about it name the user's tree (or git ref) instead.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.errors import UserError
from bot.migrations.gitref import export_tree

_NOT_COPIED = shutil.ignore_patterns(".git", "node_modules", ".venv", "venv", "__pycache__", ".tox")


@contextmanager
def working_copy(repo_root: Path, head_ref: str | None) -> Iterator[Path]:
    """A private copy of the tree to check: the children see it read-only (setup commands may
    write in it), and every path they report is relative to it."""
    with tempfile.TemporaryDirectory(prefix="migsafe-tree-") as tmp:
        dest = Path(tmp) / "tree"
        if head_ref:
            dest.mkdir()
            export_tree(repo_root, head_ref, dest)
        else:
            _copy_tree(repo_root, dest)
        yield dest


def folder_in_repository(folder: Path) -> str:
    """`backend/` for a folder of a repository (the first folder up holding `.git`); "" at
    its root or outside one."""
    for directory in (folder, *folder.parents):
        if (directory / ".git").exists():
            relative = folder.relative_to(directory).as_posix()
            return "" if relative == "." else relative + "/"
    return ""


def _copy_tree(source: Path, dest: Path) -> None:
    """The tree, without what never matters to a check (.git, virtualenvs), nor what is not
    a file, folder or link (sockets, FIFOs, devices: a local PostgreSQL's socket), nor the
    copy itself (a PATH holding the temporary folder)."""
    skipped_root = dest.parent.resolve()

    def ignore(folder: str, names: list[str]) -> set[str]:
        ignored = set(_NOT_COPIED(folder, names))
        for name in names:
            path = Path(folder, name)
            if path.resolve() == skipped_root or not (
                path.is_symlink() or path.is_file() or path.is_dir()
            ):
                ignored.add(name)
        return ignored

    try:
        shutil.copytree(source, dest, ignore=ignore, symlinks=True)
    except shutil.Error as error:  # [(source, destination, why), ...]: the first says enough
        where, _, why = error.args[0][0]
        raise UserError(f"cannot copy the tree to check: {why}", path=str(where)) from None
    except OSError as error:
        raise UserError(
            f"cannot copy the tree to check: {error.strerror or error}", path=str(source)
        ) from None


@contextmanager
def named_as_user_gave(work_root: Path, shown_as: str) -> Iterator[None]:
    """Errors about the private working copy name the user's tree (or ref) instead."""
    try:
        yield
    except UserError as error:
        raise UserError(str(error).replace(str(work_root), shown_as)) from None
