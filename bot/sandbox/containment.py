"""The containment every child that runs repository code starts in: bubblewrap.

Why bubblewrap (Debian's `bubblewrap`) rather than our own `unshare`/`setpriv` chain: it sets
up the user, mount, PID, network, IPC and UTS namespaces, a new root built only from what we
bind, size-limited tmpfs mounts, `no_new_privs` and a dropped capability set in one audited
setuid-free binary, and it behaves the same whether migsafe runs as root or as an ordinary
user (unprivileged user namespaces). What the child sees:

- the system read-only (`/usr`, `/etc`, the interpreter's prefix and virtualenv);
- the paths the caller names, read-only or writable (a check's private working copy);
- a private tmpfs of limited size on `/tmp`, `/var/tmp`, `/dev/shm` and HOME;
- a private `/proc` (only its own processes) and a minimal `/dev`;
- no network interface but loopback in a namespace of its own: the sandbox database is
  reached through a Unix socket bound in (see `relay.py`);
- nothing else: not the service's files, keys, data directory, other checks' trees, the
  cluster's data or its admin password.

Identity. As root, each child gets a uid of its own from a reserved range (a slot held by a
lock file for the child's lifetime), so two checks never share an identity; bubblewrap keeps
CAP_SETUID/CAP_SETGID only for `setpriv` to drop to it, with `no_new_privs` set. As an
ordinary user, the child runs in a user namespace of its own (uid 65534 inside); it shares the
service's uid outside, so what keeps it from the service's files is that they are not in its
view, and what keeps it from the service's memory is that the service is not dumpable.

Where bubblewrap is missing or the kernel refuses user namespaces, containment is
unavailable: `probe()` says which protection is missing and how to get it, and callers fail
closed unless the user said `--trust-repository` (the CLI only).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BWRAP_VARIABLE = "MIGSAFE_BWRAP"  # path of bwrap; for operators with their own build (and tests)
UID_BASE = 1_900_000_000  # per-child uids as root: far above any real account
UID_SLOTS = 65_536
SANDBOX_UID_UNPRIVILEGED = 65_534  # inside the user namespace when migsafe is not root
SANDBOX_HOME = Path("/home/sandbox")
TMPFS_BYTES = 256 * 1024**2  # each of /tmp, /var/tmp, /dev/shm and HOME
TMPFS_MOUNTS = ("/tmp", "/var/tmp", "/dev/shm", str(SANDBOX_HOME))  # private, size-limited
NETWORK_ALLOWED = "network: ALLOWED (setup commands may reach package indexes)"
_PROBE_TIMEOUT_S = 10.0
_SYSTEM_DIRS = ("/usr", "/etc")
_USR_MERGED = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_HOW_TO_ENABLE = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged "
    "user namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces "
    "> 0; Ubuntu 24.04+: kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile "
    "for bwrap; in Docker: --security-opt seccomp=unconfined --security-opt apparmor=unconfined, "
    "or a seccomp profile that allows clone/unshare of user namespaces)"
)


class ContainmentUnavailable(Exception):
    """Repository code cannot be contained on this machine: the message says what is missing
    and how to enable it."""


@dataclass(frozen=True)
class Mode:
    """How children are contained on this machine (found once per process by `probe`)."""

    bwrap: str
    version: str
    as_root: bool


@dataclass
class View:
    """What one child may see besides the system: paths bound at the same place."""

    readable: Sequence[Path] = ()
    writable: Sequence[Path] = ()
    sockets: Sequence[Path] = ()  # Unix sockets (the database relay)
    network: bool = False  # setup commands that install packages, when the policy allows it
    tmpfs_bytes: int = TMPFS_BYTES


@dataclass
class Prepared:
    """The argv prefix for one child, and the lines its report shows."""

    prefix: list[str]
    uid: int  # the child's uid outside (root mode) or migsafe's own (user namespace)
    gid: int
    protections: list[str] = field(default_factory=list)


@functools.cache
def probe() -> Mode:
    """Containment as this machine allows it; raises ContainmentUnavailable (cached)."""
    bwrap = os.environ.get(BWRAP_VARIABLE) or shutil.which("bwrap") or ""
    if not bwrap or not os.access(bwrap, os.X_OK):
        raise ContainmentUnavailable(f"bubblewrap (bwrap) not found; to enable: {_HOW_TO_ENABLE}")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        raise ContainmentUnavailable("setpriv (util-linux) not found: needed as root")
    mode = Mode(bwrap, _version(bwrap), as_root)
    with (
        tempfile.TemporaryDirectory(prefix="migsafe-probe-") as scratch,
        child_view(mode, View(), Path(scratch), Path("/")) as prepared,
    ):
        argv = [*prepared.prefix, "/bin/sh", "-c", "exit 0"]
        try:
            done = subprocess.run(
                argv,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ContainmentUnavailable(f"bubblewrap did not start: {error}") from error
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = detail[-1] if detail else f"exit status {done.returncode}"
        raise ContainmentUnavailable(f"bubblewrap cannot create the sandbox ({why}); to enable: "
                                     f"{_HOW_TO_ENABLE}")  # fmt: skip
    return mode


def _version(bwrap: str) -> str:
    try:
        done = subprocess.run([bwrap, "--version"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ContainmentUnavailable(f"{bwrap} does not run: {error}") from error
    return done.stdout.decode("utf-8", "replace").strip() or "bubblewrap"


@contextlib.contextmanager
def child_view(mode: Mode, view: View, private: Path, cwd: Path) -> Iterator[Prepared]:
    """The bwrap argv prefix for one child; `private` is a directory of ours (not the child's)
    for the files the sandbox needs (its passwd). Holds the child's uid while open."""
    with _identity(mode) as (uid, gid):
        passwd, group = private / "passwd", private / "group"
        passwd.write_text(
            f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"sandbox:x:{uid}:{gid}:migsafe sandbox:{SANDBOX_HOME}:/bin/sh\n"
            f"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        group.write_text(f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n")
        for path in (passwd, group):
            path.chmod(0o644)
        prefix = [mode.bwrap, *_namespaces(mode, view, uid, gid), *_filesystem(view, passwd, group)]
        prefix += ["--chdir", str(cwd)]
        if mode.as_root:
            prefix += [
                "--",
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ]
        else:
            prefix.append("--")
        yield Prepared(prefix, uid, gid, _describe(mode, view, uid))


def _namespaces(mode: Mode, view: View, uid: int, gid: int) -> list[str]:
    args = [
        "--die-with-parent",  # SIGKILL to everything when migsafe's side goes away
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "migsafe-sandbox",
    ]
    if not view.network:
        args.append("--unshare-net")
    if mode.as_root:
        # No user namespace: `setpriv` drops to the child's own uid; bubblewrap keeps only the
        # two capabilities it needs for that (and sets no_new_privs).
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += [
            "--unshare-user",
            "--uid",
            str(uid),
            "--gid",
            str(gid),
            "--disable-userns",  # no nested user namespaces: less kernel surface
            "--cap-drop",
            "ALL",
        ]
    return args


def _filesystem(view: View, passwd: Path, group: Path) -> list[str]:
    args: list[str] = []
    for directory in _SYSTEM_DIRS:
        args += ["--ro-bind", directory, directory]
    for name in _USR_MERGED:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    # Our passwd/group (the child's uid has a name; the host's accounts are not listed).
    args += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]
    # The private mounts first: what is bound below may live under /tmp on the host.
    args += ["--proc", "/proc", "--dev", "/dev"]
    size = str(view.tmpfs_bytes)
    for mount in TMPFS_MOUNTS:
        args += ["--perms", "1777", "--size", size, "--tmpfs", mount]
    binds = [
        *(("--ro-bind", path) for path in [*_interpreter_dirs(), *view.readable]),
        *(("--bind", path) for path in [*view.writable, *view.sockets]),
    ]
    made: set[Path] = set()
    for option, path in binds:
        if not path.is_absolute() or path in _SHARED or path in path.parents:
            raise ValueError(f"not a path a sandbox may be given (shared by others): {path}")
        args += _parents(path, made)
        args += [option, str(path), str(path)]
    return args


# Directories others share: a child is given private paths below them, never these.
_SHARED = frozenset(
    Path(p)
    for p in ("/", "/tmp", "/var/tmp", "/dev/shm", "/home", "/root", "/run", "/var", "/srv",
              "/opt", "/mnt", "/media", "/var/lib")
)  # fmt: skip
_MOUNTED = frozenset(
    Path(p) for p in ("/", "/usr", "/etc", "/proc", "/dev", "/tmp", "/var/tmp", "/dev/shm")
)


def _parents(path: Path, made: set[Path]) -> list[str]:
    """Traversable directories above a bind: bubblewrap would copy the host's modes (a 0700
    /root or private temp folder the child's uid could not pass)."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if parent in made or parent in _MOUNTED or is_system_path(parent):
            continue
        made.add(parent)
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _interpreter_dirs() -> list[Path]:
    """migsafe's Python outside /usr (pyenv, a virtualenv in /opt): the children run it, and
    a setup virtualenv made with --system-site-packages leans on it."""
    found: list[Path] = []
    for prefix in {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent)}:
        path = Path(prefix).resolve()
        if not is_system_path(path) and path not in found:
            found.append(path)
    return found


def interpreter_dirs_of(python: str) -> list[Path]:
    """The directories a virtualenv's interpreter needs besides migsafe's own: the venv."""
    venv = Path(python).parent.parent
    if (venv / "pyvenv.cfg").is_file() and not is_system_path(venv.resolve()):
        return [venv.resolve()]
    return []


def is_in_every_view(path: Path) -> bool:
    """A directory every child has anyway (the root, the system, its private tmpfs mounts)."""
    return path in _MOUNTED or path in _SHARED or is_system_path(path)


def is_system_path(path: Path) -> bool:
    """In the system directories every child sees read-only anyway."""
    return any(path == Path(d) or Path(d) in path.parents for d in _SYSTEM_DIRS)


@contextlib.contextmanager
def _identity(mode: Mode) -> Iterator[tuple[int, int]]:
    if not mode.as_root:
        yield SANDBOX_UID_UNPRIVILEGED, SANDBOX_UID_UNPRIVILEGED
        return
    with _uid_slot() as uid:
        yield uid, uid


@contextlib.contextmanager
def _uid_slot() -> Iterator[int]:
    """A uid no other live child holds: slot N is uid UID_BASE+N, held by an exclusive lock
    on a file in a root-only directory while the child lives (the lock dies with us)."""
    directory = _slot_directory()
    start = random.randrange(UID_SLOTS)
    for offset in range(UID_SLOTS):
        slot = (start + offset) % UID_SLOTS
        fd = os.open(directory / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield UID_BASE + slot
        finally:
            os.close(fd)
        return
    raise ContainmentUnavailable("every sandbox uid slot is in use")


def _slot_directory() -> Path:
    base = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
    directory = base / "migsafe-uid-slots"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.lstat()
    if info.st_uid != 0 or info.st_mode & 0o077 or not directory.is_dir() or directory.is_symlink():
        raise ContainmentUnavailable(f"{directory} must be a directory owned by root, mode 0700")
    return directory


def _describe(mode: Mode, view: View, uid: int) -> list[str]:
    network = NETWORK_ALLOWED if view.network else "network: none (new network namespace)"
    if mode.as_root:
        identity = f"identity: uid {uid} of its own (dropped from root, no capabilities)"
    else:
        identity = (
            f"identity: uid {uid} in a user namespace of its own (migsafe's uid "
            f"{os.geteuid()} outside), no capabilities"
        )
    mib = view.tmpfs_bytes // 1024**2
    return [
        network,
        "processes: new PID namespace, every process ends with the child; private /proc "
        "(other processes are invisible)",
        f"containment: {mode.version}: system read-only, only this check's files in view, "
        f"private tmpfs of {mib} MiB each on /tmp, /var/tmp, /dev/shm and HOME",
        identity,
    ]
