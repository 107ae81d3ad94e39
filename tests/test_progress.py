"""Never a long silence: stage lines in CI logs, a live line on a terminal."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bot.progress import SHOW_AFTER_S, Progress

ROOT = Path(__file__).resolve().parents[1]


def test_ci_logs_get_one_plain_line_per_stage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", "examples/shop", "--no-sandbox"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CI": "true"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        "migsafe: reading the project",
        "migsafe: dry-run of 1 new revision(s)",
        "migsafe: judging",
    ]
    assert "migsafe:" not in done.stdout.splitlines()[1:]  # the report is untouched


def test_outside_ci_and_terminals_nothing_is_added() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", "examples/shop", "--no-sandbox"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1 and done.stderr == ""


def test_a_terminal_sees_the_stage_only_after_a_second_and_the_line_is_cleared() -> None:
    terminal = io.StringIO()
    progress = Progress(terminal, live=True)
    progress("dry-run of 3 new revision(s)")
    assert terminal.getvalue() == ""  # a quick check prints nothing extra
    time.sleep(SHOW_AFTER_S + 0.3)
    assert re.search(
        r"\r\033\[Kmigsafe: dry-run of 3 new revision\(s\) \(\d s\)", terminal.getvalue()
    )
    progress("sandbox: upgrade to head")
    assert re.search(r"\r\033\[Kmigsafe: sandbox: upgrade to head \(\d s\)$", terminal.getvalue())
    progress.close()
    assert terminal.getvalue().endswith("\r\033[K")
    progress("judging")  # after close: nothing
    assert terminal.getvalue().endswith("\r\033[K")


def test_a_ci_log_gets_the_stages_but_not_each_revision() -> None:
    stream = io.StringIO()
    progress = Progress(stream, live=False)
    progress("sandbox: upgrade to head")
    progress("sandbox: upgrade to head, revision 1/40 (0001)")
    progress("sandbox: post-migration checks")
    assert stream.getvalue() == (
        "migsafe: sandbox: upgrade to head\nmigsafe: sandbox: post-migration checks\n"
    )
