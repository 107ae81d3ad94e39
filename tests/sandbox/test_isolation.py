"""run_isolated with real child processes: containment, limits, timeouts, cleanup, environment.

Every test here runs as whatever user runs the suite: CI runs it as root and as an ordinary
user, so each protection is proven in both modes."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.sandbox import file_count
from bot.sandbox.isolation import (
    IsolatedResult,
    Limits,
    run_isolated,
    scrubbed_env,
)
from bot.sandbox.launch import OUTPUT_CAP_BYTES, describe_exit
from tests.processes import processes_with, sleep_marker

SCRUBBED_KEYS = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR"}


def _python(
    code: str,
    cwd: Path,
    *,
    limits: Limits | None = None,
    timeout_s: float = 30,
    readable: list[Path] | None = None,
    writable: list[Path] | None = None,
) -> IsolatedResult:
    return run_isolated(
        [sys.executable, "-I", "-c", code],
        cwd=cwd,
        env=scrubbed_env(),
        timeout_s=timeout_s,
        limits=limits or Limits(),
        readable_paths=readable or [],
        writable_paths=writable or [],
    )


def test_captures_exit_status_and_both_streams(tmp_path: Path) -> None:
    result = run_isolated(
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        cwd=tmp_path,
        env=scrubbed_env(),
        timeout_s=10,
    )
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.timed_out


def test_wall_clock_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = sleep_marker()
    started = time.monotonic()
    result = run_isolated(
        ["sh", "-c", f"sleep {marker} & sleep {marker} & wait"],
        cwd=tmp_path,
        env=scrubbed_env(),
        timeout_s=1,
    )
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - started < 5
    assert processes_with(marker) == []
    assert "wall clock: 1s, the whole sandbox killed on expiry" in result.protections


def test_processes_left_behind_are_killed_when_the_child_exits(tmp_path: Path) -> None:
    marker = sleep_marker()
    result = run_isolated(
        ["sh", "-c", f"sleep {marker} & sleep {marker} & exit 0"],
        cwd=tmp_path,
        env=scrubbed_env(),
        timeout_s=10,
    )
    assert result.returncode == 0 and not result.timed_out
    assert processes_with(marker) == []


def test_output_keeps_only_the_tail(tmp_path: Path) -> None:
    result = _python("print('x' * 200_000 + 'END')", tmp_path)
    assert result.stdout.endswith("END\n")
    assert len(result.stdout.encode()) <= OUTPUT_CAP_BYTES


def test_resource_limits_are_set_in_the_child(tmp_path: Path) -> None:
    limits = Limits(
        cpu_seconds=7,
        memory_bytes=512 * 1024**2,
        max_processes=33,
        file_size_bytes=1024**2,
        open_files=50,
    )
    names = ["RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE"]
    code = f"import resource; print([resource.getrlimit(getattr(resource, n))[0] for n in {names}])"
    result = _python(code, tmp_path, limits=limits)
    assert result.stdout.strip() == str([7, 512 * 1024**2, 33, 1024**2, 50])
    assert "limits: cpu 7s, memory 512 MiB, processes 33" in next(
        line for line in result.protections if line.startswith("limits:")
    )


def test_file_size_limit_stops_a_large_write(tmp_path: Path) -> None:
    out = _made(tmp_path / "out")
    code = f"open('{out}/big', 'wb').write(b'0' * 2 * 1024**2)"
    result = _python(code, tmp_path, limits=Limits(file_size_bytes=1024**2), writable=[out])
    assert result.returncode != 0
    assert "File too large" in result.stderr
    assert (out / "big").stat().st_size <= 1024**2


def test_cpu_limit_kills_a_busy_loop(tmp_path: Path) -> None:
    result = _python("while True: pass", tmp_path, limits=Limits(cpu_seconds=1), timeout_s=20)
    assert not result.timed_out
    assert result.returncode == -signal.SIGXCPU
    assert result.duration_s < 10


def test_scrubbed_env_carries_nothing_of_the_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGSAFE_WEBHOOK_SECRET", "sekrit")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_faketoken")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@db/app")
    env = scrubbed_env({"EXTRA": "1"})
    assert set(env) <= SCRUBBED_KEYS | {"EXTRA"}
    result = run_isolated(["env"], cwd=tmp_path, env=env, timeout_s=10)
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert set(seen) - {"PWD"} == SCRUBBED_KEYS | {"EXTRA"}  # the shell adds PWD
    assert not {"sekrit", "ghs_faketoken", "pw@db"} & {v for v in seen.values()}
    assert (seen["HOME"], seen["TMPDIR"]) == ("/home/sandbox", "/tmp")  # private tmpfs mounts
    assert "environment: only EXTRA, HOME, LANG, LC_ALL, PATH, TMPDIR" in result.protections


def test_no_network_where_a_namespace_is_available(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')\n"
            "except OSError as exc:\n"
            "    print('failed', exc)\n"
        )
        result = _python(code, tmp_path)
    assert "network: none (new network namespace)" in result.protections
    assert result.stdout.startswith("failed")


def test_a_command_not_on_the_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_isolated(["/nonexistent/cmd"], cwd=tmp_path, env=scrubbed_env(), timeout_s=5)


def test_memory_limit_makes_a_large_allocation_fail_in_the_child_only(tmp_path: Path) -> None:
    parent_limit = resource.getrlimit(resource.RLIMIT_AS)
    result = _python("bytearray(1024**3)", tmp_path, limits=Limits(memory_bytes=256 * 1024**2))
    assert result.returncode == 1
    assert "MemoryError" in result.stderr
    assert resource.getrlimit(resource.RLIMIT_AS) == parent_limit


def _made(path: Path) -> Path:
    path.mkdir()
    return path


_PARENT = """
import os, sys
from pathlib import Path
from bot.sandbox.isolation import run_isolated, scrubbed_env
run_isolated(["sleep", os.environ["MARKER"]], cwd=Path(sys.argv[1]), env=scrubbed_env(),
             timeout_s=120)
"""


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_the_child_dies_with_migsafe(tmp_path: Path) -> None:
    """migsafe killed outright (no cleanup of its own runs): its child goes too."""
    marker = sleep_marker()  # in the environment: the parent's command line lacks it
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path)],
        cwd=root,
        env={**os.environ, "MARKER": marker, "PYTHONPATH": str(root)},
    )
    try:
        assert _wait_for(lambda: bool(processes_with(marker)), 30), "the child never started"
        parent.kill()
        parent.wait()
        assert _wait_for(lambda: not processes_with(marker), 10), processes_with(marker)
    finally:
        parent.kill()
        parent.wait()
        for pid in processes_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_flood_of_files_in_the_private_tmp_is_killed_and_named(tmp_path: Path) -> None:
    """bubblewrap bounds a tmpfs's size, not its file count: the parent counts (statvfs
    through the namespace's init) and kills the sandbox past file_count.MAX_FILES."""
    code = (
        "import os\n"
        "os.makedirs('/tmp/flood', exist_ok=True)\n"
        f"for i in range({file_count.MAX_FILES * 3}):\n"
        "    open(f'/tmp/flood/{i}', 'w').close()\n"
        "print('all written')\n"
    )
    result = _python(code, tmp_path, timeout_s=60)
    assert "all written" not in result.stdout
    assert result.killed_for == (
        f"file count limit of {file_count.MAX_FILES:,} reached in its tmpfs mounts"
    )
    assert describe_exit(result.returncode, Limits(), result.killed_for).endswith(
        "file count limit of 100,000 reached in its tmpfs mounts"
    )


def test_a_few_files_in_the_private_tmp_are_fine(tmp_path: Path) -> None:
    code = "[open(f'/tmp/f{i}', 'w').close() for i in range(1000)]; print('ok')"
    result = _python(code, tmp_path)
    assert result.returncode == 0 and result.killed_for is None
    assert "ok" in result.stdout
