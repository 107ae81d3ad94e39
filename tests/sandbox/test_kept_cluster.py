"""The CLI's embedded cluster kept between runs: reused, recovered, refused when unsafe,
shared by concurrent checks, stopped when idle. Real `migsafe check` processes."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.cluster import PASSWORD_FILE

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "tests" / "fixtures" / "sandbox" / "clean_change"


@pytest.fixture
def data_root(require_binaries: None) -> Iterator[Path]:
    """A MIGSAFE_DATA_DIR whose kept cluster (`<it>-cli`) is stopped at the end. Its parent
    is enterable by the server user (`postgres` when the tests run as root)."""
    parent = Path(tempfile.mkdtemp(prefix="migsafe-kept-"))
    parent.chmod(0o711)
    data_dir = parent / "pg"
    yield data_dir
    migsafe("cluster", "stop", data_dir=data_dir)
    shutil.rmtree(parent, ignore_errors=True)


def migsafe(*argv: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *argv],
        cwd=REPO,
        env=_environment(data_dir),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _environment(data_dir: Path) -> dict[str, str]:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MIGSAFE_DATA_DIR": str(data_dir)}
    environment.pop("MIGSAFE_FRESH_CLUSTER", None)
    environment.pop("MIGSAFE_SANDBOX_URL", None)
    return environment


CHECK = ("check", str(PROJECT), "--from", "0001", "--format", "json")


def check(data_dir: Path, *extra: str) -> dict[str, object]:
    done = migsafe(*CHECK, *extra, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    sandbox = report["sandbox"]
    assert isinstance(sandbox, dict)
    assert [step["outcome"] for step in sandbox["steps"]] == ["passed"] * len(sandbox["steps"])
    return report


def home_of(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + "-cli")


def postmaster(data_dir: Path) -> tuple[int, str]:
    """(pid, start time) of the kept cluster's postmaster, from its pid file."""
    lines = (home_of(data_dir) / "data" / "postmaster.pid").read_text().splitlines()
    return int(lines[0]), lines[2]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_second_run_reuses_the_cluster_the_first_created(data_root: Path) -> None:
    first = check(data_root)
    home = home_of(data_root)
    server = postmaster(data_root)
    identity = (home / "data" / "PG_VERSION").stat().st_ino
    second = check(data_root)
    assert postmaster(data_root) == server and alive(server[0])  # not restarted
    assert (home / "data" / "PG_VERSION").stat().st_ino == identity  # no new initdb
    assert first["findings"] == second["findings"]


def test_the_home_is_private_and_the_password_never_printed(data_root: Path) -> None:
    done = migsafe(*CHECK, data_dir=data_root)
    assert done.returncode == 0, done.stderr
    home = home_of(data_root)
    password_file = home / "data" / PASSWORD_FILE
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE(home.stat().st_mode) == (0o711 if os.geteuid() == 0 else 0o700)
    assert home.stat().st_uid == os.geteuid()
    password = password_file.read_text().strip()
    assert len(password) >= 32 and password not in done.stdout + done.stderr
    status = migsafe("cluster", "status", data_dir=data_root)
    assert status.stdout.startswith("running (postmaster ") and password not in status.stdout


def test_fresh_cluster_leaves_the_kept_one_alone(data_root: Path) -> None:
    home = home_of(data_root)
    check(data_root, "--fresh-cluster")
    assert not home.exists()  # not even created
    check(data_root)
    server = postmaster(data_root)
    last_used = (home / "last-used").stat().st_mtime_ns
    check(data_root, "--fresh-cluster")
    assert postmaster(data_root) == server and alive(server[0])
    assert (home / "last-used").stat().st_mtime_ns == last_used  # not used either


def test_a_stale_pid_file_is_recovered(data_root: Path) -> None:
    check(data_root)
    pid_file = home_of(data_root) / "data" / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    assert migsafe("cluster", "stop", data_dir=data_root).stdout.startswith("stopped: ")
    dead = subprocess.Popen(["true"])
    dead.wait()
    # As a crash leaves it: the pid file of a postmaster that is gone (its pid now free).
    pid_file.write_text("\n".join([str(dead.pid), *lines[1:]]) + "\n")
    check(data_root)
    pid, _ = postmaster(data_root)
    assert pid != dead.pid and alive(pid)


def test_a_data_directory_left_by_an_interrupted_initdb_is_made_anew(data_root: Path) -> None:
    data_dir = home_of(data_root) / "data"
    data_dir.mkdir(parents=True, mode=0o700)
    (data_dir / "PG_VERSION").write_text("15\n")  # initdb's first file; no password file yet
    check(data_root)
    assert (data_dir / PASSWORD_FILE).is_file() and alive(postmaster(data_root)[0])


@pytest.mark.parametrize("unsafe", ["world-writable", "group-writable", "a link", "another owner"])
def test_an_unsafe_home_is_refused_with_one_line_and_exit_2(data_root: Path, unsafe: str) -> None:
    home = home_of(data_root)
    if unsafe == "a link":
        target = data_root.parent / "elsewhere"
        target.mkdir(mode=0o700)
        home.symlink_to(target)
    else:
        home.mkdir()
        home.chmod({"world-writable": 0o777, "group-writable": 0o770}.get(unsafe, 0o700))
    if unsafe == "another owner":
        if os.geteuid() != 0:
            pytest.skip("only root can give a directory to another user")
        os.chown(home, 65534, 65534)
    done = migsafe(*CHECK, data_dir=data_root)
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("migsafe: error: ") and str(home) in done.stderr
    assert "unsafe cluster directory" in done.stderr
    assert not (home / "data").exists()


def test_two_concurrent_checks_share_the_new_cluster(data_root: Path) -> None:
    """Both start at once on an empty home: one initdb and one server (the start lock), a
    database and a role of its own for each check."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *CHECK],
            cwd=REPO,
            env=_environment(data_root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        steps = json.loads(out)["sandbox"]["steps"]
        assert {step["outcome"] for step in steps} == {"passed"}
    log = (home_of(data_root) / "run" / "server.log").read_text()
    assert log.count("database system is ready to accept connections") == 1
    assert alive(postmaster(data_root)[0])


def test_cluster_stop_waits_for_no_running_check(data_root: Path) -> None:
    check(data_root)
    use_lock = home_of(data_root) / "use.lock"
    descriptor = os.open(use_lock, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)  # as a running check holds it
        refused = migsafe("cluster", "stop", data_dir=data_root)
    finally:
        os.close(descriptor)
    assert refused.returncode == 2 and "in use by a running `migsafe check`" in refused.stderr
    assert alive(postmaster(data_root)[0])
    assert migsafe("cluster", "stop", data_dir=data_root).stdout.startswith("stopped: ")
    assert not (home_of(data_root) / "data" / "postmaster.pid").exists()


def _open_in_process(home: Path, idle_stop_s: int) -> int:
    """A migsafe process that attaches to (or starts) the kept cluster and exits."""
    code = textwrap.dedent(
        """
        import sys; from pathlib import Path
        from bot.sandbox.kept_cluster import open_kept_cluster
        open_kept_cluster(Path(sys.argv[1]), int(sys.argv[2]))
        """
    )
    subprocess.run(
        [sys.executable, "-c", code, str(home), str(idle_stop_s)], cwd=REPO, check=True, timeout=60
    )
    return int((home / "data" / "postmaster.pid").read_text().splitlines()[0])


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not alive(pid)


def test_the_idle_stop_waits_for_running_checks_then_stops_the_server(data_root: Path) -> None:
    home = home_of(data_root)
    pid = _open_in_process(home, idle_stop_s=1)
    descriptor = os.open(home / "use.lock", os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_SH)  # a check in progress
    try:
        assert not _gone_within(pid, 8)
    finally:
        os.close(descriptor)
    assert _gone_within(pid, 20)
    assert migsafe("cluster", "status", data_dir=data_root).stdout.startswith("not running: ")


UNPRIVILEGED = textwrap.dedent(
    """
    import os, sys; from pathlib import Path
    from bot.sandbox.database import SandboxServer, create_sandbox
    from bot.sandbox.kept_cluster import open_kept_cluster, stop_kept_cluster
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
    home = Path(sys.argv[1])
    if sys.argv[2] == "stop":
        print(stop_kept_cluster(home))
        sys.exit(0)
    cluster = open_kept_cluster(home, 0)  # no idle watcher: it could not run our Python
    server = SandboxServer(cluster.conninfo())
    sandbox = create_sandbox(server)
    sandbox.drop()
    server.close()
    print(cluster.started_server)
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="as an ordinary user the tests above are it")
def test_an_unprivileged_user_keeps_its_own_cluster(data_root: Path) -> None:
    """migsafe as an ordinary user (here nobody, after the imports: this interpreter is
    under /root): its home and server are its own, 0700, and reused."""
    parent = data_root.parent
    os.chown(parent, 65534, 65534)
    home = home_of(data_root)

    def as_nobody(action: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", UNPRIVILEGED, str(home), action],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    try:
        assert as_nobody("open") == "True"
        pid = postmaster(data_root)
        assert as_nobody("open") == "False" and postmaster(data_root) == pid
        for path in (home, home / "data", home / "run"):
            info = path.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (65534, 0o700), path
        assert Path(f"/proc/{pid[0]}").stat().st_uid == 65534  # the server runs as nobody
    finally:
        assert as_nobody("stop") in {"True", "False"}


def test_two_checks_get_a_database_and_role_each(data_root: Path) -> None:
    """Concurrent checks on the kept cluster: each sandbox is its own database and role."""
    check(data_root)
    code = textwrap.dedent(
        """
        import sys; from pathlib import Path
        from bot.sandbox.database import SandboxServer, create_sandbox
        from bot.sandbox.kept_cluster import open_kept_cluster
        cluster = open_kept_cluster(Path(sys.argv[1]), 0)
        server = SandboxServer(cluster.conninfo())
        sandbox = create_sandbox(server)
        print(sandbox.name, flush=True)
        sys.stdin.read()  # holds it until told
        """
    )
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(home_of(data_root))],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    names = []
    try:
        for holder in holders:
            assert holder.stdout is not None
            names.append(holder.stdout.readline().strip())
    finally:
        for holder in holders:
            holder.communicate("", timeout=60)
    assert len(set(names)) == 2 and all(name.startswith("migsafe_sbx_") for name in names)
