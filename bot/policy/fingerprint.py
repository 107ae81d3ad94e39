"""The migration fingerprint: one hash of the migration files at a commit.

An approval counts only while the migrations it saw are the migrations now. Comparing
fingerprints (not commit SHAs) lets unrelated pushes keep approvals, while any change
to a migration file (content, name, a file added or removed) invalidates them.

Pure: file contents in, a hex digest out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

_FORMAT = b"migsafe-migration-fingerprint-v1\n"  # a new format never equals an old digest


def migration_fingerprint(files: Mapping[str, bytes], globs: Iterable[str] | None = None) -> str:
    """sha256 over the sorted (path, sha256(content)) of the migration files in `files`.

    `files` maps repository-relative paths to contents. With `globs` (e.g.
    `policy.migration_globs(script_location)`), only the files matching one of them are
    migrations and the others are ignored; without, every file given is a migration.
    """
    patterns = list(globs) if globs is not None else None
    entries = sorted(
        (normalize_path(path), hashlib.sha256(content).hexdigest())
        for path, content in files.items()
        if patterns is None or matches_any(path, patterns)
    )
    digest = hashlib.sha256(_FORMAT)
    for path, content_hash in entries:
        # NUL cannot occur in a path, so no two listings serialise alike.
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(content_hash.encode("ascii") + b"\n")
    return digest.hexdigest()


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
