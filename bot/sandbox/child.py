"""A contained child that stays up and answers requests: the sandbox's Alembic process.

It starts as `isolation.run_isolated` would (see `launch.py`), optionally with a relay socket
as its only way to a database, and talks one JSON line each way over a private pair of pipes.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bot.sandbox import file_count
from bot.sandbox.containment import View
from bot.sandbox.isolation import MAX_RESULT_BYTES, script_directory
from bot.sandbox.launch import (
    Limits,
    common_lines,
    contained_argv,
    describe_exit,
    end_sandbox,
    launch,
    tail,
    wait_unreaped,
    with_cwd,
)
from bot.sandbox.relay import DatabaseRelay

_EXIT_GRACE_S = 1.0  # a long-lived child's time to exit once its channel is closed


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
        self._pending = bytearray()  # read from the child, not yet a whole line
        os.set_blocking(replies_fd, False)

    def request(
        self,
        message: Mapping[str, object],
        on_note: Callable[[object], None] | None = None,
    ) -> Reply:
        """Send `message`, wait for the answer; never raises for anything the child does.
        Lines `{"note": ...}` before the answer go to `on_note` (progress, for show only)."""
        if self._gone is not None or self._requests not in self._open:
            return Reply(None, ended=self._gone or "closed")
        self._signal(signal.SIGCONT)
        deadline = time.monotonic() + self._timeout_s
        try:
            _write_all(self._requests, json.dumps(message).encode("utf-8") + b"\n")
        except OSError:
            return self._ended()
        while True:
            try:
                line = self._read_line(deadline)
            except _ChildEnded:
                return self._ended()
            if line is None:
                self._kill()
                self._gone = f"killed after {self._timeout_s:g} s (wall clock limit)"
                return Reply(None, timed_out=True)
            try:
                answer = json.loads(line)
            except ValueError:
                answer = None
            if not (isinstance(answer, dict) and set(answer) == {"note"}):
                break
            if on_note is not None:
                on_note(answer["note"])
        self._signal(signal.SIGSTOP)
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
            wait_unreaped(self._proc.pid, _EXIT_GRACE_S)
        self._kill()
        for fd in list(self._open):
            self._close(fd)

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read_line(self, deadline: float) -> bytes | None:
        """One line from the child; None when the deadline passed. Raises _ChildEnded. What
        came after the line (the child writes notes, then its answer) waits for the next call."""
        buffer = self._pending
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
        line = bytes(buffer[:newline])
        del buffer[: newline + 1]
        return line

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
        killed_for = file_count.killed_for(self._proc.pid)
        said = describe_exit(returncode, self._limits, killed_for) if killed_for else ""
        said = said or tail(self._stderr).strip()[-2000:] or describe_exit(returncode, self._limits)
        self._gone = f"the child ended without a result: {said}"
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
            readable=with_cwd(readable_paths, writable_paths, cwd),
            writable=writable_paths,
            sockets=sockets,
        )
        full_argv, child_env, protections = stack.enter_context(
            contained_argv(argv, cwd, env, view, limits)
        )
        outputs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="migsafe-out-")))
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        out = stack.enter_context(open(outputs / ".stdout", "w+b"))
        err = stack.enter_context(open(outputs / ".stderr", "w+b"))
        try:
            proc, init = launch(
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
            *common_lines(limits, timeout_s, child_env),
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
    source: str | None = None,
) -> Iterator[ContainedChild]:
    """`python -I -B script REQUESTS_FD REPLIES_FD`, contained and kept up for requests (see
    `ContainedChild`). The script (`source` when given, else the file's text) lives in a
    directory of ours the child can only read."""
    with (
        script_directory(script, source) as (work_dir, child_script),
        contained_child(
            [python, "-I", "-B", str(child_script)],
            cwd=cwd,
            env=env,
            timeout_s=timeout_s,
            limits=limits,
            readable_paths=[work_dir, *readable_paths],
            writable_paths=writable_paths,
            database=database,
        ) as child,
    ):
        yield child
