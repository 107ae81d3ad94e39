"""Run untrusted code (a repository's Alembic env.py and migrations) in a contained child.

What is in force depends on the machine; every run reports it in `protections`:
- resource limits (setrlimit in the child before exec) and a wall-clock limit that kills the
  child's whole process group;
- a new network namespace with no interfaces (`unshare --net`), and a new PID namespace so
  that every process the child starts dies with it, where unshare works;
- an unprivileged user (`setpriv` to nobody) where migsafe runs as root, if that user can
  actually run the command (a probe, cached);
- a scrubbed environment (`scrubbed_env`): nothing of the bot's settings or secrets.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import pwd
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

OUTPUT_CAP_BYTES = 64 * 1024
UNPRIVILEGED_USER = "nobody"
UNPRIVILEGED_GROUP = "nogroup"
_PROBE_TIMEOUT_S = 15.0
# In a new PID namespace the first process is its init, which ignores signals it has no
# handler for (SIGXCPU of the CPU limit among them). A shell stays init and runs the command
# as its child; it exits 128+N when the command dies of signal N.
_INIT_SHIM = ("/bin/sh", "-c", '"$@"; exit $?', "migsafe-init")
_NAMESPACE_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"),
    ("unshare", "--net", "--pid", "--fork", "--kill-child"),
    ("unshare", "--net"),
)
# For setup commands that must reach a package index: every namespace but the network one.
_NETWORKED_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc"),
    ("unshare", "--pid", "--fork", "--kill-child"),
)
NETWORK_ALLOWED = "network: ALLOWED (setup commands may reach package indexes)"
_PR_SET_PDEATHSIG = 1  # prctl(2)
_EXIT_GRACE_S = 1.0  # a long-lived child's time to exit once its channel is closed


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


@dataclass(frozen=True)
class _Namespaces:
    prefix: tuple[str, ...]
    network: bool
    pids: bool
    own_proc: bool  # a private /proc: other processes (and their environments) are invisible
    reason: str  # why namespaces are missing, when they are


@dataclass(frozen=True)
class _UserDrop:
    prefix: tuple[str, ...]
    uid: int | None  # None: no drop
    gid: int | None
    description: str


def scrubbed_env(
    extra: dict[str, str] | None = None, *, home: Path | None = None
) -> dict[str, str]:
    """An environment with nothing of the bot's own: PATH, locale, and a private HOME/TMPDIR.

    Without `home`, `run_isolated` gives the child a fresh private directory for both.
    `extra` (e.g. the policy file's variables for the child) is added last.
    """
    interpreter_dir = os.path.dirname(sys.executable)
    env = {
        "PATH": os.pathsep.join([interpreter_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    if home is not None:
        env["HOME"] = env["TMPDIR"] = str(home)
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
    writable_paths: Sequence[Path] = (),
    probe_argv: Sequence[str] | None = None,
    allow_network: bool = False,
) -> IsolatedResult:
    """Run `argv` contained; never raises for anything the child does.

    Raises FileNotFoundError when `argv[0]` is not found on `env`'s PATH. A negative
    `returncode` is the signal that killed the command.
    `writable_paths` are handed to the unprivileged user (chown) when the child runs as one;
    `cwd` and the command must be readable by it. `probe_argv` is a command that must succeed
    as that user for the drop to be used (default: `argv[0] --version`; for an interpreter,
    pass something that imports what the command needs); the answer is cached.
    `allow_network` keeps the machine's network (for setup commands that install packages);
    every other protection stays, and `protections` says the network was allowed.
    """
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(f"{argv[0]}: not found on the child's PATH")
    namespaces = _networked_namespaces() if allow_network else _namespaces()
    user = _user_drop(tuple(probe_argv or (argv[0], "--version")))
    with tempfile.TemporaryDirectory(prefix="migsafe-run-") as private:
        private_dir = Path(private)
        child_env = {"HOME": private, "TMPDIR": private, **env}
        if user.uid is not None and user.gid is not None:
            for path in (private_dir, *writable_paths):
                _chown_tree(path, user.uid, user.gid)
        result = _run_contained(
            [*namespaces.prefix, *_init_shim(namespaces), *user.prefix, *argv],
            cwd=cwd,
            env=child_env,
            timeout_s=timeout_s,
            limits=limits,
            pass_fds=pass_fds,
            output_dir=private_dir,
        )
    if namespaces.pids and result.returncode is not None and 128 < result.returncode < 193:
        result.returncode = 128 - result.returncode  # the shim's 128+N: killed by signal N
    result.protections = _describe(namespaces, user, limits, timeout_s, child_env)
    if allow_network:
        result.protections[0] = NETWORK_ALLOWED
    return result


def _init_shim(namespaces: _Namespaces) -> tuple[str, ...]:
    return _INIT_SHIM if namespaces.pids else ()


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
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
            pass_fds=tuple(pass_fds),
            preexec_fn=_limit_setter(limits),
        )
        timed_out = not _wait_unreaped(proc.pid, timeout_s)
        # The leader is alive or a zombie, so its process group id cannot have been reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
        _await_group_exit(proc.pid)
        return IsolatedResult(
            returncode=None if timed_out else returncode,
            stdout=_tail(out),
            stderr=_tail(err),
            timed_out=timed_out,
            duration_s=time.monotonic() - started,
        )


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


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


@functools.cache
def _namespaces() -> _Namespaces:
    return _first_working(_NAMESPACE_CANDIDATES)


@functools.cache
def _networked_namespaces() -> _Namespaces:
    return _first_working(_NETWORKED_CANDIDATES)


def _first_working(candidates: tuple[tuple[str, ...], ...]) -> _Namespaces:
    if shutil.which("unshare") is None:
        return _Namespaces((), False, False, False, "unshare (util-linux) not found")
    reason = ""
    for candidate in candidates:
        shim = _INIT_SHIM if "--pid" in candidate else ()
        ok, detail = _probe([*candidate, *shim, "true"])
        if ok:
            return _Namespaces(
                candidate,
                "--net" in candidate,
                "--pid" in candidate,
                "--mount-proc" in candidate,
                "",
            )
        reason = reason or f"`{' '.join(candidate)}` failed: {detail}"
    return _Namespaces((), False, False, False, reason)


@functools.cache
def _user_drop(probe_argv: tuple[str, ...]) -> _UserDrop:
    current = _user_name(os.geteuid())
    if os.geteuid() != 0:
        return _UserDrop((), None, None, f"user: {current} (not root, no drop needed)")
    no_drop = "user: root (unprivileged user unavailable: {})"
    try:
        target = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        return _UserDrop((), None, None, no_drop.format(f"no user {UNPRIVILEGED_USER}"))
    if shutil.which("setpriv") is None:
        return _UserDrop((), None, None, no_drop.format("setpriv (util-linux) not found"))
    prefix = (
        "setpriv",
        f"--reuid={UNPRIVILEGED_USER}",
        f"--regid={UNPRIVILEGED_GROUP}",
        "--clear-groups",
    )
    ok, detail = _probe([*prefix, *probe_argv])
    if not ok:
        why = f"{UNPRIVILEGED_USER} cannot run `{' '.join(probe_argv)}`: {detail}"
        return _UserDrop((), None, None, no_drop.format(why))
    description = f"user: {UNPRIVILEGED_USER} (uid {target.pw_uid}, dropped from root)"
    return _UserDrop(prefix, target.pw_uid, target.pw_gid, description)


def _probe(argv: list[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            argv,
            cwd="/",
            env=scrubbed_env(home=Path("/nonexistent")),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if done.returncode == 0:
        return True, ""
    lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
    return False, lines[-1] if lines else f"exit status {done.returncode}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _describe(
    namespaces: _Namespaces,
    user: _UserDrop,
    limits: Limits,
    timeout_s: float,
    env: dict[str, str],
) -> list[str]:
    runs_as_root = os.geteuid() == 0 and user.uid is None
    if namespaces.network:
        network = "network: none (new network namespace)"
    else:
        network = f"network: NOT isolated ({namespaces.reason})"
    if namespaces.pids:
        processes = "processes: new PID namespace, every process ends with the child"
        if namespaces.own_proc:
            processes += "; private /proc (other processes are invisible)"
    else:
        processes = "processes: own process group only (a process calling setsid can escape)"
    nproc = f"processes {limits.max_processes}"
    if runs_as_root:
        nproc += " (NOT enforced: RLIMIT_NPROC does not apply to root)"
    return [
        network,
        processes,
        user.description,
        f"limits: cpu {limits.cpu_seconds}s, memory {_size(limits.memory_bytes)}, {nproc}, "
        f"file size {_size(limits.file_size_bytes)}, open files {limits.open_files}",
        f"wall clock: {timeout_s:g}s, whole process group killed on expiry",
        f"environment: only {', '.join(sorted(env))}",
    ]


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
    needs: str = "alembic, sqlalchemy",
) -> tuple[bytes | None, IsolatedResult]:
    """Run `python -I -B script REQUEST RESULT` contained; the result file's bytes, if any.

    The script and request live in a directory of ours that the child's user can traverse
    but not change; it may write only into `out/`. `needs` is what the probe for the
    unprivileged user imports (the interpreter alone may start, yet not find its packages).
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
            writable_paths=[out_dir],
            probe_argv=[python, "-I", "-c", f"import {needs}"],
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
        requests_fd: int,
        replies_fd: int,
        stderr: BinaryIO,
        timeout_s: float,
        pids_namespace: bool,
    ) -> None:
        self.protections: list[str] = []
        self._proc = proc
        self._requests, self._replies = requests_fd, replies_fd
        self._stderr = stderr
        self._timeout_s = timeout_s
        self._pids_namespace = pids_namespace
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
        if self._pids_namespace and returncode is not None and 128 < returncode < 193:
            returncode = 128 - returncode  # the init shim's 128+N: killed by signal N
        tail = _tail(self._stderr).strip()[-2000:] or f"exit status {returncode}"
        self._gone = f"the child ended without a result: {tail}"
        return Reply(None, ended=self._gone)

    def _signal(self, signum: int) -> None:
        # The leader is alive or an unreaped zombie: its process group id is still ours.
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signum)

    def _kill(self) -> None:
        if self._proc.returncode is not None:
            return
        self._signal(signal.SIGKILL)
        self._proc.wait()
        _await_group_exit(self._proc.pid)


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
    writable_paths: Sequence[Path] = (),
    probe_argv: Sequence[str] | None = None,
) -> Iterator[ContainedChild]:
    """Start `argv` contained as `run_isolated` would (namespaces, unprivileged user, limits,
    scrubbed environment, private HOME) and keep it up for requests; on exit the whole process
    group is killed. `argv` gets the channel's descriptors appended: REQUESTS_FD REPLIES_FD."""
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(f"{argv[0]}: not found on the child's PATH")
    namespaces = _namespaces()
    user = _user_drop(tuple(probe_argv or (argv[0], "--version")))
    with contextlib.ExitStack() as stack:
        private = stack.enter_context(tempfile.TemporaryDirectory(prefix="migsafe-run-"))
        private_dir = Path(private)
        child_env = {"HOME": private, "TMPDIR": private, **env}
        if user.uid is not None and user.gid is not None:
            for path in (private_dir, *writable_paths):
                _chown_tree(path, user.uid, user.gid)
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        out = stack.enter_context(open(private_dir / ".stdout", "w+b"))
        err = stack.enter_context(open(private_dir / ".stderr", "w+b"))
        try:
            proc = subprocess.Popen(
                [
                    *namespaces.prefix,
                    *_init_shim(namespaces),
                    *user.prefix,
                    *argv,
                    str(requests_read),
                    str(replies_write),
                ],
                cwd=cwd,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
                pass_fds=(requests_read, replies_write),
                preexec_fn=_limit_setter(limits),
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
            requests_fd=requests_write,
            replies_fd=replies_read,
            stderr=err,
            timeout_s=timeout_s,
            pids_namespace=namespaces.pids,
        )
        stack.callback(child.close)
        child.protections = _describe(namespaces, user, limits, timeout_s, child_env)
        child.protections[-2] = (
            f"wall clock: {timeout_s:g}s per step, whole process group killed on expiry"
        )
        child.protections.append(
            "between steps: the child is stopped (SIGSTOP); none of its code runs while "
            "migsafe reads the database"
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
    needs: str = "alembic, sqlalchemy",
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
            probe_argv=[python, "-I", "-c", f"import {needs}"],
        ) as child:
            yield child
