"""The embedded cluster: private, socket-only, password-protected, recoverable after crashes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.errors import UserError
from bot.sandbox import cluster as cluster_module
from bot.sandbox.cluster import ADMIN_USER, EmbeddedCluster, shared_cluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory the unprivileged server user can reach (pytest's tmp_path is
    private to root when the tests run as root)."""
    directory = Path(tempfile.mkdtemp(prefix="migsafe-test-"))
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _query(conninfo: str, statement: str) -> object:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        row = connection.execute(statement).fetchone()
    assert row is not None
    return row[0]


def _pid_alive(pid: int) -> bool:
    """Running (a zombie waiting for a slow init to reap it has stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def _start_in_process(data_dir: Path | None, *, crash: bool) -> tuple[Path, Path]:
    """A separate migsafe process that starts a cluster, then exits normally or dies
    without running atexit (as on SIGKILL)."""
    code = (
        "import os, sys; from pathlib import Path\n"
        "from bot.sandbox.cluster import EmbeddedCluster\n"
        "c = EmbeddedCluster(Path(sys.argv[1]) if sys.argv[1] else None).start()\n"
        "print(c.socket_dir); print(c.data_dir, flush=True)\n"
        f"{'os._exit(0)' if crash else 'sys.exit(0)'}\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(data_dir or "")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    socket_dir, started_data_dir = result.stdout.split()
    return Path(socket_dir), Path(started_data_dir)


def test_cluster_answers_select_version(embedded_cluster: EmbeddedCluster) -> None:
    version = _query(embedded_cluster.conninfo(), "SELECT version()")
    assert str(version).startswith("PostgreSQL ")
    assert embedded_cluster.server_version().split(".")[0].isdigit()


def test_cluster_listens_on_no_tcp_port(embedded_cluster: EmbeddedCluster) -> None:
    assert _query(embedded_cluster.conninfo(), "SHOW listen_addresses") == ""
    socket = embedded_cluster.socket_dir / ".s.PGSQL.5432"
    assert socket.is_socket()


def test_cluster_runs_without_durability(embedded_cluster: EmbeddedCluster) -> None:
    conninfo = embedded_cluster.conninfo()
    assert _query(conninfo, "SHOW fsync") == "off"
    assert _query(conninfo, "SHOW synchronous_commit") == "off"
    assert _query(conninfo, "SHOW max_connections") == "100"


def test_admin_needs_its_password_on_the_socket(embedded_cluster: EmbeddedCluster) -> None:
    # The sandboxed child can reach the socket: trust auth would give it the superuser.
    without_password = psycopg.conninfo.make_conninfo(
        host=str(embedded_cluster.socket_dir), port=5432, user=ADMIN_USER, dbname="postgres"
    )
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without_password, connect_timeout=5)


def test_public_cannot_connect_to_the_shared_databases(embedded_cluster: EmbeddedCluster) -> None:
    statement = (
        "SELECT count(*) FROM pg_database, aclexplode(datacl) AS acl"
        " WHERE datname IN ('postgres', 'template1') AND acl.grantee = 0"
        " AND acl.privilege_type = 'CONNECT'"
    )
    assert _query(embedded_cluster.conninfo(), statement) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop only happens as root")
def test_server_runs_unprivileged_and_socket_reachable_by_nobody(
    embedded_cluster: EmbeddedCluster,
) -> None:
    postmaster = _postmaster_pid(embedded_cluster.data_dir)
    assert Path(f"/proc/{postmaster}").stat().st_uid != 0
    psql = shutil.which("psql") or str(cluster_module.find_binaries() / "psql")
    params = psycopg.conninfo.conninfo_to_dict(embedded_cluster.conninfo())
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", psql, "-XAtc",
         "SELECT current_user", "-h", str(params["host"]), "-p", str(params["port"]),
         "-U", ADMIN_USER, "-d", "postgres"],
        env={"PGPASSWORD": str(params["password"]), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30, cwd="/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ADMIN_USER


def test_start_is_fast_and_stop_leaves_nothing(require_binaries: None) -> None:
    began = time.perf_counter()
    cluster = EmbeddedCluster().start()
    elapsed = time.perf_counter() - began
    run_dir, postmaster = cluster.socket_dir, _postmaster_pid(cluster.data_dir)
    cluster.stop()
    assert elapsed < 2.0
    assert not run_dir.exists()
    assert not _pid_alive(postmaster)
    assert not cluster.running


def test_persistent_data_dir_is_reused(require_binaries: None, shared_tmp: Path) -> None:
    data_dir = shared_tmp / "pgdata"
    with EmbeddedCluster(data_dir) as first, psycopg.connect(first.conninfo()) as connection:
        connection.execute("CREATE TABLE kept (id int)")
    assert (data_dir / "PG_VERSION").is_file()
    with EmbeddedCluster(data_dir) as second:
        assert _query(second.conninfo(), "SELECT to_regclass('kept') IS NOT NULL") is True


def test_stale_pid_file_of_a_dead_or_foreign_process_is_recovered(
    require_binaries: None, shared_tmp: Path
) -> None:
    data_dir = shared_tmp / "pgdata"
    EmbeddedCluster(data_dir).start().stop()
    # A crash leaves postmaster.pid behind; its pid now belongs to an unrelated process.
    pid_file = data_dir / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{data_dir}\n0\n5432\n\n\n")
    with EmbeddedCluster(data_dir) as cluster:
        assert _query(cluster.conninfo(), "SELECT 1") == 1
        assert _postmaster_pid(data_dir) != os.getpid()


def test_postmaster_left_running_by_a_crashed_run_is_replaced(
    require_binaries: None, shared_tmp: Path
) -> None:
    data_dir = shared_tmp / "pgdata"
    _start_in_process(data_dir, crash=True)
    orphan = _postmaster_pid(data_dir)
    assert _pid_alive(orphan)
    with EmbeddedCluster(data_dir) as cluster:
        assert _query(cluster.conninfo(), "SELECT 1") == 1
        assert _postmaster_pid(data_dir) != orphan
    assert not _pid_alive(orphan)


def test_persistent_data_dir_in_use_by_a_live_process_is_refused(
    require_binaries: None, shared_tmp: Path
) -> None:
    data_dir = shared_tmp / "pgdata"
    with EmbeddedCluster(data_dir) as first:
        # Pretend another live process started it: the owner file names that process.
        (first.socket_dir / "owner.pid").write_text(str(os.getppid()))
        with pytest.raises(UserError, match="in use by the running migsafe process"):
            EmbeddedCluster(data_dir).start()
        assert _query(first.conninfo(), "SELECT 1") == 1


def test_temporary_cluster_of_a_killed_process_is_reaped(require_binaries: None) -> None:
    run_dir, data_dir = _start_in_process(None, crash=True)
    orphan = _postmaster_pid(data_dir)
    with EmbeddedCluster():
        assert not run_dir.exists()
        assert not _pid_alive(orphan)


def test_process_exit_stops_its_cluster(require_binaries: None) -> None:
    run_dir, data_dir = _start_in_process(None, crash=False)
    assert not run_dir.exists()
    assert not data_dir.exists()


def test_shared_cluster_is_one_per_process(require_binaries: None) -> None:
    seen: list[EmbeddedCluster] = []
    threads = [threading.Thread(target=lambda: seen.append(shared_cluster())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(seen) == 4
        assert all(cluster is seen[0] for cluster in seen)
        assert shared_cluster() is seen[0]
    finally:
        seen[0].stop()


def test_missing_binaries_say_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    with pytest.raises(UserError, match="apt-get install postgresql") as raised:
        EmbeddedCluster().start()
    assert "MIGSAFE_SANDBOX_URL" in str(raised.value)
