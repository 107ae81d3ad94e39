"""The repository's virtualenv for the sandbox's Alembic child, built by the policy's setup.

Repositories whose `env.py` imports the application need its dependencies. The policy file's
`sandbox.setup` commands (e.g. `pip install -r requirements.txt`) run in a virtualenv made
with `--system-site-packages` (so the alembic, sqlalchemy and psycopg of migsafe's own
install stay visible), inside the same limits as the migration code, with the scrubbed
environment plus `sandbox.env`: repository code (a package's build backend, a setup.py) is
hostile too. The network is allowed for setup only, to reach package indexes; the
protections say so.

The virtualenv is cached under `$MIGSAFE_CACHE_DIR/venvs` (default `~/.cache/migsafe/venvs`)
by a key over the commands, `sandbox.env`, the interpreter and the files the commands name
(requirement files, followed through `-r`/`-c`; for a named directory, its packaging
metadata), or when they name none, the root's `requirements*.txt`, `pyproject.toml`,
`setup.cfg` and `setup.py`. A reused virtualenv does not run the commands again: their
effects on the working copy (as opposed to the virtualenv) are not repeated.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.migrations.database_env import OFFLINE, child_variables
from bot.migrations.setup_inputs import setup_input_files
from bot.policy.config import SandboxSettings
from bot.sandbox.isolation import IsolatedResult, Limits, run_isolated, scrubbed_env

CACHE_VARIABLE = "MIGSAFE_CACHE_DIR"
KEY_VERSION = "1"  # bump when the virtualenv's layout or the key's inputs change
READY_MARKER = ".migsafe-ready"  # written last: a virtualenv without it is half-built
VENV_TIMEOUT_S = 120.0
ERROR_TAIL_CHARS = 2000
# pip downloads and builds wheels: more room than an Alembic run needs.
SETUP_LIMITS = Limits(
    cpu_seconds=600,
    memory_bytes=2 * 1024**3,
    max_processes=128,
    file_size_bytes=1024**3,
    open_files=1024,
)


@dataclass
class PreparedEnvironment:
    python: str  # the interpreter for the Alembic child
    protections: list[str] = field(default_factory=list)  # what the setup ran under
    reused: bool = False  # a cached virtualenv, the commands not run again
    error: str | None = None  # the setup failed: nothing usable was cached


def default_cache_dir() -> Path:
    """Where virtualenvs are kept: $MIGSAFE_CACHE_DIR/venvs, else ~/.cache/migsafe/venvs."""
    root = os.environ.get(CACHE_VARIABLE)
    base = Path(root) if root else Path.home() / ".cache" / "migsafe"
    return base / "venvs"


def prepare_environment(
    work_root: Path,
    settings: SandboxSettings,
    *,
    timeout_s: float,
    cache_dir: Path | None = None,
    limits: Limits = SETUP_LIMITS,
) -> PreparedEnvironment:
    """The interpreter the sandbox child should run: migsafe's own when there is no setup,
    else the repository's cached virtualenv (built now, running `settings.setup` in
    `work_root`, if missing). Never raises for what the commands do: see `error`."""
    if not settings.setup:
        return PreparedEnvironment(python=sys.executable)
    key = environment_key(work_root, settings)
    venvs = cache_dir or default_cache_dir()
    venvs.mkdir(parents=True, exist_ok=True)
    venv = venvs / key
    with _exclusive(venvs / f"{key}.lock"):  # one build per key, also across processes
        if (venv / READY_MARKER).is_file() and _python_of(venv).exists():
            os.utime(venv / READY_MARKER)  # last use, for whoever prunes the cache
            reused = f"setup: virtualenv {key[:12]} reused from the cache (commands not run)"
            return PreparedEnvironment(str(_python_of(venv)), [reused], reused=True)
        shutil.rmtree(venv, ignore_errors=True)
        return _build(venv, work_root, settings, timeout_s, limits)


def environment_key(work_root: Path, settings: SandboxSettings) -> str:
    """sha256 over what decides the virtualenv's content (see the module's docstring)."""
    inputs = {
        "version": KEY_VERSION,
        "python": [sys.executable, sys.version],
        "commands": list(settings.setup),
        "env": sorted(settings.env.items()),
        "files": setup_input_files(work_root.resolve(), settings.setup),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


# -- building --------------------------------------------------------------------------------


def _build(
    venv: Path, work_root: Path, settings: SandboxSettings, timeout_s: float, limits: Limits
) -> PreparedEnvironment:
    try:
        _create_venv(venv)
    except (OSError, subprocess.SubprocessError) as venv_error:
        shutil.rmtree(venv, ignore_errors=True)
        message = f"could not create a virtualenv: {venv_error}"
        return PreparedEnvironment(sys.executable, error=message)
    env = _setup_env(venv, settings)
    deadline = time.monotonic() + timeout_s
    protections: list[str] = []
    for command in settings.setup:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error: str | None = f"setup ran out of time ({timeout_s:g} s) before `{command}`"
        else:
            result = run_isolated(
                ["/bin/sh", "-c", command],
                cwd=work_root,
                env=env,
                timeout_s=remaining,
                limits=limits,
                writable_paths=[venv, work_root],
                allow_network=settings.setup_network,
            )
            protections = [f"setup: {line}" for line in result.protections]
            error = _failure(command, result, timeout_s)
        if error:
            shutil.rmtree(venv, ignore_errors=True)
            return PreparedEnvironment(sys.executable, protections, error=error)
    _seal(venv)
    return PreparedEnvironment(str(_python_of(venv)), protections)


def _create_venv(venv: Path) -> None:
    """--system-site-packages and a .pth naming migsafe's own site-packages: migsafe's
    alembic/sqlalchemy/psycopg stay importable, also where migsafe itself lives in a
    virtualenv (whose packages "system site packages" would not reach). pip comes from there
    too (fast) when migsafe's interpreter has it, via shims in bin/ so that a plain `pip`
    installs into the virtualenv, never into migsafe's interpreter. What the setup installs
    comes first on sys.path."""
    has_pip = importlib.util.find_spec("pip") is not None
    argv = [sys.executable, "-m", "venv", "--system-site-packages", str(venv)]
    if has_pip:
        argv.insert(3, "--without-pip")
    subprocess.run(argv, check=True, capture_output=True, timeout=VENV_TIMEOUT_S)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    own = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (venv / "lib" / version / "site-packages" / "_migsafe_parent.pth").write_text(
        "".join(f"{path}\n" for path in own)
    )
    if has_pip:
        for name in ("pip", "pip3"):
            shim = venv / "bin" / name
            shim.write_text(f'#!/bin/sh\nexec "{_python_of(venv)}" -m pip "$@"\n')
            shim.chmod(0o755)


def _setup_env(venv: Path, settings: SandboxSettings) -> dict[str, str]:
    # No database exists yet: `{host}`-style templates get the dry-run's offline values.
    variables = child_variables(OFFLINE, settings.env)
    env = scrubbed_env({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", **variables})
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env["PATH"]])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _failure(command: str, result: IsolatedResult, timeout_s: float) -> str | None:
    if result.timed_out:
        return f"setup command `{command}` was killed after {timeout_s:g} s (wall clock limit)"
    code = result.returncode
    if code == 0:
        return None
    status = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    output = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
    tail = output[-ERROR_TAIL_CHARS:] or "(no output)"
    return f"setup command `{command}` failed ({status}):\n{tail}"


def _seal(venv: Path) -> None:
    """Give the virtualenv back to migsafe's user (the setup may have run as an unprivileged
    one) so that the sandboxed Alembic run can read it but not change it; then mark it
    complete."""
    uid, gid = os.geteuid(), os.getegid()
    for directory, dirnames, filenames in os.walk(venv):
        os.chown(directory, uid, gid)
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)
    (venv / READY_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


def _python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
