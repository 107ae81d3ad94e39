"""The CLI's embedded cluster, kept between runs: initdb once, start once, reuse after.

Where: `<data dir>-cli` beside the App's data directory (`MIGSAFE_DATA_DIR`, default
`~/.local/share/migsafe/pg`, as root `/var/lib/migsafe/pg`): `~/.local/share/migsafe/pg-cli`.
Not the App's own cluster: that one holds the App's state and belongs to one `migsafe serve`
process; sandbox roles never share a server with it. Layout of that home directory:

    data/       the PostgreSQL data directory (0700, the server user's; the admin password
                file in it is 0600)
    run/        the socket directory and server.log (0700, the server user's)
    start.lock  held (exclusive) while a run attaches to or starts the server
    use.lock    held (shared) by every run using the server; the idle stop needs it free
    last-used   touched at each run's start and end; its text: the idle stop in seconds
    watcher.lock  held by the idle-stop watcher while it lives

The home is created 0700 (0711 as root: PostgreSQL then runs as `postgres`, which must
enter it) and refused, one line, when it is a link, owned by another user or writable by
group or others. Sandboxed children never see any of it: they reach their database through
the relay's socket only.

Idle stop. PostgreSQL has no idle shutdown, so the run that starts the server also starts a
small detached watcher (idle_stop.py) that stops it once no run holds `use.lock` and
`last-used` is older than the idle period, then exits; it exits as well when the server is
gone (`migsafe cluster stop`, a crash). A run that finds no watcher (`watcher.lock` free)
starts one, so a server started with `--idle-stop 0` gets one from the next run that asks.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from bot.errors import UserError
from bot.sandbox.cluster import (
    PASSWORD_FILE,
    SOCKET_PATH_MAX,
    EmbeddedCluster,
    find_binaries,
    provide_shared_cluster,
    run_server_command,
    running_postmaster,
    server_user_entry,
)
from bot.sandbox.data_dir import prepare_location, user_name
from bot.settings import default_data_dir

# Set (non-empty): a throw-away cluster, as --fresh-cluster (CI runners, the test suite).
FRESH_VARIABLE = "MIGSAFE_FRESH_CLUSTER"
HOME_SUFFIX = "-cli"
START_LOCK = "start.lock"
USE_LOCK = "use.lock"
WATCHER_LOCK = "watcher.lock"
LAST_USED = "last-used"


def cluster_home() -> Path:
    data_dir = Path(os.environ.get("MIGSAFE_DATA_DIR") or default_data_dir()).expanduser()
    home = data_dir.with_name(data_dir.name + HOME_SUFFIX).absolute()
    # The folders above resolved (the postmaster's -D is a resolved path, and a running
    # server is recognised by it), the home itself not: a link there is refused, not followed.
    return home.parent.resolve() / home.name


def fresh_requested() -> bool:
    """MIGSAFE_FRESH_CLUSTER=1 (or true, yes, on); 0, false, no, off or empty keep it."""
    return os.environ.get(FRESH_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def start_in_background(home: Path, idle_stop_s: int) -> None:
    """Attach to (or start) the kept cluster in a thread while the check gets ready; the
    check's first use of the embedded cluster (`shared_cluster`) waits for it and raises its
    UserError, if any. A socket path too long for the kernel: a throw-away cluster instead."""
    if len(str(home / "run" / ".s.PGSQL.5432.lock")) > SOCKET_PATH_MAX:
        return
    future: Future[EmbeddedCluster] = Future()

    def start() -> None:
        try:
            future.set_result(open_kept_cluster(home, idle_stop_s))
        except BaseException as error:  # handed to the waiting check
            future.set_exception(error)

    # Not a daemon: a check that ends (or is interrupted) before it needed the cluster still
    # lets an initdb or a start in progress finish, rather than leave half a data directory.
    threading.Thread(target=start, name="migsafe-kept-cluster").start()
    provide_shared_cluster(future.result)


def open_kept_cluster(home: Path, idle_stop_s: int) -> EmbeddedCluster:
    """The running kept cluster, this process registered as a user of it until exit."""
    secure_home(home)
    data_dir, run_dir = home / "data", home / "run"
    with _locked(home / START_LOCK, fcntl.LOCK_EX):
        # Taken under the start lock: no idle stop between the attach and the use.
        use = _open_lock_file(home / USE_LOCK)
        fcntl.flock(use, fcntl.LOCK_SH)
        try:
            _secure_subdirectory(data_dir)
            _secure_subdirectory(run_dir)
            _make_run_dir(run_dir)
            _remove_if_unfinished(data_dir)
            _mark_used(home, idle_stop_s)
            cluster = EmbeddedCluster(data_dir, run_dir=run_dir).start()
            if idle_stop_s > 0 and not _watcher_running(home):
                _start_watcher(home)
        except BaseException:
            os.close(use)
            raise

    def done() -> None:
        with contextlib.suppress(OSError):
            _mark_used(home, idle_stop_s)
            os.close(use)

    atexit.register(done)
    return cluster


def _remove_if_unfinished(data_dir: Path) -> None:
    """A run killed during initdb leaves a data directory without its password file: the
    data is throw-away, so it starts over (no postmaster can be running on it)."""
    if not data_dir.exists() or (data_dir / PASSWORD_FILE).is_file():
        return
    if not running_postmaster(data_dir):
        shutil.rmtree(data_dir)


def stop_kept_cluster(home: Path) -> bool:
    """Stop the kept cluster (`migsafe cluster stop`): False when it was not running;
    UserError while a check uses it."""
    data_dir = home / "data"
    if not home.is_dir() or not running_postmaster(data_dir):
        return False
    secure_home(home)
    with (
        _locked(home / START_LOCK, fcntl.LOCK_EX),
        _locked(home / USE_LOCK, fcntl.LOCK_EX, wait=False),
    ):
        stop_server(data_dir)
    return True


def stop_server(data_dir: Path) -> None:
    run_server_command(
        find_binaries(), "pg_ctl", "stop", "-w", "-t", "30", "-D", str(data_dir), "-m", "fast"
    )


def status_line(home: Path) -> str:
    data_dir = home / "data"
    pid = running_postmaster(data_dir)
    if pid:
        return f"running (postmaster {pid}): {home}"
    return f"not running: {home}" if (data_dir / "PG_VERSION").is_file() else f"not created: {home}"


# -- the home directory ---------------------------------------------------------------------


def secure_home(home: Path) -> None:
    """Create the home private to this user, or refuse one that is not (UserError)."""
    as_root = os.geteuid() == 0
    prepare_location(home, server_user_entry() if as_root else None)
    mode = 0o711 if as_root else 0o700
    with contextlib.suppress(FileExistsError):
        home.mkdir(mode=mode)
    info = home.lstat()
    _refuse_unsafe(home, info, {os.geteuid()})
    if stat.S_IMODE(info.st_mode) != mode:
        home.chmod(mode)  # e.g. 0755 made by hand: not writable by others, only too open


def _secure_subdirectory(path: Path) -> None:
    """data/ and run/ belong to this user or (as root) to the server user."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    owners = {os.geteuid()} | ({server_user_entry().pw_uid} if os.geteuid() == 0 else set())
    _refuse_unsafe(path, info, owners)


def _refuse_unsafe(path: Path, info: os.stat_result, owners: set[int]) -> None:
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UserError("unsafe cluster directory: not a directory (a link?)", path=str(path))
    if info.st_uid not in owners:
        raise UserError(
            f"unsafe cluster directory: owned by {user_name(info.st_uid)}, not by this user"
            " (set MIGSAFE_DATA_DIR elsewhere, or use --fresh-cluster)",
            path=str(path),
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UserError(
            f"unsafe cluster directory: writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); `chmod go-w` it, or use --fresh-cluster",
            path=str(path),
        )


def _make_run_dir(run_dir: Path) -> None:
    with contextlib.suppress(FileExistsError):
        run_dir.mkdir(mode=0o700)
    if os.geteuid() == 0:
        entry = server_user_entry()
        os.chown(run_dir, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    run_dir.chmod(0o700)


# -- locks, last use, the watcher -------------------------------------------------------------


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def _locked(path: Path, operation: int, *, wait: bool = True) -> Iterator[None]:
    descriptor = _open_lock_file(path)
    try:
        try:
            fcntl.flock(descriptor, operation | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise UserError("in use by a running `migsafe check`: try again when it ends",
                            path=str(path.parent)) from None  # fmt: skip
        yield
    finally:
        os.close(descriptor)


def _mark_used(home: Path, idle_stop_s: int) -> None:
    """Atomically: the file's mtime is the last use, its text the idle period."""
    temporary = home / f"{LAST_USED}.{os.getpid()}.{threading.get_ident()}"
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(str(idle_stop_s))
    os.replace(temporary, home / LAST_USED)


def _watcher_running(home: Path) -> bool:
    """The watcher holds `watcher.lock` for its whole life."""
    descriptor = _open_lock_file(home / WATCHER_LOCK)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def _start_watcher(home: Path) -> None:
    """Detached: its own session, no inherited descriptors, a minimal environment (it
    needs no password: pg_ctl stop signals the postmaster). A second one started at the
    same moment finds `watcher.lock` taken and exits."""
    import bot

    root = str(Path(bot.__file__).resolve().parents[1])
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from bot.sandbox.idle_stop import main; main(sys.argv[2:])"
    )
    subprocess.Popen(
        [sys.executable, "-I", "-c", code, root, str(home)],
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
