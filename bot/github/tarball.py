"""A repository tree at a ref: the tarball, downloaded and extracted safely.

The archive comes from the pull request's author, so it is hostile: entries with absolute
paths or `..` abort the extraction; links that would lead out of the tree, device files
and FIFOs are dropped; the total size and the number of entries are capped. Symbolic links
are created last, after every file, so no file is ever written through one, and each is
then checked by resolving it for real (a chain of links can escape where each alone
looks harmless). Python's own `filter="data"` is not enough on every 3.11 patch release.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from bot.github.client import RetryingAPI, repo_vars

MiB = 1024 * 1024


class UnsafeArchive(Exception):
    """The archive breaks a rule; `reason` says which (and the entry)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"unsafe archive: {reason}")


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * MiB  # uncompressed total of the files (and the download itself)
    max_files: int = 20_000  # entries of any kind


@dataclass
class Extracted:
    root: Path
    files: int = 0
    bytes: int = 0
    dropped: list[str] = field(default_factory=list)  # "path: why", for the report


async def download_tree(
    api: RetryingAPI,
    repo: str,
    ref: str,
    dest: Path,
    *,
    max_bytes: int = 200 * MiB,
    max_files: int = 20_000,
) -> Path:
    """The repository at `ref`, extracted into `dest` (created; must not exist or be empty)."""
    dest.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="migsafe-", suffix=".tar.gz", dir=dest.parent)
    os.close(handle)
    archive = Path(name)
    try:
        await api.download(
            "/repos/{owner}/{repo}/tarball/{ref}",
            {**repo_vars(repo), "ref": ref},
            archive,
            max_bytes=max_bytes,
        )
        limits = Limits(max_bytes=max_bytes, max_files=max_files)
        # Extracting is disk-bound and can take seconds: off the event loop (web + worker).
        await asyncio.to_thread(safe_extract, archive, dest, limits)
    finally:
        archive.unlink(missing_ok=True)
    return dest


def safe_extract(tar_path: Path, dest: Path, limits: Limits | None = None) -> Extracted:
    """Extract `tar_path` into `dest`, without its single top-level directory."""
    limits = limits or Limits()
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty")
    result = Extracted(root=dest.resolve())
    try:
        with tarfile.open(tar_path, "r:*") as archive:
            _extract(archive, result, limits)
    except (tarfile.TarError, EOFError) as error:
        raise UnsafeArchive(f"not a readable tar archive ({error})") from error
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as error:
        raise UnsafeArchive(f"conflicting entries ({error.filename})") from error
    return result


def _extract(archive: tarfile.TarFile, result: Extracted, limits: Limits) -> None:
    top: str | None = None
    symlinks: list[tuple[PurePosixPath, str]] = []
    entries = 0
    for member in archive:
        entries += 1
        if entries > limits.max_files:
            raise UnsafeArchive(f"more than {limits.max_files} entries")
        parts = _parts(member.name)
        if top is None:
            top = parts[0]
        elif parts[0] != top:
            raise UnsafeArchive(f"{member.name}: more than one top-level directory")
        relative = PurePosixPath(*parts[1:]) if len(parts) > 1 else None
        if relative is None:
            continue  # the top-level directory itself
        if member.isdir():
            _target(result, relative).mkdir(parents=True, exist_ok=True)
        elif member.isreg():
            _write_file(archive, member, relative, result, limits)
        elif member.issym():
            symlinks.append((relative, member.linkname))
        elif member.islnk():
            _copy_hardlink(member, relative, top, result, limits)
        else:
            result.dropped.append(f"{relative}: not a regular file, directory or link")
    _make_symlinks(symlinks, result)


def _parts(name: str) -> tuple[str, ...]:
    """The entry's path components; absolute paths and `..` are refused outright."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"{name}: absolute path")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeArchive(f"{name}: path with '..'")
    if not parts:
        raise UnsafeArchive(f"{name!r}: empty path")
    return parts


def _target(result: Extracted, relative: PurePosixPath) -> Path:
    path = result.root.joinpath(*relative.parts)
    # No symlink exists yet while files are written, so the lexical check is the real one.
    if not path.is_relative_to(result.root):
        raise UnsafeArchive(f"{relative}: outside the tree")
    return path


def _write_file(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    relative: PurePosixPath,
    result: Extracted,
    limits: Limits,
) -> None:
    result.bytes += member.size
    if result.bytes > limits.max_bytes:
        raise UnsafeArchive(f"more than {limits.max_bytes} bytes uncompressed")
    path = _target(result, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise UnsafeArchive(f"{relative}: a file and a directory of the same name")
    source = archive.extractfile(member)
    if source is None:
        raise UnsafeArchive(f"{relative}: unreadable entry")
    with source, path.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    path.chmod(0o755 if member.mode & stat.S_IXUSR else 0o644)
    result.files += 1


def _copy_hardlink(
    member: tarfile.TarInfo, relative: PurePosixPath, top: str, result: Extracted, limits: Limits
) -> None:
    """A hard link may only name a file extracted earlier from the same tree: copy it."""
    try:
        parts = _parts(member.linkname)
    except UnsafeArchive:
        result.dropped.append(f"{relative}: hard link out of the tree")
        return
    if parts[0] != top or len(parts) < 2:
        result.dropped.append(f"{relative}: hard link out of the tree")
        return
    source = _target(result, PurePosixPath(*parts[1:]))
    if not source.is_file() or source.is_symlink():
        result.dropped.append(f"{relative}: hard link to a missing file")
        return
    result.bytes += source.stat().st_size  # a copy costs the space of a file
    if result.bytes > limits.max_bytes:
        raise UnsafeArchive(f"more than {limits.max_bytes} bytes uncompressed")
    path = _target(result, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    result.files += 1


def _make_symlinks(symlinks: list[tuple[PurePosixPath, str]], result: Extracted) -> None:
    """Create the links whose target stays inside, in the real directory of their parent
    (resolved now: a directory never turns into a link later, so that location is stable)."""
    created: list[tuple[PurePosixPath, Path]] = []
    for relative, target in symlinks:
        if target.startswith("/") or not _lexically_inside(relative, target):
            result.dropped.append(f"{relative}: symbolic link out of the tree")
            continue
        parent = Path(os.path.realpath(_target(result, relative).parent))
        if not parent.is_relative_to(result.root) or not parent.is_dir():
            result.dropped.append(f"{relative}: symbolic link in a missing or outside directory")
            continue
        path = parent / relative.name
        if path.exists() or path.is_symlink():
            result.dropped.append(f"{relative}: symbolic link over an existing entry")
            continue
        os.symlink(target, path)
        created.append((relative, path))
    _remove_escaping(created, result)


def _lexically_inside(link: PurePosixPath, target: str) -> bool:
    depth = len(link.parts) - 1  # directories above the link, inside the tree
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


def _remove_escaping(created: list[tuple[PurePosixPath, Path]], result: Extracted) -> None:
    """Resolve every link for real (chains included); drop those leading out, until none do."""
    remaining = list(created)
    changed = True
    while changed:
        changed = False
        for relative, path in list(remaining):
            if not Path(os.path.realpath(path)).is_relative_to(result.root):
                path.unlink()
                remaining.remove((relative, path))
                result.dropped.append(f"{relative}: symbolic link out of the tree")
                changed = True
