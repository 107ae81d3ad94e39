"""A private PostgreSQL cluster for sandbox runs: initdb + pg_ctl, Unix socket only, no TCP.

The cluster runs as an unprivileged OS user (``postgres`` when migsafe is root, because
initdb refuses root), with durability switched off (it only ever holds throwaway data).
Authentication is by password on the local socket, for every role: the socket must be
reachable by the sandboxed child, so ``trust`` would hand it the superuser.

Over 400 lines: one cluster's life (initdb, start, attach, stop, reap), kept together
because each step guards the next.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg.conninfo import make_conninfo

from bot.errors import UserError
from bot.sandbox.data_dir import DATA_MODE, create_private_file, prepare_location

ADMIN_USER = "migsafe_admin"
PORT = 5432  # Only names the socket file; the socket directory is private.
RUN_DIR_PREFIX = "migsafe-pg-"
SERVER_USER = "postgres"
PASSWORD_FILE = "migsafe_admin.password"  # Kept in the data directory (mode 0700).
OWNER_FILE = "owner.pid"
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.5432".
BINARIES = ("initdb", "pg_ctl", "postgres")
SERVER_OPTIONS = (
    "-c listen_addresses='' -c port={port} -c unix_socket_directories='{socket_dir}'"
    " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
)
COMMAND_TIMEOUT_S = 60.0
SHM_DIR = "/dev/shm"
SHM_MIN_FREE_BYTES = 1 << 30

NOT_FOUND_MESSAGE = (
    "PostgreSQL server binaries not found (initdb, pg_ctl, postgres): install them,"
    " e.g. `apt-get install postgresql`, or set MIGSAFE_SANDBOX_URL to an admin connection URL"
)


def find_binaries() -> Path:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then the newest
    /usr/lib/postgresql/<major>/bin."""
    on_path = [shutil.which(name) for name in BINARIES]
    if all(on_path):
        # Symlinks in /usr/local/bin point into the real bin directory, which has them all.
        directories = {Path(path).resolve().parent for path in on_path if path}
        if len(directories) == 1:
            return directories.pop()
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True):
        if all((Path(directory) / name).is_file() for name in BINARIES):
            return Path(directory)
    if all(on_path):
        return Path(str(on_path[0])).resolve().parent
    raise UserError(NOT_FOUND_MESSAGE)


def _major(bin_directory: str) -> int:
    version = Path(bin_directory).parent.name
    return int(version) if version.isdigit() else -1


class EmbeddedCluster:
    """A PostgreSQL cluster owned by this process; started by `start`, gone after `stop`.

    With `run_dir` (the CLI's kept cluster, see kept_cluster.py) the socket directory is
    fixed and the server outlives the process: `start` attaches to a postmaster of
    `data_dir` already running there, `stop` only lets go of it. The caller serialises
    starts (a file lock)."""

    def __init__(self, data_dir: Path | None = None, *, run_dir: Path | None = None) -> None:
        self._persistent = data_dir is not None
        self._requested_data_dir = data_dir.resolve() if data_dir is not None else None
        self._kept_run_dir = run_dir
        self.started_server = False  # this process ran pg_ctl start (not an attach)
        self._bin: Path | None = None
        self._run_dir: Path | None = None
        self._data_dir: Path | None = None
        self._password = ""
        self._version = ""
        self._lock = threading.Lock()

    # -- public API ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._run_dir is not None

    @property
    def socket_dir(self) -> Path:
        if self._run_dir is None:
            raise RuntimeError("the embedded PostgreSQL cluster is not running")
        return self._run_dir

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise RuntimeError("the embedded PostgreSQL cluster is not running")
        return self._data_dir

    def start(self) -> EmbeddedCluster:
        with self._lock:
            if self._run_dir is None:
                self._start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._run_dir is None:
                return
            run_dir, data_dir = self._run_dir, self._data_dir
            self._run_dir = self._data_dir = None
            atexit.unregister(self.stop)
            if self._kept_run_dir is not None:
                return  # left running for the next run (or the idle stop)
            if data_dir is not None:
                self._pg_ctl_stop(data_dir)
            shutil.rmtree(run_dir, ignore_errors=True)

    def conninfo(self, dbname: str = "postgres", user: str = ADMIN_USER) -> str:
        """A psycopg conninfo over the Unix socket (with the password when `user` is the admin)."""
        password = self._password if user == ADMIN_USER else None
        return make_conninfo(
            host=str(self.socket_dir), port=PORT, dbname=dbname, user=user, password=password
        )

    def server_version(self) -> str:
        """E.g. "15.18 (Debian 15.18-0+deb12u1)"."""
        if not self._version:
            with psycopg.connect(self.conninfo(), autocommit=True) as connection:
                row = connection.execute("SHOW server_version").fetchone()
                self._version = str(row[0]) if row else ""
        return self._version

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start ----------------------------------------------------------------------------

    def _start(self) -> None:
        self._bin = find_binaries()
        reap_orphaned_clusters(self._bin)
        if self._kept_run_dir is not None:
            self._start_kept(self._kept_run_dir)
            return
        run_dir = self._make_run_dir()
        data_dir = self._requested_data_dir or run_dir / "data"
        try:
            self._prepare_data_dir(data_dir, run_dir)
            self._pg_ctl_start(data_dir, run_dir)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        self._run_dir, self._data_dir = run_dir, data_dir
        atexit.register(self.stop)
        self._lock_down_shared_databases()

    def _start_kept(self, run_dir: Path) -> None:
        """Attach to the postmaster of the data directory when it runs with its socket in
        `run_dir`; else (first run, stopped, crashed: a stale pid file) start it there."""
        data_dir = self._requested_data_dir
        assert data_dir is not None
        pid_file = data_dir / "postmaster.pid"
        if _is_postmaster_of(_read_pid(pid_file), data_dir):
            if _socket_dir_of(pid_file) == run_dir and (data_dir / PASSWORD_FILE).is_file():
                self._password = _read_password(data_dir)
                self._run_dir, self._data_dir = run_dir, data_dir
                atexit.register(self.stop)
                return
            self._pg_ctl_stop(data_dir)  # not started as the kept cluster: start it anew
        self._prepare_data_dir(data_dir, run_dir)
        self._pg_ctl_start(data_dir, run_dir)
        self.started_server = True
        self._run_dir, self._data_dir = run_dir, data_dir
        atexit.register(self.stop)
        self._lock_down_shared_databases()

    def _pg_ctl_start(self, data_dir: Path, run_dir: Path) -> None:
        log = run_dir / "server.log"
        try:
            self._server_command(
                "pg_ctl", "start", "-w", "-D", str(data_dir), "-l", str(log),
                "-o", SERVER_OPTIONS.format(port=PORT, socket_dir=run_dir),
            )  # fmt: skip
        except UserError as error:
            lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
            raise UserError(f"{error} ({lines[-1] if lines else 'no server log'})") from error

    def _make_run_dir(self) -> Path:
        """The socket and log directory: short path, traversable (not listable) by others,
        so a sandboxed child running as another user can reach the socket."""
        run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=_run_base()))
        (run_dir / OWNER_FILE).write_text(str(os.getpid()))
        run_dir.chmod(0o711)
        _give_to_server_user(run_dir)
        return run_dir

    def _prepare_data_dir(self, data_dir: Path, run_dir: Path) -> None:
        if self._persistent:
            prepare_location(data_dir, server_user_entry() if os.geteuid() == 0 else None)
        if (data_dir / "PG_VERSION").is_file():
            _give_to_server_user(data_dir, recursive=True)
            # A copied or restored directory may have come back with wider modes.
            data_dir.chmod(DATA_MODE)
            self._password = _read_password(data_dir)
            self._recover_stale_postmaster(data_dir)
            return
        if data_dir.exists() and any(data_dir.iterdir()):
            raise UserError("not empty and not a PostgreSQL data directory", path=str(data_dir))
        try:
            data_dir.mkdir(exist_ok=True)
        except OSError as error:
            message = f"cannot create the data directory: {error.strerror}"
            raise UserError(message, path=str(data_dir)) from error
        data_dir.chmod(DATA_MODE)
        _give_to_server_user(data_dir)
        self._initdb(data_dir, run_dir)

    def _initdb(self, data_dir: Path, run_dir: Path) -> None:
        self._password = secrets.token_hex(24)
        # The run directory is enterable by others (for the socket) and this name is known:
        # the file must be 0600 from its creation on.
        password_file = run_dir / "initdb.password"
        create_private_file(password_file, self._password)
        _give_to_server_user(password_file)
        try:
            self._server_command(
                "initdb", "-D", str(data_dir), "-U", ADMIN_USER, f"--pwfile={password_file}",
                "--auth-local=scram-sha-256", "--auth-host=reject", "--no-sync",
                "--encoding=UTF8", "--locale=C", "--no-instructions",
            )  # fmt: skip
        finally:
            password_file.unlink(missing_ok=True)
        kept = data_dir / PASSWORD_FILE
        create_private_file(kept, self._password)
        _give_to_server_user(kept)  # as on every later start (recursive): one owner for all

    def _recover_stale_postmaster(self, data_dir: Path) -> None:
        """A crashed run may have left its postmaster running, or only its postmaster.pid."""
        pid_file = data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        if _is_postmaster_of(_read_pid(pid_file), data_dir):
            owner = _owner_of_socket_dir(pid_file)
            if owner is not None and owner != os.getpid() and _process_alive(owner):
                message = f"in use by the running migsafe process {owner}"
                raise UserError(message, path=str(data_dir))
            self._pg_ctl_stop(data_dir)
        pid_file.unlink(missing_ok=True)

    def _lock_down_shared_databases(self) -> None:
        """Sandbox roles get CONNECT on their own database only."""
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
            connection.execute("REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC")

    # -- processes ------------------------------------------------------------------------

    def _pg_ctl_stop(self, data_dir: Path) -> None:
        for mode in ("fast", "immediate"):
            try:
                self._server_command("pg_ctl", "stop", "-w", "-t", "20", "-D", str(data_dir),
                                     "-m", mode)  # fmt: skip
                return
            except UserError:
                continue

    def _server_command(self, program: str, *args: str) -> None:
        assert self._bin is not None
        run_server_command(self._bin, program, *args)


def _run_base() -> Path:
    """Memory-backed /dev/shm when it has room (creating a database there takes ~20 ms
    instead of ~80 ms on disk: the data is throwaway anyway), else the temp directory."""
    shm = Path(SHM_DIR)
    with contextlib.suppress(OSError):
        stats = os.statvfs(shm)
        if stats.f_bavail * stats.f_frsize >= SHM_MIN_FREE_BYTES and os.access(shm, os.W_OK):
            return shm
    base = Path(tempfile.gettempdir())
    return base if len(str(base)) <= SOCKET_PATH_MAX - 40 else Path("/tmp")


def run_server_command(bin_dir: Path, program: str, *args: str) -> None:
    """Run a PostgreSQL server program as the server user with a minimal environment
    (the postmaster inherits it, and migsafe's own environment may hold secrets)."""
    command = [*_as_server_user(), str(bin_dir / program), *args]
    environment = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}
    try:
        subprocess.run(
            command,
            env=environment,
            check=True,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            cwd="/",
        )
    except subprocess.CalledProcessError as error:
        lines = (error.stderr or error.stdout or "").strip().splitlines()
        detail = lines[-1] if lines else "no output"
        if os.geteuid() == 0 and "Permission denied" in detail:
            detail += f" (PostgreSQL runs as the OS user {SERVER_USER!r}, which needs access)"
        raise UserError(f"{program} failed (exit {error.returncode}): {detail}") from error
    except subprocess.TimeoutExpired as error:
        raise UserError(f"{program} did not finish within {COMMAND_TIMEOUT_S:.0f} s") from error


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--init-groups"]


def server_user_entry() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError as error:
        raise UserError(
            f"running as root needs the unprivileged OS user {SERVER_USER!r} to run PostgreSQL"
        ) from error


def _give_to_server_user(path: Path, *, recursive: bool = False) -> None:
    if os.geteuid() != 0:
        return
    entry = server_user_entry()
    paths = [path]
    if recursive:
        paths += [Path(root) / name for root, dirs, files in os.walk(path) for name in dirs + files]
    for each in paths:
        if each.lstat().st_uid != entry.pw_uid:
            os.chown(each, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _read_password(data_dir: Path) -> str:
    password_file = data_dir / PASSWORD_FILE
    try:
        password_file.chmod(0o600)
        return password_file.read_text().strip()
    except OSError as error:
        message = f"cannot read {PASSWORD_FILE}: {error.strerror} (not created by migsafe?)"
        raise UserError(message, path=str(data_dir)) from error


def _socket_dir_of(pid_file: Path) -> Path | None:
    """Line 5 of postmaster.pid: the (first) socket directory the postmaster listens in."""
    try:
        return Path(pid_file.read_text().splitlines()[4].strip())
    except (OSError, IndexError):
        return None


def running_postmaster(data_dir: Path) -> int:
    """The pid of the postmaster running on `data_dir` (by its pid file), else 0."""
    pid = _read_pid(data_dir / "postmaster.pid")
    return pid if _is_postmaster_of(pid, data_dir) else 0


def _read_pid(pid_file: Path) -> int:
    try:
        return int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _owner_of_socket_dir(pid_file: Path) -> int | None:
    """The migsafe process that started the postmaster (line 5 names its socket directory)."""
    socket_dir = _socket_dir_of(pid_file)
    try:
        return int((socket_dir / OWNER_FILE).read_text()) if socket_dir else None
    except (OSError, ValueError):
        return None


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """True when `pid` is alive and is a postgres process (not a reused pid) for data_dir."""
    if pid <= 0:
        return False
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(os.fsdecode(command_line[0])).name in {"postgres", "postmaster"} and any(
        os.fsdecode(part) == str(data_dir) for part in command_line
    )


def reap_orphaned_clusters(bin_dir: Path) -> None:
    """Stop and remove clusters whose migsafe process died without its atexit (SIGKILL)."""
    bases = {Path(SHM_DIR), Path(tempfile.gettempdir()), Path("/tmp")}
    for run_dir in (found for base in bases for found in base.glob(f"{RUN_DIR_PREFIX}*")):
        with contextlib.suppress(OSError, ValueError, UserError):
            owner = int((run_dir / OWNER_FILE).read_text())
            if _process_alive(owner):
                continue
            data_dir = run_dir / "data"
            if _is_postmaster_of(_read_pid(data_dir / "postmaster.pid"), data_dir):
                run_server_command(
                    bin_dir, "pg_ctl", "stop", "-D", str(data_dir), "-m", "immediate"
                )
            shutil.rmtree(run_dir, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Exited, not yet reaped (an init that reaps slowly keeps these around)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


_shared: EmbeddedCluster | None = None
_shared_lock = threading.Lock()
_provider: Callable[[], EmbeddedCluster] | None = None


def provide_shared_cluster(provider: Callable[[], EmbeddedCluster] | None) -> None:
    """Where `shared_cluster` takes its cluster from instead of starting a throw-away one
    (the CLI: its kept cluster, being started in the background); None: back to that."""
    global _provider
    with _shared_lock:
        _provider = provider


def shared_cluster() -> EmbeddedCluster:
    """The process-wide embedded cluster, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = _provider() if _provider is not None else EmbeddedCluster().start()
        return _shared
