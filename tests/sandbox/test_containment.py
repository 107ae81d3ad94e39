"""The containment as an attacker meets it: each test is an attack that must fail.

CI runs the suite as root and as an ordinary user; both modes are proven by the same tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from bot.sandbox.containment import UID_BASE, UID_SLOTS
from bot.sandbox.isolation import IsolatedResult, Limits, run_isolated, scrubbed_env
from bot.sandbox.relay import DatabaseRelay
from tests.processes import processes_with, sleep_marker


def _python(
    code: str, cwd: Path, *, limits: Limits | None = None, writable_paths: list[Path] | None = None
) -> IsolatedResult:
    return run_isolated(
        [sys.executable, "-I", "-c", code],
        cwd=cwd,
        env=scrubbed_env(),
        timeout_s=30,
        limits=limits or Limits(),
        writable_paths=writable_paths or [],
    )


def _made(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_files_outside_the_view_do_not_exist_for_the_child(tmp_path: Path) -> None:
    """A key file, even one readable by everyone, is not in the child's view."""
    key = tmp_path / "secrets" / "app.private-key.pem"
    key.parent.mkdir()
    key.write_text("-----BEGIN PRIVATE KEY-----\nk3y-m4t3r14l\n")
    key.chmod(0o644)
    work = _made(tmp_path / "work")
    code = f"open({str(key)!r}).read()"
    result = _python(code, work)
    assert result.returncode == 1
    assert "FileNotFoundError" in result.stderr
    assert "k3y-m4t3r14l" not in result.stdout + result.stderr


def test_the_parent_and_other_processes_are_invisible(tmp_path: Path) -> None:
    """The service's environment and command line (/proc/<pid>/environ) are out of sight."""
    code = (
        "import os, json\n"
        "seen = {}\n"
        "for p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n"
        "        seen[p] = open(f'/proc/{p}/cmdline', 'rb').read().decode(errors='replace')\n"
        "print(json.dumps(seen))\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert len(seen) <= 4, seen  # bwrap's init and the child's own chain, nothing else
    ours = Path("/proc/self/cmdline").read_bytes().decode(errors="replace")
    assert ours not in seen.values()


def test_the_cluster_and_the_service_files_are_not_in_view(tmp_path: Path) -> None:
    """/dev/shm, /run, /var/lib and HOME are private or absent: the embedded cluster's data
    and socket directory, the service's data directory and keys live there."""
    code = (
        "import os, json\n"
        "print(json.dumps({d: sorted(os.listdir(d)) if os.path.isdir(d) else None\n"
        "    for d in ['/dev/shm', '/run', '/var/lib', '/root', os.environ['HOME']]}))\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["/dev/shm"] == [] and seen["/var/lib"] is None and seen["/run"] is None
    assert seen["/root"] in (None, [], [".pyenv"])  # at most the interpreter's own path


def test_writes_to_tmp_vanish_with_the_child(tmp_path: Path) -> None:
    name = f"migsafe-leftover-{uuid.uuid4().hex}"
    code = (
        f"for d in ('/tmp', '/var/tmp', '/dev/shm'):\n"
        f"    open(d + '/{name}', 'w').write('x' * 1000)\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    for directory in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not (Path(directory) / name).exists()


def test_tmpfs_size_is_limited(tmp_path: Path) -> None:
    code = (
        "import os\n"
        "with open('/tmp/fill', 'wb') as f:\n"
        "    for _ in range(400):\n"
        "        f.write(b'0' * 1024**2)\n"
    )
    result = _python(code, tmp_path, limits=Limits(file_size_bytes=1024**3))
    assert result.returncode == 1
    assert "No space left on device" in result.stderr


def test_the_working_copy_is_read_only_unless_writable(tmp_path: Path) -> None:
    work = _made(tmp_path / "work")
    (work / "env.py").write_text("x = 1\n")
    result = _python("open('env.py', 'a').write('y = 2')", work)
    assert result.returncode == 1
    # As root the child's own uid owns nothing here; as a user, the mount is read-only.
    assert "Permission denied" in result.stderr or "Read-only file system" in result.stderr
    assert (work / "env.py").read_text() == "x = 1\n"


def test_a_double_forked_setsid_process_dies_with_the_child(tmp_path: Path) -> None:
    marker = sleep_marker()
    result = run_isolated(
        ["sh", "-c", f"setsid sh -c 'sleep {marker} &' ; sleep 0.2; exit 0"],
        cwd=tmp_path,
        env=scrubbed_env(),
        timeout_s=10,
    )
    assert result.returncode == 0, result.stderr
    assert not processes_with(marker)


def test_no_dns_and_no_route_out(tmp_path: Path) -> None:
    code = (
        "import socket\n"
        "for name in ('pypi.org', 'localhost.localdomain.invalid'):\n"
        "    try:\n"
        "        socket.getaddrinfo(name, 443)\n"
        "        print('resolved', name)\n"
        "    except OSError as e:\n"
        "        print('no', name)\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print('unreachable')\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resolved" not in result.stdout and "connected" not in result.stdout


def test_each_child_has_an_identity_of_its_own(tmp_path: Path) -> None:
    uids: list[str] = []

    def one() -> None:
        done = run_isolated(
            ["sh", "-c", "id -u; sleep 0.5"], cwd=tmp_path, env=scrubbed_env(), timeout_s=20
        )
        uids.append(done.stdout.strip())

    threads = [threading.Thread(target=one) for _ in range(3)]
    for each in threads:
        each.start()
    for each in threads:
        each.join()
    if os.geteuid() == 0:
        assert len(set(uids)) == 3, uids  # three children at once: three uids
        assert all(UID_BASE <= int(uid) < UID_BASE + UID_SLOTS for uid in uids)
    else:
        assert set(uids) == {"65534"}  # a user namespace of its own, migsafe's uid outside


def test_two_children_at_once_cannot_read_or_forge_each_others_files(tmp_path: Path) -> None:
    """The attack from issue 11: one check reads another's tree and rewrites its result."""
    first_tree, first_out = _made(tmp_path / "one" / "tree"), _made(tmp_path / "one" / "out")
    (first_tree / ".env").write_text("SECRET=first\n")
    (first_out / "result.json").write_text('{"findings": 11}')
    second = _made(tmp_path / "two")
    attack = (
        "import json\n"
        "out = {}\n"
        f"for path in [{str(first_tree / '.env')!r}, {str(first_out / 'result.json')!r}]:\n"
        "    try:\n"
        "        out[path] = open(path).read()\n"
        "        open(path, 'w').write('forged')\n"
        "    except OSError as e:\n"
        "        out[path] = type(e).__name__\n"
        "print(json.dumps(out))\n"
    )
    hold = "import time; time.sleep(1.5)"
    holder = threading.Thread(
        target=_python,
        args=(hold, first_tree),
        kwargs={"writable_paths": [first_out]},
    )
    holder.start()
    result = _python(attack, second)
    holder.join()
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout).values()) == {"FileNotFoundError"}
    assert (first_out / "result.json").read_text() == '{"findings": 11}'


def test_the_database_socket_is_the_only_way_out(tmp_path: Path) -> None:
    """A Unix socket relayed by the parent reaches what the parent chose, and nothing else."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        relay_dir = _made(tmp_path / "relay")
        relay = DatabaseRelay(relay_dir)
        relay.connect_to("127.0.0.1", port)
        answered = threading.Event()

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.sendall(connection.recv(100).upper())
                answered.set()

        threading.Thread(target=answer, daemon=True).start()
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.connect({str(relay.socket_path)!r})\n"
            "s.sendall(b'ping'); print(s.recv(100).decode())\n"
        )
        try:
            result = run_isolated(
                [sys.executable, "-I", "-c", code],
                cwd=tmp_path,
                env=scrubbed_env(),
                timeout_s=20,
                writable_paths=[relay.socket_path],
            )
        finally:
            relay.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PING" and answered.is_set()


def test_without_containment_nothing_runs_and_the_reason_is_given(tmp_path: Path) -> None:
    """Fail closed: bubblewrap missing (as in a container that forbids user namespaces)."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from bot.sandbox.isolation import ContainmentUnavailable, run_isolated, scrubbed_env\n"
        "try:\n"
        "    run_isolated(['true'], cwd=Path('/'), env=scrubbed_env(), timeout_s=5)\n"
        "except ContainmentUnavailable as error:\n"
        "    print('refused:', error)\n"
        "else:\n"
        "    print('ran')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env={**os.environ, "MIGSAFE_BWRAP": str(tmp_path / "no-bwrap"), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: bubblewrap (bwrap) not found")
    assert "user namespaces" in done.stdout  # how to enable it
