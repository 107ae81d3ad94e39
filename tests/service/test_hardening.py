"""The service's secrets out of reach: not in any child's environment, and its
/proc/<pid>/environ and memory closed to other processes of the same user.

Real processes throughout: the real `migsafe serve` on the test cluster's state database,
and readers started as the same user. As root, "the same user" without CAP_SYS_PTRACE (how a
container's root usually is): root with that capability may read any process by design.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.hardening import SECRET_VARIABLES
from tests.fakegithub.server import FakeGitHub

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"
WEBHOOK_SECRET = "webhook-secret-that-must-not-leak"
PAGE_SECRET = "page-secret-that-must-not-leak-0123456789"
SANDBOX_PASSWORD = "sandbox-password-that-must-not-leak"
PG_PASSWORD = "libpq-password-that-must-not-leak"

# Opens (only: reading /proc/<pid>/mem at offset 0 fails even where allowed) the file given.
OPEN_ONLY = 'exec 3< "$1" && echo opened'
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

# The hardening function alone, in a process that is (as root: first becomes) unprivileged.
HARDENED_SLEEPER = """
import ctypes, os, sys, time
from bot import hardening
if os.geteuid() == 0:
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
if sys.argv[1] == "harden":
    hardening.make_non_dumpable()
else:  # as after an exec: changing the uid above cleared the flag
    ctypes.CDLL(None).prctl(hardening.PR_SET_DUMPABLE, 1, 0, 0, 0)
print("ready", flush=True)
time.sleep(60)
"""

# The service's own start-up, then what a child started afterwards would inherit.
START_UP_THEN_SPAWN = """
import json, os, subprocess
from bot import hardening, service_cli
service_cli.start_up()
child = subprocess.run(["env", "-0"], capture_output=True, check=True).stdout.decode()
print(json.dumps({
    "own": sorted(os.environ),
    "child": [entry.split("=", 1)[0] for entry in child.split("\\0") if entry],
    "child_text": child,
    "dumpable": hardening.is_dumpable(),
}))
"""


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def service_environ(private_key_pem: str, tmp_path: Path) -> dict[str, str]:
    """Every secret variable set, each with a value the test can look for."""
    key_file = tmp_path / "app.pem"  # named, not read: MIGSAFE_PRIVATE_KEY wins
    key_file.write_text(private_key_pem)
    return {
        **os.environ,
        "MIGSAFE_APP_ID": "4242",
        "MIGSAFE_PRIVATE_KEY": private_key_pem,
        "MIGSAFE_PRIVATE_KEY_FILE": str(key_file),
        "MIGSAFE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MIGSAFE_PAGE_SECRET": PAGE_SECRET,
        "MIGSAFE_SANDBOX_URL": f"postgresql://admin:{SANDBOX_PASSWORD}@sandbox.invalid/postgres",
        "PGPASSWORD": PG_PASSWORD,
        "MIGSAFE_LOG_LEVEL": "DEBUG",  # not even the debug log may show a secret
    }


def _secret_values(environ: dict[str, str]) -> list[str]:
    pem_body = environ["MIGSAFE_PRIVATE_KEY"].splitlines()[1]
    return [pem_body, WEBHOOK_SECRET, PAGE_SECRET, SANDBOX_PASSWORD, environ["PGPASSWORD"]]


def _open_as(prefix: list[str], path: str) -> str:
    """'opened', or why not (the shell's message)."""
    command = [*prefix, "sh", "-c", OPEN_ONLY, "sh", path]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return result.stdout.strip() or result.stderr.strip()


def test_start_up_leaves_no_secret_for_a_child_to_inherit(
    service_environ: dict[str, str],
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", START_UP_THEN_SPAWN],
        env=service_environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    for name in SECRET_VARIABLES:
        assert name not in report["own"]
        assert name not in report["child"]
    assert {"MIGSAFE_APP_ID", "PATH"} <= set(report["child"])  # only the secrets go
    assert report["dumpable"] is False
    for value in _secret_values(service_environ):
        assert value not in report["child_text"]
        assert value not in result.stderr  # the debug log names variables, never values


@pytest.fixture
def running_service(
    service_environ: dict[str, str], state_conninfo: str, fake_github_in_thread: FakeGitHub
) -> Iterator[tuple[int, int]]:
    """The real `migsafe serve --no-worker` on the test cluster's state database, its
    password given in PGPASSWORD, as the fake GitHub's App (start-up checks its key); its pid
    and port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = conninfo_to_dict(state_conninfo)
    state_password = str(params.pop("password"))
    environ = {
        **service_environ,
        "DATABASE_URL": make_conninfo(**params),
        "PGPASSWORD": state_password,
        "PORT": str(port),
        "MIGSAFE_APP_ID": str(fake_github_in_thread.app_id),
        "MIGSAFE_PRIVATE_KEY": fake_github_in_thread.private_key_pem,
        "MIGSAFE_GITHUB_API_URL": fake_github_in_thread.url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--no-worker"],
        env=environ,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_healthy(process, port)
        yield process.pid, port
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    for value in [*_secret_values(environ), state_password]:
        assert value not in stderr


def _wait_until_healthy(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"migsafe serve exited {process.returncode}: {process.communicate()[1]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("migsafe serve did not answer /healthz within 60 s")


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="as root the same user is root, which may read any process's /proc entries "
    "(CAP_DAC_OVERRIDE): the service-level proof needs an unprivileged user, as in the "
    "Docker image; the hardening itself is proven as root by the next test",
)
@pytest.mark.parametrize("entry", ["environ", "mem"])
def test_the_service_environ_and_memory_are_closed_to_the_same_user(
    running_service: tuple[int, int], entry: str
) -> None:
    pid, _ = running_service
    # Control: the same user opens the entry of an ordinary process of its own, so the
    # refusal below is the service's doing.
    with subprocess.Popen(["sleep", "60"]) as ordinary:
        control = _open_as([], f"/proc/{ordinary.pid}/{entry}")
        ordinary.kill()
    assert control == "opened"
    assert "Permission denied" in _open_as([], f"/proc/{pid}/{entry}")


def test_the_service_keeps_using_pgpassword_after_removing_it(
    running_service: tuple[int, int],
) -> None:
    """libpq reads PGPASSWORD at each connection: removed from the environment, it must have
    gone into the URL (/readyz queries the state database on a new connection)."""
    _, port = running_service
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize("entry", ["environ", "mem"])
def test_the_hardening_closes_environ_and_memory_to_the_same_user(entry: str) -> None:
    """The function serve, worker and check call, in a process of an unprivileged user
    (as root: nobody, after the imports), read by another process of that user."""
    reader = NOBODY if os.geteuid() == 0 else []
    opened = {}
    for mode in ("control", "harden"):
        with subprocess.Popen(
            [sys.executable, "-c", HARDENED_SLEEPER, mode],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        ) as sleeper:
            assert sleeper.stdout is not None and sleeper.stdout.readline() == "ready\n"
            opened[mode] = _open_as(reader, f"/proc/{sleeper.pid}/{entry}")
            sleeper.kill()
    assert opened["control"] == "opened"
    assert "Permission denied" in opened["harden"]


def test_check_makes_itself_non_dumpable() -> None:
    """`migsafe check` holds the sandbox's admin password while repository code runs."""
    code = (
        "import sys\n"
        "from bot import hardening\n"
        "from bot.cli import main\n"
        "main(['check', sys.argv[1], '--no-sandbox', '--output', '/dev/null'])\n"
        "print(hardening.is_dumpable())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(SHOP)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "False"
