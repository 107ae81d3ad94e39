"""What a running check is doing, on stderr: never a long silence.

On a terminal, one line that changes in place, shown only once the check has taken a second
(a quick check prints nothing extra) and cleared at the end. In a CI log (stderr not a
terminal, `CI` set, as GitHub Actions and GitLab CI set it), one plain line per stage, not
per revision (a text holding REVISION_MARK, the sandbox's "revision n/N", is for terminals).
Elsewhere (a pipe, a test), nothing: the report on stdout is the whole output.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

SHOW_AFTER_S = 1.0
REVISION_MARK = ", revision "  # "sandbox: upgrade to head, revision 3/40 (0003)"
Stage = Callable[[str], None]


class Progress:
    """Call it with each stage's name; `close()` when the check is over."""

    def __init__(self, stream: TextIO, *, live: bool) -> None:
        self._stream = stream
        self._live = live
        self._started = time.monotonic()
        self._stage = ""
        self._shown = False
        self._lock = threading.Lock()
        self._closed = threading.Event()
        if live:
            threading.Thread(target=self._reveal, name="migsafe-progress", daemon=True).start()

    @classmethod
    def for_stderr(cls) -> Progress | None:
        """The progress this process's stderr wants, if any."""
        if sys.stderr.isatty():
            return cls(sys.stderr, live=True)
        if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
            return cls(sys.stderr, live=False)
        return None

    def __call__(self, stage: str) -> None:
        with self._lock:
            if self._closed.is_set() or stage == self._stage:
                return
            self._stage = stage
            if not self._live and REVISION_MARK not in stage:
                self._stream.write(f"migsafe: {stage}\n")
                self._stream.flush()
            elif self._shown:
                self._draw()

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            if self._live and self._shown:
                self._stream.write("\r\033[K")  # leave the terminal as the report finds it
                self._stream.flush()

    def _reveal(self) -> None:
        """After the first second, and every second after it: the stage and the time so far."""
        while not self._closed.wait(SHOW_AFTER_S):
            with self._lock:
                if self._closed.is_set():
                    return
                self._shown = True
                self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self._started
        self._stream.write(f"\r\033[Kmigsafe: {self._stage} ({elapsed:.0f} s)")
        self._stream.flush()
