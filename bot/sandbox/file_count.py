"""A bound on the number of files a contained child creates in its private tmpfs mounts.

bubblewrap sizes each tmpfs (`--size`) but has no option for its file count, so each mount
gets the kernel's default (half the RAM's pages: millions of files), and every empty file
costs about 1 KiB of kernel memory that the child's own limits do not count. So the parent
counts: every quarter second it reads the mounts' inode usage through the namespace's init
(`/proc/<init pid>/root/<mount>`, statvfs: no file of the child is opened, nothing of it
runs in the parent) and kills the whole sandbox once the total passes the limit, naming it.
Between two readings a child can create a few thousand more files: the bound is the limit
plus that, well short of the kernel's default.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

MAX_FILES = 100_000  # across the private mounts; a migration needs a handful
_INTERVAL_S = 0.25
_reasons: dict[int, str] = {}  # child pid -> why the watch killed it
_lock = threading.Lock()


def watch(
    pid: int,
    init_pid: int,
    mounts: Sequence[str],
    kill: Callable[[], None],
    alive: Callable[[], bool],
    *,
    limit: int = MAX_FILES,
) -> None:
    """Watch the child `pid` (its namespace's init: `init_pid`) in a daemon thread until it
    ends; past `limit` files in `mounts`, note why and `kill` it."""

    def run() -> None:
        stop = threading.Event()
        while alive() and not stop.wait(_INTERVAL_S):
            used = _files_in(init_pid, mounts)
            if used is None:  # the namespace is gone: nothing left to count
                return
            if used > limit:
                with _lock:
                    _reasons[pid] = f"file count limit of {limit:,} reached in its tmpfs mounts"
                kill()
                return

    threading.Thread(target=run, name=f"migsafe-file-count-{pid}", daemon=True).start()


def killed_for(pid: int) -> str | None:
    """Why the watch killed child `pid`, if it did (asked once: the note is then dropped)."""
    with _lock:
        return _reasons.pop(pid, None)


def _files_in(init_pid: int, mounts: Sequence[str]) -> int | None:
    total = 0
    for mount in mounts:
        try:
            stats = os.statvfs(f"/proc/{init_pid}/root{mount}")
        except OSError:
            return None
        total += stats.f_files - stats.f_ffree
    return total
