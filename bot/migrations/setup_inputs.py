"""The files a policy's `sandbox.setup` commands read, hashed: what the setup depends on.

The requirement files the commands name (followed through `-r`/`-c`; for a named directory,
its packaging metadata), or when they name none, the root's `requirements*.txt`,
`pyproject.toml`, `setup.cfg` and `setup.py`. Read without running anything; the sandbox
keys its cached virtualenv on them (`bot.sandbox.environment`), and an approval covers them
(`bot.migrations.inputs`).
"""

from __future__ import annotations

import hashlib
import itertools
import shlex
from pathlib import Path

ROOT_PATTERNS = ("requirements*.txt", "pyproject.toml", "setup.cfg", "setup.py")
PACKAGING_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
INCLUDE_OPTIONS = ("-r", "--requirement", "-c", "--constraint")
MAX_HASHED_BYTES = 16 * 1024**2  # per file: a named file is hashed, never read without end


def setup_input_files(root: Path, commands: list[str]) -> dict[str, str]:
    """Repository-relative path -> sha256 of the files the commands name, else the root's."""
    digests: dict[str, str] = {}
    for command in commands:
        for token in _tokens(command):
            _add_named(root, root / token, digests)
    if not digests:
        for pattern in ROOT_PATTERNS:
            for path in sorted(root.glob(pattern)):
                _add_file(root, path, digests)
    return digests


def _tokens(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: the shell will say so; hash what we can
        words = command.split()
    tokens = []
    for word in words:
        _, equals, value = word.partition("=")
        tokens.append(value if equals and word.startswith("--") else word)
    return [t for t in tokens if t and not t.startswith("-")]


def _add_named(root: Path, candidate: Path, digests: dict[str, str]) -> None:
    path = _inside(root, candidate)
    if path is None:
        return
    if path.is_dir():
        for name in PACKAGING_FILES:
            _add_file(root, path / name, digests)
    elif _add_file(root, path, digests) and path.suffix in (".txt", ".in"):
        for included in _includes(path):  # -r / -c lines of a requirement file
            _add_named(root, path.parent / included, digests)


def _add_file(root: Path, candidate: Path, digests: dict[str, str]) -> bool:
    path = _inside(root, candidate)
    if path is None or not path.is_file():
        return False
    relative = path.relative_to(root).as_posix()
    if relative in digests:
        return False  # seen already (and a requirement file including itself ends here)
    with path.open("rb") as stream:
        digests[relative] = hashlib.sha256(stream.read(MAX_HASHED_BYTES)).hexdigest()
    return True


def _inside(root: Path, candidate: Path) -> Path | None:
    """The resolved path if it stays inside the repository: a symlink to /dev/zero or to a
    host file is not the repository's and is never read."""
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        return None
    if resolved != root and root not in resolved.parents:
        return None
    return resolved


def _includes(requirements: Path) -> list[str]:
    names = []
    text = requirements.read_bytes()[:MAX_HASHED_BYTES].decode("utf-8", errors="replace")
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        for option, value in itertools.pairwise(words):
            if option in INCLUDE_OPTIONS:
                names.append(value)
        names += [w.split("=", 1)[1] for w in words if w.startswith(("--requirement=", "-r="))]
    return names
