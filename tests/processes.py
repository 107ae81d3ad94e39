"""Processes as the tests look for them: by a marker in their command line."""

from __future__ import annotations

import os
import uuid
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
