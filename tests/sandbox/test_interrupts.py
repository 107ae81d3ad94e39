"""Ctrl-C and SIGTERM stop a check at once: children killed, sandbox dropped, temp gone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bot.sandbox.database import SandboxServer
from tests.processes import processes_with, sleep_marker

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"


def _project(tmp_path: Path, hang_in: str, marker: str) -> Path:
    root = tmp_path / "project"
    shutil.copytree(HOSTILE / "_skeleton", root)
    shutil.copytree(HOSTILE / "hangs", root, dirs_exist_ok=True)
    policy = {"sandbox": {"env": {"HANG_IN": hang_in, "HANG_MARKER": marker}}}
    (root / ".github").mkdir()
    (root / ".github" / "migsafe.yml").write_text(yaml.safe_dump(policy))
    return root


def _wait_for(condition: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("hang_in", "signum", "expected_exit"),
    [("dry-run", signal.SIGINT, 130), ("sandbox", signal.SIGTERM, 143)],
)
def test_an_interrupt_stops_the_check_within_two_seconds_and_leaves_nothing(
    tmp_path: Path,
    sandbox_server: SandboxServer,
    hang_in: str,
    signum: signal.Signals,
    expected_exit: int,
) -> None:
    marker = sleep_marker()
    project = _project(tmp_path, hang_in, marker)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(private_tmp),
        "MIGSAFE_SANDBOX_URL": sandbox_server.admin_conninfo,
    }
    check = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "check", str(project), "--all"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(lambda: bool(processes_with(marker)), 60), check.stderr
        sent = time.monotonic()
        check.send_signal(signum)
        _, stderr = check.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        check.kill()
        check.wait()
    assert check.returncode == expected_exit, stderr
    assert took < 2.0, took
    assert f"migsafe: stopped ({signum.name})" in stderr
    assert "Traceback" not in stderr
    assert processes_with(marker) == []
    assert list(private_tmp.iterdir()) == []  # every temporary folder removed
    assert sandbox_server.leftover_names() == []  # the sandbox database and role dropped
