"""Read files as they are at a git ref, without checking out over the user's work tree.

Uses plumbing only (`rev-parse`, `ls-tree`, `cat-file --batch`): no hooks, no filters, no
index. Paths are relative to `repo_root`, which may be a subdirectory of the git work tree.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bot.analysis.migration_model import MigrationFile
from bot.errors import UserError
from bot.migrations.project import AlembicProject
from bot.migrations.scan import is_revision_file_name, scan_source

_SYMLINK_MODE = "120000"
_EXECUTABLE_MODE = "100755"
_GIT_TIMEOUT_S = 120


@dataclass(frozen=True)
class _Entry:
    mode: str
    oid: str
    path: str  # relative to repo_root, '/' separated


def files_at_ref(repo_root: Path, ref: str, rel_dirs: list[str]) -> dict[str, bytes]:
    """Regular files under `rel_dirs` (recursively) at `ref`: repo-relative path -> content."""
    commit = resolve_commit(repo_root, ref)
    entries = [entry for entry in _tree_entries(repo_root, commit, rel_dirs) if _is_file(entry)]
    blobs = _read_blobs(repo_root, [entry.oid for entry in entries])
    return {entry.path: blobs[entry.oid] for entry in entries}


def scan_files_at_ref(
    repo_root: Path,
    ref: str,
    versions: AlembicProject | list[str],
    *,
    recursive: bool = False,
) -> list[MigrationFile]:
    """The revision files as they are at `ref`, of a project's version directories or of
    the given repo-relative directories (direct children only unless `recursive`)."""
    if isinstance(versions, AlembicProject):
        rel_dirs = [versions.rel(directory) for directory in versions.versions_dirs]
        recursive = recursive or versions.recursive_versions
    else:
        rel_dirs = list(versions)
    files = files_at_ref(repo_root, ref, rel_dirs)
    scanned: list[MigrationFile] = []
    for path, data in sorted(files.items()):
        if not _is_revision_path(path, rel_dirs, recursive):
            continue
        try:
            scanned.append(scan_source(data, path))
        except UserError as exc:
            raise UserError(f"{exc} (at git ref {ref!r})") from exc
    return scanned


def read_file_at_ref(repo_root: Path, ref: str, rel_path: str) -> str | None:
    """The text of one file at `ref`; None when the file does not exist there."""
    commit = resolve_commit(repo_root, ref)
    entries = [e for e in _tree_entries(repo_root, commit, [rel_path]) if _is_file(e)]
    match = [entry for entry in entries if entry.path == PurePosixPath(rel_path).as_posix()]
    if not match:
        return None
    data = _read_blobs(repo_root, [match[0].oid])[match[0].oid]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"is not UTF-8 text at git ref {ref!r}", path=rel_path) from exc


def export_tree(repo_root: Path, ref: str, dest: Path) -> None:
    """Write the tree of `ref` under `repo_root` into `dest` (for `--head REF`).

    Symbolic links are kept only when they point inside `dest`; submodules are skipped.
    """
    commit = resolve_commit(repo_root, ref)
    entries = _tree_entries(repo_root, commit, ["."])
    blobs = _read_blobs(repo_root, [entry.oid for entry in entries if _is_blob(entry)])
    root = dest.resolve()
    for entry in entries:
        if not _is_blob(entry):
            continue
        target = _safe_target(root, entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.mode == _SYMLINK_MODE:
            _write_symlink(root, target, blobs[entry.oid])
        else:
            target.write_bytes(blobs[entry.oid])
            if entry.mode == _EXECUTABLE_MODE:
                target.chmod(0o755)


def resolve_commit(repo_root: Path, ref: str) -> str:
    """The commit id `ref` names; UserError when `repo_root` is not in a git repository or
    the ref is unknown."""
    _require_repository(repo_root)
    args = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
    commit = _run_git(repo_root, args)
    if commit.returncode != 0:
        raise UserError(f"unknown git ref {ref!r} in {repo_root}")
    return commit.stdout.decode().strip()


def git_toplevel(path: Path) -> Path | None:
    """The top of the git work tree holding `path`; None outside git (or without git)."""
    top = _try_git(path, ["rev-parse", "--show-toplevel"])
    return Path(top).resolve() if top else None


def default_branch(repo_root: Path) -> str | None:
    """The branch a change merges into: origin/HEAD's branch, else main, else master (local,
    then origin's); None when there is none."""
    remote_head = _try_git(repo_root, ["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"])
    if remote_head and remote_head.startswith("refs/remotes/"):
        return remote_head.removeprefix("refs/remotes/")
    for ref in (
        "refs/heads/main",
        "refs/heads/master",
        "refs/remotes/origin/main",
        "refs/remotes/origin/master",
    ):
        if _try_git(repo_root, ["rev-parse", "--verify", "--quiet", ref]) is not None:
            return ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")
    return None


def merge_base(repo_root: Path, ref: str, other: str) -> str | None:
    """The commit where `ref` and `other` meet; None when they share no history (or one of them
    does not exist, e.g. a branch without commits, or a shallow clone)."""
    return _try_git(repo_root, ["merge-base", "--end-of-options", ref, other])


def branch_name(repo_root: Path, ref: str) -> str | None:
    """The branch `ref` names (`main` for main, refs/heads/main, origin/main); None when it
    names no branch (a commit, a tag)."""
    if ref.startswith("-"):
        return None
    full = _try_git(repo_root, ["rev-parse", "--symbolic-full-name", ref])
    if not full:
        return None
    if full.startswith("refs/heads/"):
        return full.removeprefix("refs/heads/")
    if full.startswith("refs/remotes/"):
        _remote, _, name = full.removeprefix("refs/remotes/").partition("/")
        return name or None
    return None


# --- git plumbing ----------------------------------------------------------------------------


def _require_repository(repo_root: Path) -> None:
    if not repo_root.is_dir():
        raise UserError(f"{repo_root} is not a directory")
    result = _run_git(repo_root, ["rev-parse", "--is-inside-work-tree"])
    if result.returncode != 0 or result.stdout.strip() != b"true":
        raise UserError(
            f"{repo_root} is not inside a git work tree; --base and --head read revisions from git"
        )


def _try_git(repo_root: Path, args: list[str]) -> str | None:
    """The output of a git query (one line, stripped); None when git fails or is missing."""
    if not repo_root.is_dir():
        return None
    try:
        result = _run_git(repo_root, args)
    except UserError:
        return None
    output = result.stdout.decode("utf-8", "replace").strip()
    return output if result.returncode == 0 and output else None


def _tree_entries(repo_root: Path, commit: str, rel_dirs: list[str]) -> list[_Entry]:
    # Run in repo_root: ls-tree takes and prints paths relative to the current directory.
    pathspecs = [_pathspec(rel_dir) for rel_dir in rel_dirs]
    output = _git(repo_root, ["ls-tree", "-r", "-z", commit, "--", *pathspecs])
    entries: list[_Entry] = []
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        if kind in {"blob", "commit"}:
            entries.append(_Entry(mode=mode, oid=oid, path=raw_path.decode("utf-8", "replace")))
    return entries


def _pathspec(rel_dir: str) -> str:
    # Literal, not a glob, so a directory named "v[1]" means itself.
    return f":(literal){rel_dir or '.'}"


def _read_blobs(repo_root: Path, oids: list[str]) -> dict[str, bytes]:
    unique = list(dict.fromkeys(oids))
    if not unique:
        return {}
    output = _git(repo_root, ["cat-file", "--batch"], stdin="\n".join(unique).encode() + b"\n")
    blobs: dict[str, bytes] = {}
    position = 0
    for oid in unique:
        header_end = output.index(b"\n", position)
        header = output[position:header_end].decode().split()
        if len(header) != 3:
            raise UserError(f"git cat-file could not read object {oid} in {repo_root}")
        size = int(header[2])
        start = header_end + 1
        blobs[oid] = output[start : start + size]
        position = start + size + 1  # content is followed by a newline
    return blobs


def _git(repo_root: Path, args: list[str], stdin: bytes | None = None) -> bytes:
    result = _run_git(repo_root, args, stdin)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit status {result.returncode}"
        raise UserError(f"git {args[0]} failed in {repo_root}: {detail}")
    return result.stdout


def _run_git(
    repo_root: Path, args: list[str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-c", "core.fsmonitor=false", *args],
            cwd=repo_root,
            input=stdin,
            capture_output=True,
            env=_git_environment(),
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise UserError("git is not installed; --base and --head need it") from exc
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"git {args[0]} took longer than {_GIT_TIMEOUT_S}s in {repo_root}") from exc


def _git_environment() -> dict[str, str]:
    """The caller's environment without variables that would point git elsewhere."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"}
    }
    environment.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    return environment


# --- helpers ---------------------------------------------------------------------------------


def _is_blob(entry: _Entry) -> bool:
    return entry.mode != "160000"  # submodule commits have no content here


def _is_file(entry: _Entry) -> bool:
    return _is_blob(entry) and entry.mode != _SYMLINK_MODE


def _is_revision_path(path: str, rel_dirs: list[str], recursive: bool) -> bool:
    pure = PurePosixPath(path)
    if "__pycache__" in pure.parts or not is_revision_file_name(pure.name):
        return False
    for rel_dir in rel_dirs:
        directory = PurePosixPath(rel_dir)
        if directory == PurePosixPath("."):
            inside = True
            direct = len(pure.parts) == 1
        else:
            inside = pure.is_relative_to(directory)
            direct = pure.parent == directory
        if inside and (recursive or direct):
            return True
    return False


def _safe_target(root: Path, rel_path: str) -> Path:
    pure = PurePosixPath(rel_path)
    if pure.is_absolute() or ".." in pure.parts:
        raise UserError(f"refusing to export {rel_path!r}: it leaves the destination")
    target = root.joinpath(*pure.parts)
    if not target.parent.resolve().is_relative_to(root):
        raise UserError(f"refusing to export {rel_path!r}: a parent is a link out of {root}")
    return target


def _write_symlink(root: Path, target: Path, link_text: bytes) -> None:
    link = link_text.decode("utf-8", "replace")
    if os.path.isabs(link):
        return
    pointed = (target.parent / link).resolve()
    if pointed.is_relative_to(root):
        target.symlink_to(link)
