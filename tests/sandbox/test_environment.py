"""The repository's virtualenv: setup commands run contained, the result cached and reused."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot.policy.config import SandboxSettings
from bot.sandbox.environment import (
    CACHE_VARIABLE,
    PreparedEnvironment,
    default_cache_dir,
    environment_key,
    prepare_environment,
)
from bot.sandbox.isolation import NETWORK_ALLOWED, run_isolated, scrubbed_env

WRITE_PREFIX = "python -c \"import sys; open('marker', 'w').write(sys.prefix)\""


def _repo(root: Path, files: dict[str, str] | None = None) -> Path:
    """A working copy of a repository (each check gets a fresh one)."""
    root.mkdir(parents=True)
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def _prepare(
    work_root: Path,
    cache: Path,
    *setup: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 60,
    network: bool = False,
) -> PreparedEnvironment:
    settings = SandboxSettings(setup=list(setup), env=env or {}, setup_network=network)
    return prepare_environment(work_root, settings, timeout_s=timeout_s, cache_dir=cache)


def _imports(python: str, module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-I", "-c", code], check=False).returncode == 0


def _wheel(directory: Path, name: str = "lp", version: str = "0.1") -> Path:
    """A minimal pure-Python wheel, installable with --no-index (no build backend needed)."""
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        ),
        f"{name}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def test_without_setup_the_child_runs_migsafes_interpreter(tmp_path: Path) -> None:
    prepared = _prepare(_repo(tmp_path / "repo"), tmp_path / "cache")
    assert prepared == PreparedEnvironment(python=sys.executable)
    assert not (tmp_path / "cache").exists()


def test_setup_runs_in_a_virtualenv_that_sees_migsafes_packages(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    prepared = _prepare(repo, tmp_path / "cache", WRITE_PREFIX)
    assert prepared.error is None and not prepared.reused
    venv = Path(prepared.python).parent.parent
    assert venv.parent == tmp_path / "cache"
    assert (repo / "marker").read_text() == str(venv)  # `python` on PATH is the venv's
    for module in ("alembic", "sqlalchemy", "psycopg"):  # --system-site-packages
        assert _imports(prepared.python, module), module
    # No network unless the policy says `setup_network: true`.
    assert "setup: network: none (new network namespace)" in prepared.protections
    assert NETWORK_ALLOWED not in [line.removeprefix("setup: ") for line in prepared.protections]
    assert any(
        line.startswith("setup: limits: cpu 600s, memory 2 GiB") for line in prepared.protections
    )


def test_a_second_check_reuses_the_virtualenv_without_running_setup(tmp_path: Path) -> None:
    first = _prepare(_repo(tmp_path / "one"), tmp_path / "cache", WRITE_PREFIX)
    second_repo = _repo(tmp_path / "two")
    second = _prepare(second_repo, tmp_path / "cache", WRITE_PREFIX)
    assert second.error is None and second.reused
    assert second.python == first.python
    assert not (second_repo / "marker").exists()
    assert second.protections[0].startswith("setup: virtualenv ")


def test_pip_installs_into_the_virtualenv_and_never_into_migsafes(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"requirements.txt": "./wheels/lp-0.1-py3-none-any.whl\n"})
    _wheel(repo / "wheels")
    prepared = _prepare(repo, tmp_path / "cache", "pip install --no-index -r requirements.txt")
    assert prepared.error is None, prepared.error
    assert _imports(prepared.python, "lp")
    assert not _imports(sys.executable, "lp")
    # As the sandbox's Alembic child will run it: isolated mode, contained, scrubbed.
    contained = run_isolated(
        [prepared.python, "-I", "-B", "-c", "import lp, alembic, sqlalchemy, psycopg"],
        cwd=repo,
        env=scrubbed_env(),
        timeout_s=30,
    )
    assert contained.returncode == 0, contained.stderr


def test_the_cache_key_follows_the_named_requirement_files(tmp_path: Path) -> None:
    files = {"requirements.txt": "-r base.txt\n", "base.txt": "alembic\n", "app.py": "x = 1\n"}
    setup = SandboxSettings(setup=["pip install -r requirements.txt"])
    key = environment_key(_repo(tmp_path / "a", files), setup)
    assert environment_key(_repo(tmp_path / "b", files | {"app.py": "x = 2\n"}), setup) == key
    changed_include = files | {"base.txt": "alembic==1.20\n"}
    assert environment_key(_repo(tmp_path / "c", changed_include), setup) != key
    other_command = SandboxSettings(setup=["pip install -r requirements.txt --pre"])
    assert environment_key(_repo(tmp_path / "d", files), other_command) != key
    other_env = SandboxSettings(setup=setup.setup, env={"PIP_INDEX_URL": "https://x.test"})
    assert environment_key(_repo(tmp_path / "e", files), other_env) != key


def test_without_named_files_the_roots_requirement_files_count(tmp_path: Path) -> None:
    setup = SandboxSettings(setup=["make deps"])
    key = environment_key(_repo(tmp_path / "a", {"pyproject.toml": "[project]\n"}), setup)
    changed = {"pyproject.toml": "[project]\nname = 'x'\n"}
    assert environment_key(_repo(tmp_path / "b", changed), setup) != key


def test_a_requirement_symlink_out_of_the_repository_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "host-secret.txt"
    outside.write_text("one")
    repo = _repo(tmp_path / "repo")
    (repo / "requirements.txt").symlink_to(outside)
    setup = SandboxSettings(setup=["pip install -r requirements.txt"])
    key = environment_key(repo, setup)
    outside.write_text("two")
    assert environment_key(repo, setup) == key


def test_a_failing_setup_is_an_error_and_is_not_cached(tmp_path: Path) -> None:
    command = "echo resolving >&2; exit 3"
    failed = _prepare(_repo(tmp_path / "one"), tmp_path / "cache", command)
    assert failed.python == sys.executable and not failed.reused
    assert failed.error == f"setup command `{command}` failed (exit status 3):\nresolving"
    again = _prepare(_repo(tmp_path / "two"), tmp_path / "cache", command)
    assert again.error is not None and not again.reused
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == []


def test_a_setup_past_its_time_limit_is_killed(tmp_path: Path) -> None:
    prepared = _prepare(_repo(tmp_path / "repo"), tmp_path / "cache", "sleep 30", timeout_s=1)
    assert prepared.error == "setup command `sleep 30` was killed after 1 s (wall clock limit)"


def test_setup_sees_the_policys_variables_and_none_of_the_bots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_faketoken123")
    repo = _repo(tmp_path / "repo")
    dump = "python -c \"import json, os; json.dump(dict(os.environ), open('env.json', 'w'))\""
    prepared = _prepare(repo, tmp_path / "cache", dump, env={"APP_ENV": "test"})
    assert prepared.error is None
    seen = json.loads((repo / "env.json").read_text())
    assert seen["APP_ENV"] == "test" and seen["VIRTUAL_ENV"] == str(
        Path(prepared.python).parents[1]
    )
    assert "GITHUB_TOKEN" not in seen and "ghs_faketoken123" not in json.dumps(seen)


def _connect_command(port: int) -> str:
    return f"python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 5)\""


def test_setup_reaches_the_network_only_when_the_policy_allows_it(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)
        port = listener.getsockname()[1]
        allowed = _prepare(
            _repo(tmp_path / "repo"), tmp_path / "cache", _connect_command(port), network=True
        )
        assert allowed.error is None, allowed.error
        connection, _ = listener.accept()  # the setup command did call
        connection.close()
        assert "setup: " + NETWORK_ALLOWED in allowed.protections


def test_setup_without_network_cannot_reach_the_machine(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        refused = _prepare(_repo(tmp_path / "repo"), tmp_path / "cache", _connect_command(port))
        assert refused.error is not None and "ConnectionRefusedError" in refused.error
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing arrived: the sandbox's loopback is its own


def test_the_cache_directory_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "venvs"
    monkeypatch.delenv(CACHE_VARIABLE)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "migsafe" / "venvs"
    shutil.rmtree(tmp_path / "c", ignore_errors=True)
