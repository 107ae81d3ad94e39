"""Starting and ending contained children: the layer under `isolation` and `child`.

Over 400 lines: starting and ending a contained child share the process bookkeeping.

`contained_argv` turns a command into its bubblewrap command line (see `containment.py`) and
hands the writable paths to the child's uid while it runs; `launch` starts it in a session of
its own with its resource limits, and learns the PID namespace's init from bubblewrap;
`end_sandbox` kills and reaps it so that nothing of it is left. Where containment cannot be
had, `ContainmentUnavailable` is raised unless `trust_repository()` was called (the CLI's
`--trust-repository`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bot.sandbox import file_count
from bot.sandbox.containment import (
    SANDBOX_HOME,
    TMPFS_MOUNTS,
    ContainmentUnavailable,
    Mode,
    Prepared,
    View,
    child_view,
    interpreter_dirs_of,
    is_in_every_view,
    probe,
)

OUTPUT_CAP_BYTES = 64 * 1024
_PR_SET_PDEATHSIG = 1  # prctl(2)
_INFO_TIMEOUT_S = 10.0  # bubblewrap names its namespace's init within this
_INIT_EXIT_TIMEOUT_S = 5.0  # the kernel ends a killed namespace within this
_trusted: str | None = None  # why children may run uncontained (the CLI's flag), if they may
_live: dict[int, subprocess.Popen[bytes]] = {}  # started and not yet ended, by pid
_cancelled = threading.Event()  # an interrupt: kill what lives, start nothing new


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 60
    memory_bytes: int = 1024**3  # address space
    max_processes: int = 64
    file_size_bytes: int = 64 * 1024**2
    open_files: int = 256


def trust_repository(reason: str) -> None:
    """Let children run without containment where it cannot be had (the CLI's
    `--trust-repository`); never called by the service."""
    global _trusted
    _trusted = reason


def containment_mode() -> Mode | None:
    """This machine's containment; None when unavailable but the repository is trusted.
    Raises ContainmentUnavailable otherwise."""
    try:
        return probe()
    except ContainmentUnavailable:
        if _trusted is None:
            raise
        return None


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment with nothing of the bot's own: PATH, locale, the sandbox's HOME and
    TMPDIR. `extra` (e.g. the policy file's variables for the child) is added last."""
    interpreter_dir = os.path.dirname(sys.executable)
    env = {
        "PATH": os.pathsep.join([interpreter_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(SANDBOX_HOME),
        "TMPDIR": "/tmp",
    }
    env.update(extra or {})
    return env


def with_cwd(readable: Sequence[Path], writable: Sequence[Path], cwd: Path) -> list[Path]:
    """The readable paths and the working directory, unless it is in view already (under a
    named path, or the sandbox's own root or system directories)."""
    paths = list(readable)
    covered = [*readable, *writable]
    in_view = is_in_every_view(cwd)
    if not in_view and not any(cwd == p or p in cwd.parents for p in covered):
        paths.append(cwd)
    return paths


@contextlib.contextmanager
def contained_argv(
    argv: list[str], cwd: Path, env: dict[str, str], view: View, limits: Limits
) -> Iterator[tuple[list[str], dict[str, str], list[str]]]:
    """The full argv (bwrap, identity drop, process limit, command), the child's environment
    and the containment's report lines; writable paths are the child's while it runs."""
    mode = containment_mode()
    view.readable = [*view.readable, *interpreter_dirs_of(argv[0])]
    with tempfile.TemporaryDirectory(prefix="migsafe-view-") as private:
        if mode is None:
            home = Path(private) / "home"
            home.mkdir()
            child_env = {**env, "HOME": str(home), "TMPDIR": str(home)}
            yield list(argv), child_env, [_UNCONTAINED.format(_trusted)]
            return
        with child_view(mode, view, Path(private), cwd) as prepared:
            nproc = f"--nproc={limits.max_processes}:{limits.max_processes}"
            full = [*prepared.prefix, "prlimit", nproc, "--", *argv]
            with _handed_over(mode, prepared, view.readable, view.writable):
                yield full, dict(env), prepared.protections


_UNCONTAINED = (
    "containment: NONE: the repository is trusted (--trust-repository) and runs with "
    "migsafe's own rights, network and files ({})"
)


@contextlib.contextmanager
def _handed_over(
    mode: Mode, prepared: Prepared, readable: Sequence[Path], paths: Sequence[Path]
) -> Iterator[None]:
    """As root, the writable paths belong to the child's own uid while it runs, and back to
    us after: its uid is reused by a later child, which must not find files it can change.
    The readable paths (a check's private copies, in directories only root can pass) are
    made readable by any uid, for the child's: others never see them in their view."""
    if not mode.as_root:
        yield
        return
    for path in readable:
        _open_for_reading(path)
    for path in paths:
        _chown_tree(path, prepared.uid, prepared.gid)
    try:
        yield
    finally:
        for path in paths:
            _chown_tree(path, os.geteuid(), os.getegid())


def launch(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: BinaryIO,
    stderr: BinaryIO,
    pass_fds: Sequence[int],
    limits: Limits,
) -> tuple[subprocess.Popen[bytes], int | None]:
    """Start the child in a session of its own; when contained, also a pidfd of the PID
    namespace's init (bubblewrap's `--info-fd` names it), which `end_sandbox` needs."""
    if _cancelled.is_set():
        raise Cancelled("migsafe is stopping: no new child is started")
    contained = _is_bwrap(argv)
    info_read, info_write = os.pipe() if contained else (-1, -1)
    if contained:
        argv = [argv[0], "--info-fd", str(info_write), *argv[1:]]
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
            pass_fds=(*pass_fds, info_write) if contained else tuple(pass_fds),
            preexec_fn=_limit_setter(limits),
        )
    finally:
        if contained:
            os.close(info_write)
    _live[proc.pid] = proc
    if _cancelled.is_set():  # an interrupt came while it started: it must not outlive us
        _kill_group(proc)
    if not contained:
        return proc, None
    with os.fdopen(info_read, "rb") as info:
        init_pid, init_fd = _init(info)
    if init_pid is not None:
        file_count.watch(
            proc.pid,
            init_pid,
            TMPFS_MOUNTS,
            kill=lambda: _kill_group(proc),
            alive=lambda: proc.returncode is None and proc.pid in _live,
        )
    return proc, init_fd


class Cancelled(Exception):
    """An interrupt stopped migsafe: no child may start any more."""


def cancel_all() -> None:
    """Kill every live child now, and start no new one: for an interrupt (Ctrl-C, SIGTERM).

    Whatever waits for a child (a dry-run thread, a request to the sandbox child) then sees it
    end at once, so the unwinding that follows (dropping the sandbox database, removing the
    temporary folders) is not held up by a wall clock. Safe to call from a signal handler:
    only kill(2) on process groups that are still unreaped."""
    _cancelled.set()
    for proc in list(_live.values()):
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # Unreaped (still in _live), so its process group id cannot have been reused. bubblewrap's
    # --die-with-parent then ends the namespace's init, and with it every process inside.
    if proc.returncode is None:
        for signum in (signal.SIGKILL, signal.SIGCONT):  # SIGCONT: a stopped group too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signum)


def _init(info: BinaryIO) -> tuple[int | None, int | None]:
    """(pid, pidfd) of the namespace's init: bubblewrap writes {"child-pid": N} once it
    exists, then closes."""
    readable, _, _ = select.select([info], [], [], _INFO_TIMEOUT_S)
    if not readable:
        return None, None
    try:
        pid = int(json.loads(info.read(4096) or b"{}").get("child-pid", 0))
        return (pid, os.pidfd_open(pid)) if pid > 0 else (None, None)
    except (ValueError, OSError):
        return None, None  # gone already, or bubblewrap failed before it began


def end_sandbox(proc: subprocess.Popen[bytes], init: int | None) -> int:
    """Kill whatever of the child still runs, reap it, and return its exit status.

    Contained, `proc` is bubblewrap's outer process and `init` a pidfd of the PID namespace's
    init, whose death makes the kernel kill every process in the namespace (setsid or not)
    before init is gone. bubblewrap may exit as soon as the command does, while the kernel
    is still ending the rest: so this waits for init itself. Uncontained (a trusted
    repository), the process group is all there is to kill.
    """
    _live.pop(proc.pid, None)
    if init is None:
        if proc.poll() is None:
            # The leader is alive or a zombie: its process group id cannot have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        _await_group_exit(proc.pid)
        return returncode
    try:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            signal.pidfd_send_signal(init, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGCONT)  # a stopped bubblewrap could not reap init
        select.select([init], [], [], _INIT_EXIT_TIMEOUT_S)
    finally:
        os.close(init)
    return proc.wait()


def _is_bwrap(argv: object) -> bool:
    if not isinstance(argv, list) or not argv:
        return False
    try:
        return str(argv[0]) == probe().bwrap
    except ContainmentUnavailable:
        return False


def _await_group_exit(pgid: int, limit_s: float = 2.0) -> None:
    """SIGKILL is sent; give the group's members a moment to be gone before returning."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.005)


def wait_unreaped(pid: int, timeout_s: float) -> bool:
    """Wait for `pid` to exit without reaping it; False on timeout."""
    deadline = time.monotonic() + timeout_s
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return _poll_unreaped(pid, deadline)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([pidfd], [], [], remaining)
            if readable:
                return True
    finally:
        os.close(pidfd)


def _poll_unreaped(pid: int, deadline: float) -> bool:
    delay = 0.001
    while time.monotonic() < deadline:
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        if os.waitid(os.P_PID, pid, flags) is not None:
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return False


def _limit_setter(limits: Limits) -> Callable[[], None]:
    """The limits, and SIGKILL when migsafe dies: nothing else would stop the child then
    (bubblewrap's --die-with-parent passes it on to the namespace's init, and so to all)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def apply() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        _set_limit(resource.RLIMIT_CPU, limits.cpu_seconds, hard_extra=1)
        _set_limit(resource.RLIMIT_AS, limits.memory_bytes)
        _set_limit(resource.RLIMIT_NPROC, limits.max_processes)
        _set_limit(resource.RLIMIT_FSIZE, limits.file_size_bytes)
        _set_limit(resource.RLIMIT_NOFILE, limits.open_files)
        _set_limit(resource.RLIMIT_CORE, 0)

    return apply


def _set_limit(which: int, value: int, *, hard_extra: int = 0) -> None:
    _, hard = resource.getrlimit(which)
    ceiling = value + hard_extra
    if hard != resource.RLIM_INFINITY:
        value, ceiling = min(value, hard), min(ceiling, hard)
    resource.setrlimit(which, (value, ceiling))


def tail(stream: BinaryIO) -> str:
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - OUTPUT_CAP_BYTES))
    return stream.read().decode("utf-8", errors="replace")


def _open_for_reading(root: Path) -> None:
    """a+r on files, a+rx on directories (and executables), never following symlinks."""
    for path in [root, *_tree(root)]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        wanted = 0o444 | (0o111 if stat.S_ISDIR(info.st_mode) or info.st_mode & 0o100 else 0)
        if info.st_mode & wanted != wanted:
            path.chmod(stat.S_IMODE(info.st_mode) | wanted)


def _tree(root: Path) -> Iterator[Path]:
    if not root.is_dir() or root.is_symlink():
        return
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            yield Path(directory, name)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


def common_lines(limits: Limits, timeout_s: float, env: Mapping[str, str]) -> list[str]:
    return [
        f"limits: cpu {limits.cpu_seconds}s, memory {_size(limits.memory_bytes)}, "
        f"processes {limits.max_processes}, file size {_size(limits.file_size_bytes)}, "
        f"open files {limits.open_files}",
        f"wall clock: {timeout_s:g}s, the whole sandbox killed on expiry",
        f"environment: only {', '.join(sorted(env))}",
    ]


def describe_exit(returncode: int | None, limits: Limits, killed_for: str | None = None) -> str:
    """How a child ended, naming the limit that killed it where one did (`killed_for`: the
    parent's own watch, `file_count.killed_for`)."""
    if killed_for is not None:
        return f"was killed: {killed_for}"
    if returncode is None or returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"was killed by signal {-returncode}"
    if name == "SIGXCPU":
        return f"was killed: CPU limit of {limits.cpu_seconds} s reached"
    if name == "SIGXFSZ":
        return f"was killed: file size limit of {_size(limits.file_size_bytes)} reached"
    return f"was killed by {name}"


def _size(n_bytes: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:g} {unit}"
    return f"{n_bytes} bytes"
