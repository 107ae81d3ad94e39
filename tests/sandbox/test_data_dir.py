"""The persistent cluster's data directory: reachable by the server user (created so where
migsafe makes it), private to it, and one clear line when it cannot be."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.errors import UserError
from bot.sandbox.cluster import PASSWORD_FILE, SERVER_USER, EmbeddedCluster

REPO = Path(__file__).resolve().parents[2]
ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="only as root does PostgreSQL run as another user (postgres)"
)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory the server user can enter (pytest's tmp_path is root's alone as root)."""
    directory = Path(tempfile.mkdtemp(prefix="migsafe-test-"))
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """Like /root: mode 0700, owned by this process's user."""
    directory = Path(tempfile.mkdtemp(prefix="migsafe-test-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


@ROOT_ONLY
def test_a_data_dir_the_server_user_cannot_enter_is_one_clear_error(
    require_binaries: None, private_tmp: Path
) -> None:
    data_dir = private_tmp / ".local" / "share" / "migsafe" / "pg"  # as under /root
    with pytest.raises(UserError) as raised:
        EmbeddedCluster(data_dir).start()
    message = str(raised.value)
    assert message.startswith(f"{data_dir}: ")
    assert f"{SERVER_USER!r}" in message
    assert f"cannot enter {private_tmp} (mode 0700, owner root)" in message
    assert "MIGSAFE_DATA_DIR" in message
    assert not (private_tmp / ".local").exists()  # refused before creating anything


@ROOT_ONLY
def test_missing_parents_are_made_enterable_whatever_the_umask(
    require_binaries: None, shared_tmp: Path
) -> None:
    data_dir = shared_tmp / "var" / "lib" / "migsafe" / "pg"
    previous = os.umask(0o077)
    try:
        cluster = EmbeddedCluster(data_dir).start()
    finally:
        os.umask(previous)
    try:
        for parent in (shared_tmp / "var", shared_tmp / "var" / "lib", data_dir.parent):
            assert _mode(parent) == 0o711  # enterable, not listable
        assert (_mode(data_dir), _owner(data_dir)) == (0o700, SERVER_USER)
        password_file = data_dir / PASSWORD_FILE
        assert (_mode(password_file), _owner(password_file)) == (0o600, SERVER_USER)
        assert cluster.server_version()
    finally:
        cluster.stop()
    assert not list(shared_tmp.rglob("initdb.password"))


def test_the_data_dir_and_its_password_file_stay_private(
    require_binaries: None, shared_tmp: Path
) -> None:
    data_dir = shared_tmp / "pg"
    password_file = data_dir / PASSWORD_FILE
    with EmbeddedCluster(data_dir):
        assert _mode(data_dir) == 0o700
        assert _mode(password_file) == 0o600
    # A copy or a restore may bring the directory back with wider modes: tightened on start.
    data_dir.chmod(0o750)
    password_file.chmod(0o644)
    with EmbeddedCluster(data_dir) as cluster:
        assert cluster.server_version()
        assert _mode(data_dir) == 0o700
        assert _mode(password_file) == 0o600


def test_a_data_dir_that_cannot_be_created_names_itself(
    require_binaries: None, shared_tmp: Path
) -> None:
    blocker = shared_tmp / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match=f"^{blocker}/x/pg: {blocker} is not a directory$"):
        EmbeddedCluster(blocker / "x" / "pg").start()
    with pytest.raises(UserError, match=f"^{blocker}: not a directory$"):
        EmbeddedCluster(blocker).start()


def test_serve_with_an_unusable_data_dir_exits_2_with_one_line(
    require_binaries: None, shared_tmp: Path
) -> None:
    blocker = shared_tmp / "a-file"
    blocker.write_text("")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(shared_tmp),
        "MIGSAFE_APP_ID": "1",
        "MIGSAFE_PRIVATE_KEY": pem,
        "MIGSAFE_WEBHOOK_SECRET": "webhook-secret",
        "MIGSAFE_DATA_DIR": str(blocker / "pg"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"migsafe: error: {blocker / 'pg'}: {blocker} is not a directory"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may create a directory anywhere")
def test_a_parent_this_user_cannot_create_names_itself(require_binaries: None) -> None:
    parent = Path("/") / f"migsafe-test-{os.getpid()}"  # / is not writable by a user
    with pytest.raises(UserError, match=f"^{parent}/pg: cannot create {parent}: Permission denied"):
        EmbeddedCluster(parent / "pg").start()
