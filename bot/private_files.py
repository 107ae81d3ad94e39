"""Files only their owner may read (mode 0600), written so that a failure halfway loses
nothing: `migsafe app create` writes credentials that GitHub gives only once.

`stage` writes the text to a new temporary file in the target's own folder
(`tempfile.mkstemp`: a random name opened with O_EXCL and mode 0600, so nothing another user
placed in the folder beforehand is opened or followed) and flushes it to disk. `place` then
gives it the target's name in one step: `os.replace`, or with `keep_existing` a hard link,
which fails rather than replace a file that appeared meanwhile. Staging every file before
placing any means that all of it is on disk, in full, before any name changes; where placing
fails, the staged file stays where `Staged.where` says, for the person to move.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Staged:
    temporary: Path
    target: Path
    placed: bool = False

    @property
    def where(self) -> Path:
        """Where the text is now."""
        return self.target if self.placed else self.temporary


def stage(target: Path, text: str) -> Staged:
    """`text` in a new 0600 file beside `target`, on disk."""
    descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)  # incomplete: nothing worth keeping
        raise
    return Staged(temporary, target)


def place(staged: Staged, *, keep_existing: bool) -> None:
    """The staged file under its target's name, the rename on disk too."""
    if keep_existing:
        os.link(staged.temporary, staged.target)
        staged.placed = True
        staged.temporary.unlink()
    else:
        os.replace(staged.temporary, staged.target)
        staged.placed = True
    _fsync_folder(staged.target.parent)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
