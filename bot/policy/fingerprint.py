"""The approval fingerprint: one hash of what a check runs, at a commit.

An approval counts only while what it saw run is what runs now. Comparing fingerprints
(not commit SHAs) lets unrelated pushes keep approvals, while any change to a covered
file (content, name, a file added or removed) invalidates them. Which files are covered
(the revisions, `env.py`, `script.py.mako`, `alembic.ini`, the setup's requirement files
and the repository modules they import) is `bot.migrations.inputs`' business; this
module only hashes.

Pure: per-file digests in, a hex digest out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

# A new format never equals an old digest: after an upgrade that widens what is covered,
# approvals given before it are stale once (fail safe), not silently kept.
_FORMAT = b"migsafe-approval-fingerprint-v2\n"
_TRUNCATED = b"truncated\n"


def fingerprint(digests: Mapping[str, str], *, truncated: bool = False) -> str:
    """sha256 over the sorted (path, digest) pairs: repository-relative paths to the
    sha256 hex digest of each file. `truncated` (the import walk hit a bound) is part of
    the hash, so a fingerprint that covers less never equals one that covers all."""
    entries = sorted((normalize_path(path), digest) for path, digest in digests.items())
    hasher = hashlib.sha256(_FORMAT)
    for path, digest in entries:
        # NUL cannot occur in a path, so no two listings serialise alike.
        hasher.update(path.encode("utf-8", "surrogateescape") + b"\0")
        hasher.update(digest.encode("ascii") + b"\n")
    if truncated:
        hasher.update(_TRUNCATED)
    return hasher.hexdigest()


def content_digest(content: bytes) -> str:
    """The per-file digest `fingerprint` expects."""
    return hashlib.sha256(content).hexdigest()


def normalize_path(path: str) -> str:
    """A repository-relative POSIX path: `\\` as `/`, no leading `./`."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def matches_any(path: str, globs: Iterable[str]) -> bool:
    """Whether `path` matches one of the repository-relative glob patterns."""
    normalized = normalize_path(path)
    return any(_glob_regex(normalize_path(glob)).fullmatch(normalized) for glob in globs)


@lru_cache(maxsize=256)
def _glob_regex(glob: str) -> re.Pattern[str]:
    """Glob as in git and the policy file: `*` and `?` stay within one directory, `**/`
    spans any number of them (none included), `[...]` is a character class."""
    out: list[str] = []
    index = 0
    while index < len(glob):
        char = glob[index]
        if glob.startswith("**/", index):
            out.append("(?:[^/]*/)*")
            index += 3
            continue
        if glob.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := glob.find("]", index + 2)) != -1:
            body = glob[index + 1 : end]
            negate = body.startswith(("!", "^"))
            body = body[1:] if negate else body
            out.append(f"[{'^' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
            index = end + 1
            continue
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))
