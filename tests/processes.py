"""Processes as the tests look for them (by a marker in their command line) and end them."""

from __future__ import annotations

import os
import signal
import uuid
from contextlib import suppress
from pathlib import Path


def processes_with(marker: str) -> list[int]:
    """Pids whose command line holds `marker` (those we may read: the rest are not ours)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


def sleep_marker() -> str:
    """A `sleep` argument no other process on the machine uses."""
    return f"900.{uuid.uuid4().int % 10**9:09d}"


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, transitively (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, then what it had started (the sandbox children it leaves orphaned)."""
    orphans = descendants(pid)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for child in orphans:
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
