"""Run untrusted code (a repository's Alembic env.py, migrations, setup commands) contained.

Every child starts in the containment of `containment.py` (bubblewrap: its own user or uid,
mount, PID, network, IPC and UTS namespaces; the system read-only; only this check's files in
view; private size-limited tmpfs mounts), with resource limits (setrlimit before exec; the
process count inside the sandbox, where it counts only the sandbox's processes), a wall clock
that kills the whole sandbox, and a scrubbed environment (`scrubbed_env`). Each run reports
what was in force in `protections`.

Where containment cannot be had, nothing runs: `ContainmentUnavailable` says what is missing
and how to enable it, and the callers turn it into a finding. Only `trust_repository()` (the
CLI's `--trust-repository`, for a developer's own code on their own machine) lets children run
uncontained, and the report then says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.sandbox import file_count
from bot.sandbox.containment import NETWORK_ALLOWED, ContainmentUnavailable, View
from bot.sandbox.launch import (
    Limits,
    common_lines,
    contained_argv,
    containment_mode,
    describe_exit,
    end_sandbox,
    launch,
    scrubbed_env,
    tail,
    trust_repository,
    wait_unreaped,
    with_cwd,
)

__all__ = [
    "NETWORK_ALLOWED",
    "ContainmentUnavailable",
    "Limits",
    "containment_mode",
    "describe_exit",
    "scrubbed_env",
    "trust_repository",
]


@dataclass
class IsolatedResult:
    returncode: int | None  # negative: killed by that signal (as subprocess reports it)
    stdout: str  # the last OUTPUT_CAP_BYTES of each stream
    stderr: str
    timed_out: bool
    duration_s: float
    protections: list[str] = field(default_factory=list)
    killed_for: str | None = None  # a limit the parent enforces itself (file_count)


def run_isolated(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    limits: Limits = Limits(),
    pass_fds: Sequence[int] = (),
    readable_paths: Sequence[Path] = (),
    writable_paths: Sequence[Path] = (),
    allow_network: bool = False,
) -> IsolatedResult:
    """Run `argv` contained; never raises for anything the child does.

    The child sees the system read-only, `readable_paths` (and `cwd`) read-only and
    `writable_paths` writable, each at its own path, and nothing else of the machine's files.
    Pass private copies only: as root, readable paths are made readable by the child's uid,
    and writable ones are its own while it runs.
    Raises ContainmentUnavailable where it cannot be contained (see `trust_repository`), and
    FileNotFoundError when `argv[0]` is not on `env`'s PATH. A negative `returncode` is the
    signal that killed the command. `allow_network` keeps the machine's network (for setup
    commands that install packages); every other protection stays.
    """
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(f"{argv[0]}: not found on the child's PATH")
    view = View(
        readable=with_cwd(readable_paths, writable_paths, cwd),
        writable=writable_paths,
        network=allow_network,
    )
    with (
        contained_argv(argv, cwd, env, view, limits) as (full_argv, child_env, protections),
        tempfile.TemporaryDirectory(prefix="migsafe-out-") as outputs,
    ):
        result = _run_contained(
            full_argv,
            cwd=cwd,
            env=child_env,
            timeout_s=timeout_s,
            limits=limits,
            pass_fds=pass_fds,
            output_dir=Path(outputs),
        )
    if result.returncode is not None and 128 < result.returncode < 193:
        result.returncode = 128 - result.returncode  # bwrap's 128+N: killed by signal N
    result.protections = [*protections, *common_lines(limits, timeout_s, child_env)]
    return result


def _run_contained(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    limits: Limits,
    pass_fds: Sequence[int],
    output_dir: Path,
) -> IsolatedResult:
    started = time.monotonic()
    # Files, not pipes: a grandchild holding a pipe open can never block us. Read back through
    # our own descriptors: the child may replace the names (e.g. by a symlink to a secret).
    out_path, err_path = output_dir / ".stdout", output_dir / ".stderr"
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        proc, init = launch(
            argv, cwd=cwd, env=env, stdout=out, stderr=err, pass_fds=pass_fds, limits=limits
        )
        timed_out = not wait_unreaped(proc.pid, timeout_s)
        returncode = end_sandbox(proc, init)
        return IsolatedResult(
            returncode=None if timed_out else returncode,
            stdout=tail(out),
            stderr=tail(err),
            timed_out=timed_out,
            duration_s=time.monotonic() - started,
            killed_for=file_count.killed_for(proc.pid),
        )


MAX_RESULT_BYTES = 64 * 1024**2  # the child's file size limit's default


@contextlib.contextmanager
def script_directory(script: Path, source: str | None) -> Iterator[tuple[Path, Path]]:
    """A directory of ours (0711) holding the script a child runs (0644, read-only to it):
    (the directory, the script's path there)."""
    with tempfile.TemporaryDirectory(prefix="migsafe-child-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o711)
        child = work_dir / script.name
        child.write_text(
            script.read_text(encoding="utf-8") if source is None else source, encoding="utf-8"
        )
        child.chmod(0o644)
        yield work_dir, child


def run_python_script(
    script: Path,
    request: Mapping[str, object],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    limits: Limits = Limits(),
    python: str = sys.executable,
    readable_paths: Sequence[Path] = (),
    source: str | None = None,
) -> tuple[bytes | None, IsolatedResult]:
    """Run `python -I -B script REQUEST RESULT` contained; the result file's bytes, if any.

    The script (`source` when given, e.g. with a helper inlined, else the file's text) and
    the request live in a directory of ours that the child sees read-only; it may write only
    into `out/`, which no other child sees.
    """
    with script_directory(script, source) as (work_dir, child):
        request_path = work_dir / "request.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        request_path.chmod(0o644)
        out_dir = work_dir / "out"
        out_dir.mkdir()
        result_path = out_dir / "result.json"
        isolated = run_isolated(
            [python, "-I", "-B", str(child), str(request_path), str(result_path)],
            cwd=cwd,
            env=env,
            timeout_s=timeout_s,
            limits=limits,
            readable_paths=[work_dir, *readable_paths],
            writable_paths=[out_dir],
        )
        return _read_result(result_path), isolated


def _read_result(path: Path) -> bytes | None:
    """The result file, if the child left a regular one (never a symlink to elsewhere)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return stream.read(MAX_RESULT_BYTES + 1)
