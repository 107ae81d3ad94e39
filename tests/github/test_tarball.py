"""Safe extraction of hand-made hostile tarballs."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.github.tarball import Limits, UnsafeArchive, safe_extract

TOP = "octo-repo-0123abc"
Entry = Callable[[tarfile.TarFile], None]


def regular(name: str, data: bytes = b"x", mode: int = 0o644) -> Entry:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        archive.addfile(info, io.BytesIO(data))

    return add


def directory(name: str) -> Entry:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        archive.addfile(info)

    return add


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Entry:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        archive.addfile(info)

    return add


def device(name: str) -> Entry:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = 1, 3
        archive.addfile(info)

    return add


def make_tar(tmp_path: Path, *entries: Entry) -> Path:
    path = tmp_path / "archive.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        archive.pax_headers = {"comment": "0123abc"}  # as `git archive` writes
        for add in entries:
            add(archive)
    return path


def tree(tmp_path: Path) -> Path:
    return tmp_path / "tree"


def test_github_layout_is_extracted_without_the_top_directory(tmp_path: Path) -> None:
    tar = make_tar(
        tmp_path,
        directory(f"{TOP}/"),
        directory(f"{TOP}/migrations/versions/"),
        regular(f"{TOP}/migrations/versions/0001.py", b"revision = '0001'\n"),
        regular(f"{TOP}/run.sh", b"#!/bin/sh\n", mode=0o4755),
        link(f"{TOP}/latest.py", "migrations/versions/0001.py"),
        link(f"{TOP}/copy.py", f"{TOP}/run.sh", kind=tarfile.LNKTYPE),
    )
    result = safe_extract(tar, tree(tmp_path))
    root = tree(tmp_path)
    assert (root / "migrations/versions/0001.py").read_bytes() == b"revision = '0001'\n"
    assert (root / "latest.py").is_symlink()
    assert (root / "latest.py").read_bytes() == b"revision = '0001'\n"
    assert (root / "copy.py").read_bytes() == b"#!/bin/sh\n"
    assert (root / "run.sh").stat().st_mode & 0o7777 == 0o755  # no setuid
    assert result.files == 3 and result.dropped == []


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([regular("/etc/cron.d/evil")], "absolute path"),
        ([directory(f"{TOP}/"), regular(f"{TOP}/../evil")], "'..'"),
        ([directory(f"{TOP}/"), regular(f"{TOP}/a/../../evil")], "'..'"),
        ([regular(f"{TOP}/a"), regular("other-top/b")], "more than one top-level"),
        ([regular(f"{TOP}/a"), directory(f"{TOP}/a/b/")], "conflicting entries"),
    ],
)
def test_hostile_paths_abort(tmp_path: Path, entries: list[Entry], reason: str) -> None:
    with pytest.raises(UnsafeArchive, match=reason):
        safe_extract(make_tar(tmp_path, *entries), tree(tmp_path))
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(
    ("entries", "dropped"),
    [
        ([link(f"{TOP}/passwd", "/etc/passwd")], "passwd: symbolic link out of the tree"),
        ([link(f"{TOP}/up", "../../outside")], "up: symbolic link out of the tree"),
        ([link(f"{TOP}/a/up", "../..")], "a/up: symbolic link"),
        (
            [link(f"{TOP}/hard", "/etc/passwd", kind=tarfile.LNKTYPE)],
            "hard: hard link out of the tree",
        ),
        (
            [link(f"{TOP}/hard", "other-top/x", kind=tarfile.LNKTYPE)],
            "hard: hard link out of the tree",
        ),
        ([device(f"{TOP}/null")], "null: not a regular file"),
    ],
)
def test_links_out_and_devices_are_dropped(
    tmp_path: Path, entries: list[Entry], dropped: str
) -> None:
    root = tree(tmp_path)
    result = safe_extract(make_tar(tmp_path, directory(f"{TOP}/"), *entries), root)
    assert [d for d in result.dropped if d.startswith(dropped)], result.dropped
    assert [p for p in root.rglob("*") if not p.is_dir()] == []


def test_a_chain_of_innocent_looking_links_cannot_escape(tmp_path: Path) -> None:
    # `here -> .` is the root; `here/../x` resolves out of it although it looks inside.
    root = tree(tmp_path)
    (tmp_path / "secret").write_text("outside")
    tar = make_tar(
        tmp_path,
        directory(f"{TOP}/"),
        directory(f"{TOP}/d/"),
        link(f"{TOP}/d/here", ".."),
        link(f"{TOP}/escape", "d/here/../secret"),
    )
    result = safe_extract(tar, root)
    assert not (root / "escape").is_symlink()
    assert any(d.startswith("escape") for d in result.dropped)
    assert (root / "d/here").is_symlink()  # d/.. is the root itself: fine


def test_no_file_is_written_through_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tar = make_tar(
        tmp_path,
        directory(f"{TOP}/"),
        link(f"{TOP}/out", str(outside)),
        regular(f"{TOP}/out/planted", b"pwned"),
    )
    root = tree(tmp_path)
    result = safe_extract(tar, root)
    assert list(outside.iterdir()) == []
    assert (root / "out/planted").read_bytes() == b"pwned"  # a plain directory in the tree
    assert any(d.startswith("out:") for d in result.dropped)


def test_too_many_files(tmp_path: Path) -> None:
    entries = [regular(f"{TOP}/f{i}") for i in range(11)]
    with pytest.raises(UnsafeArchive, match="more than 10 entries"):
        safe_extract(make_tar(tmp_path, *entries), tree(tmp_path), Limits(max_files=10))


def test_too_big(tmp_path: Path) -> None:
    entries = [regular(f"{TOP}/f{i}", b"x" * 600) for i in range(2)]
    with pytest.raises(UnsafeArchive, match="more than 1000 bytes"):
        safe_extract(make_tar(tmp_path, *entries), tree(tmp_path), Limits(max_bytes=1000))


def test_not_a_tar(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"<html>not an archive</html>")
    with pytest.raises(UnsafeArchive, match="not a readable tar"):
        safe_extract(junk, tree(tmp_path))


def test_hard_links_count_towards_the_size_limit(tmp_path: Path) -> None:
    entries = [regular(f"{TOP}/big", b"x" * 600)]
    entries += [link(f"{TOP}/copy{i}", f"{TOP}/big", kind=tarfile.LNKTYPE) for i in range(3)]
    with pytest.raises(UnsafeArchive, match="more than 1000 bytes"):
        safe_extract(make_tar(tmp_path, *entries), tree(tmp_path), Limits(max_bytes=1000))
