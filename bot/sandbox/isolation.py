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
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from bot.sandbox.containment import (
    NETWORK_ALLOWED,
    SANDBOX_HOME,
    ContainmentUnavailable,
    Mode,
    Prepared,
    View,
    child_view,
    interpreter_dirs_of,
    is_in_every_view,
    probe,
)
from bot.sandbox.relay import DatabaseRelay

__all__ = ["NETWORK_ALLOWED", "ContainmentUnavailable"]

OUTPUT_CAP_BYTES = 64 * 1024
_PR_SET_PDEATHSIG = 1  # prctl(2)
_EXIT_GRACE_S = 1.0  # a long-lived child's time to exit once its channel is closed
_INFO_TIMEOUT_S = 10.0  # bubblewrap names its namespace's init within this
_INIT_EXIT_TIMEOUT_S = 5.0  # the kernel ends a killed namespace within this
_trusted: str | None = None  # why children may run uncontained (the CLI's flag), if they may


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 60
    memory_bytes: int = 1024**3  # address space
    max_processes: int = 64
    file_size_bytes: int = 64 * 1024**2
    open_files: int = 256


@dataclass
class IsolatedResult:
    returncode: int | None  # negative: killed by that signal (as subprocess reports it)
    stdout: str  # the last OUTPUT_CAP_BYTES of each stream
    stderr: str
    timed_out: bool
    duration_s: float
    protections: list[str] = field(default_factory=list)


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
        readable=_with_cwd(readable_paths, writable_paths, cwd),
        writable=writable_paths,
        network=allow_network,
    )
    with (
        _contained_argv(argv, cwd, env, view, limits) as (full_argv, child_env, protections),
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
    result.protections = [*protections, *_common_lines(limits, timeout_s, child_env)]
    return result


def _with_cwd(readable: Sequence[Path], writable: Sequence[Path], cwd: Path) -> list[Path]:
    """The readable paths and the working directory, unless it is in view already (under a
    named path, or the sandbox's own root or system directories)."""
    paths = list(readable)
    covered = [*readable, *writable]
    in_view = is_in_every_view(cwd)
    if not in_view and not any(cwd == p or p in cwd.parents for p in covered):
        paths.append(cwd)
    return paths


@contextlib.contextmanager
def _contained_argv(
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
        proc, init = _launch(
            argv, cwd=cwd, env=env, stdout=out, stderr=err, pass_fds=pass_fds, limits=limits
        )
        timed_out = not _wait_unreaped(proc.pid, timeout_s)
        returncode = end_sandbox(proc, init)
        return IsolatedResult(
            returncode=None if timed_out else returncode,
            stdout=_tail(out),
            stderr=_tail(err),
            timed_out=timed_out,
            duration_s=time.monotonic() - started,
        )


def _launch(
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
    if not contained:
        return proc, None
    with os.fdopen(info_read, "rb") as info:
        return proc, _init_pidfd(info)


def _init_pidfd(info: BinaryIO) -> int | None:
    """bubblewrap writes {"child-pid": N} once the namespace's init exists, then closes."""
    readable, _, _ = select.select([info], [], [], _INFO_TIMEOUT_S)
    if not readable:
        return None
    try:
        pid = int(json.loads(info.read(4096) or b"{}").get("child-pid", 0))
        return os.pidfd_open(pid) if pid > 0 else None
    except (ValueError, OSError):
        return None  # gone already, or bubblewrap failed before it began


def end_sandbox(proc: subprocess.Popen[bytes], init: int | None) -> int:
    """Kill whatever of the child still runs, reap it, and return its exit status.

    Contained, `proc` is bubblewrap's outer process and `init` a pidfd of the PID namespace's
    init, whose death makes the kernel kill every process in the namespace (setsid or not)
    before init is gone. bubblewrap may exit as soon as the command does, while the kernel
    is still ending the rest: so this waits for init itself. Uncontained (a trusted
    repository), the process group is all there is to kill.
    """
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


def _wait_unreaped(pid: int, timeout_s: float) -> bool:
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
    (`unshare --kill-child` passes it on to the whole namespace)."""
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


def _tail(stream: BinaryIO) -> str:
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


def _common_lines(limits: Limits, timeout_s: float, env: Mapping[str, str]) -> list[str]:
    return [
        f"limits: cpu {limits.cpu_seconds}s, memory {_size(limits.memory_bytes)}, "
        f"processes {limits.max_processes}, file size {_size(limits.file_size_bytes)}, "
        f"open files {limits.open_files}",
        f"wall clock: {timeout_s:g}s, the whole sandbox killed on expiry",
        f"environment: only {', '.join(sorted(env))}",
    ]


def describe_exit(returncode: int | None, limits: Limits) -> str:
    """How a child ended, naming the limit that killed it where one did."""
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


MAX_RESULT_BYTES = 64 * 1024**2  # the child's file size limit's default


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
) -> tuple[bytes | None, IsolatedResult]:
    """Run `python -I -B script REQUEST RESULT` contained; the result file's bytes, if any.

    The script and request live in a directory of ours that the child sees read-only; it may
    write only into `out/`, which no other child sees.
    """
    with tempfile.TemporaryDirectory(prefix="migsafe-child-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o711)
        child, request_path = work_dir / script.name, work_dir / "request.json"
        shutil.copyfile(script, child)
        request_path.write_text(json.dumps(request), encoding="utf-8")
        for path in (child, request_path):
            path.chmod(0o644)
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


# -- a long-lived contained child, talked to over a private channel ---------------------------


@dataclass
class Reply:
    """The child's answer to one request, or why there is none."""

    message: dict[str, Any] | None
    timed_out: bool = False  # the wall clock ran out: the child's process group is killed
    ended: str | None = None  # the child is gone (or answered garbage): its stderr, its exit


class ContainedChild:
    """A contained child that stays up and answers requests: one JSON line each way, on a
    private pair of pipes whose descriptors it gets as its last two arguments. Never its
    stdout: migration code may print anything there (stdout and stderr go to files, as in
    `run_isolated`).

    Between requests the child's process group is stopped (SIGSTOP), so none of its code
    (a thread a migration left behind) runs while the parent reads the database. A request
    that gets no answer within `timeout_s` kills the whole process group."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        init: int | None,
        requests_fd: int,
        replies_fd: int,
        stderr: BinaryIO,
        timeout_s: float,
        limits: Limits,
    ) -> None:
        self.protections: list[str] = []
        self._init = init  # pidfd of the namespace's init; end_sandbox closes it
        self.relay: DatabaseRelay | None = None  # the child's way to its database, if any
        self._limits = limits
        self._proc = proc
        self._requests, self._replies = requests_fd, replies_fd
        self._stderr = stderr
        self._timeout_s = timeout_s
        self._pidfd = _pidfd(proc.pid)
        # Descriptors still ours to close: closing a number twice could close one that another
        # thread (the event loop, a database pool) has been given since.
        self._open = {fd for fd in (requests_fd, replies_fd, self._pidfd) if fd is not None}
        self._gone: str | None = None  # why the child can answer no more
        os.set_blocking(replies_fd, False)

    def request(self, message: Mapping[str, object]) -> Reply:
        """Send `message`, wait for the answer; never raises for anything the child does."""
        if self._gone is not None or self._requests not in self._open:
            return Reply(None, ended=self._gone or "closed")
        self._signal(signal.SIGCONT)
        deadline = time.monotonic() + self._timeout_s
        try:
            _write_all(self._requests, json.dumps(message).encode("utf-8") + b"\n")
        except OSError:
            return self._ended()
        try:
            line = self._read_line(deadline)
        except _ChildEnded:
            return self._ended()
        if line is None:
            self._kill()
            self._gone = f"killed after {self._timeout_s:g} s (wall clock limit)"
            return Reply(None, timed_out=True)
        self._signal(signal.SIGSTOP)
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self._kill()
            self._gone = "the child's answer was not a JSON object"
            return Reply(None, ended=self._gone)
        return Reply(answer)

    def close(self) -> None:
        """End the child: its channel closes and it exits on its own (each process reaped by
        its parent, which is quick); whatever is left then, stopped or not, is killed."""
        if self._proc.returncode is None and self._gone is None:
            self._signal(signal.SIGCONT)
            self._close(self._requests)  # EOF: the child exits by itself
            _wait_unreaped(self._proc.pid, _EXIT_GRACE_S)
        self._kill()
        for fd in list(self._open):
            self._close(fd)

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read_line(self, deadline: float) -> bytes | None:
        """One line from the child; None when the deadline passed. Raises _ChildEnded."""
        buffer = bytearray()
        while (newline := buffer.find(b"\n")) < 0:
            if len(buffer) > MAX_RESULT_BYTES:
                raise _ChildEnded
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            watched = [self._replies] + ([self._pidfd] if self._pidfd is not None else [])
            readable, _, _ = select.select(watched, [], [], min(remaining, 0.05))
            chunk = self._read_available()
            if chunk:
                buffer += chunk
            elif chunk == b"" or self._exited(readable):
                raise _ChildEnded  # closed, or the child exited (a grandchild may hold it)
        return bytes(buffer[:newline])

    def _read_available(self) -> bytes | None:
        """What can be read now: b"" at end of file, None when nothing is there yet."""
        try:
            return os.read(self._replies, 1024 * 1024)
        except BlockingIOError:
            return None

    def _exited(self, readable: list[int]) -> bool:
        if self._pidfd is not None:
            return self._pidfd in readable
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self._proc.pid, flags) is not None

    def _ended(self) -> Reply:
        self._kill()
        returncode = self._proc.returncode
        if returncode is not None and 128 < returncode < 193:
            returncode = 128 - returncode  # bwrap's 128+N: killed by signal N
        tail = _tail(self._stderr).strip()[-2000:] or describe_exit(returncode, self._limits)
        self._gone = f"the child ended without a result: {tail}"
        return Reply(None, ended=self._gone)

    def _signal(self, signum: int) -> None:
        # The leader is alive or an unreaped zombie: its process group id is still ours.
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signum)

    def _kill(self) -> None:
        if self._proc.returncode is None:
            init, self._init = self._init, None
            end_sandbox(self._proc, init)


class _ChildEnded(Exception):
    """The channel closed, the child exited, or it sent more than any answer can be."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


@contextlib.contextmanager
def contained_child(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    limits: Limits = Limits(),
    readable_paths: Sequence[Path] = (),
    writable_paths: Sequence[Path] = (),
    database: bool = False,
) -> Iterator[ContainedChild]:
    """Start `argv` contained as `run_isolated` would and keep it up for requests; on exit the
    whole sandbox is killed. `argv` gets the channel's descriptors appended: REQUESTS_FD
    REPLIES_FD. With `database`, the child gets a relay socket (`ContainedChild.relay`) as its
    only way to a database."""
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(f"{argv[0]}: not found on the child's PATH")
    with contextlib.ExitStack() as stack:
        relay = None
        sockets: list[Path] = []
        if database:
            relay_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="migsafe-db-")))
            relay = DatabaseRelay(relay_dir)
            stack.callback(relay.close)
            sockets.append(relay.socket_path)
        view = View(
            readable=_with_cwd(readable_paths, writable_paths, cwd),
            writable=writable_paths,
            sockets=sockets,
        )
        full_argv, child_env, protections = stack.enter_context(
            _contained_argv(argv, cwd, env, view, limits)
        )
        outputs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="migsafe-out-")))
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        out = stack.enter_context(open(outputs / ".stdout", "w+b"))
        err = stack.enter_context(open(outputs / ".stderr", "w+b"))
        try:
            proc, init = _launch(
                [*full_argv, str(requests_read), str(replies_write)],
                cwd=cwd,
                env=child_env,
                stdout=out,
                stderr=err,
                pass_fds=(requests_read, replies_write),
                limits=limits,
            )
        except BaseException:
            for fd in (requests_write, replies_read):
                os.close(fd)
            raise
        finally:
            os.close(requests_read)  # the child's ends: ours would keep end-of-file away
            os.close(replies_write)
        child = ContainedChild(
            proc,
            init=init,
            requests_fd=requests_write,
            replies_fd=replies_read,
            stderr=err,
            timeout_s=timeout_s,
            limits=limits,
        )
        child.relay = relay
        stack.callback(child.close)
        child.protections = [
            *protections,
            *_common_lines(limits, timeout_s, child_env),
            "between steps: the child is stopped (SIGSTOP); none of its code runs while "
            "migsafe reads the database",
        ]
        child.protections[-3] = (
            f"wall clock: {timeout_s:g}s per step, the whole sandbox killed on expiry"
        )
        if relay is not None:
            child.protections.insert(
                1, "database access: only a socket relayed by migsafe to this check's database"
            )
        yield child


@contextlib.contextmanager
def contained_python(
    script: Path,
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    limits: Limits = Limits(),
    python: str = sys.executable,
    readable_paths: Sequence[Path] = (),
    writable_paths: Sequence[Path] = (),
    database: bool = False,
) -> Iterator[ContainedChild]:
    """`python -I -B script REQUESTS_FD REPLIES_FD`, contained and kept up for requests (see
    `ContainedChild`). The script lives in a directory of ours the child can only read."""
    with tempfile.TemporaryDirectory(prefix="migsafe-child-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o711)
        child_script = work_dir / script.name
        shutil.copyfile(script, child_script)
        child_script.chmod(0o644)
        with contained_child(
            [python, "-I", "-B", str(child_script)],
            cwd=cwd,
            env=env,
            timeout_s=timeout_s,
            limits=limits,
            readable_paths=[work_dir, *readable_paths],
            writable_paths=writable_paths,
            database=database,
        ) as child:
            yield child
