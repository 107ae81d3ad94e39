"""The kept cluster's idle stop: a detached process a run starts when none is watching.

It sleeps until `last-used` (mtime + the idle period in its text) says the server has been
idle long enough, then stops it, unless a run holds `use.lock` (shared) at that moment; it
takes `start.lock` first, so no run attaches while it decides. It exits once no postmaster
runs on the data directory, whoever stopped it. It holds `watcher.lock` while it lives: one
watcher per home. An idle period of 0 (a later run's `--idle-stop 0`) keeps the server
until `migsafe cluster stop`.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Sequence
from pathlib import Path

from bot.sandbox.cluster import running_postmaster
from bot.sandbox.kept_cluster import LAST_USED, START_LOCK, USE_LOCK, WATCHER_LOCK, stop_server

POLL_S = 5.0


def main(argv: Sequence[str]) -> None:
    home = Path(argv[0])
    data_dir = home / "data"
    mine = os.open(
        home / WATCHER_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another watcher was started at the same moment
    while running_postmaster(data_dir):
        wait = _seconds_until_idle(home)
        if wait > 0:
            time.sleep(min(POLL_S, wait))
            continue
        if _stop_if_idle(home, data_dir):
            return
        time.sleep(POLL_S)


def _seconds_until_idle(home: Path) -> float:
    """> 0 while a run used the server within the idle period (or the period is 0)."""
    try:
        marker = home / LAST_USED
        idle_s = int(marker.read_text().strip() or "0")
        last_used = marker.stat().st_mtime
    except (OSError, ValueError):
        return POLL_S  # being replaced this very moment
    if idle_s <= 0:
        return POLL_S
    return last_used + idle_s - time.time()


def _stop_if_idle(home: Path, data_dir: Path) -> bool:
    start = os.open(home / START_LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    use = os.open(home / USE_LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(start, fcntl.LOCK_EX)
        try:
            fcntl.flock(use, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a check is running; it marks its end as a use
        if _seconds_until_idle(home) > 0:
            return False  # a run came and went while we waited for the start lock
        stop_server(data_dir)
        return True
    finally:
        os.close(use)
        os.close(start)
