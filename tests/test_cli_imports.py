"""The CLI starts at once: what each command imports in the `migsafe` process itself.

`migsafe --version` and `migsafe check` never import the GitHub App's service stack, and the
parent process of a check never imports SQLAlchemy or Alembic (the dry-run and the sandbox
children do). Each case runs in a fresh interpreter and reads its `sys.modules`: a behaviour
test, not a timing one (bench/bench_cli_start.py measures the time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot import __version__

ROOT = Path(__file__).resolve().parents[1]
SHOP = ROOT / "examples" / "shop"

# The GitHub App's stack: webhooks, job queue, metrics, templates, and what they pull in.
SERVICE_STACK = (
    "aiohttp",
    "procrastinate",
    "prometheus_client",
    "gidgethub",
    "jinja2",
    "pygments",
    "psycopg_pool",
    "jwt",
    "cachetools",
    "bot.jobs",
    "bot.service",
    "bot.webhooks",
    "bot.web",
    "bot.store",
)
# Alembic and what it runs on: imported by the dry-run and sandbox children only.
MIGRATION_STACK = ("sqlalchemy", "alembic", "mako")
FORBIDDEN = SERVICE_STACK + MIGRATION_STACK

# Runs `migsafe ARGV...` in this interpreter (as the console script would), then prints
# which forbidden modules it imported as the last line of stderr.
_PROBE = """
import json, sys
from bot.cli import main
forbidden, argv = json.loads(sys.argv[1]), json.loads(sys.argv[2])
try:
    code = main(argv)
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
imported = sorted(name for name in forbidden if name in sys.modules)
print(json.dumps({"code": code, "imported": imported}), file=sys.stderr)
"""


def imports_of(*argv: str, timeout: float = 120) -> tuple[int, list[str], str]:
    """(exit status, forbidden modules imported, stdout) of `migsafe ARGV...`."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(FORBIDDEN), json.dumps(argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.stderr.strip(), done.stdout
    verdict = json.loads(done.stderr.strip().splitlines()[-1])
    return verdict["code"], verdict["imported"], done.stdout


def test_version_as_a_module_prints_the_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"migsafe {__version__}"), done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("--version",),
        ("--help",),
        ("check", "--help"),
        ("serve", "--help"),
        ("db", "upgrade", "--help"),
        ("app", "create", "--help"),
        ("rules",),
        ("rules", "drop-column"),
    ],
    ids=" ".join,
)
def test_parser_and_light_commands_import_neither_stack(argv: tuple[str, ...]) -> None:
    code, imported, out = imports_of(*argv)
    assert code == 0, out
    assert out.strip()
    assert imported == []


def test_building_the_parser_imports_neither_stack() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from bot import cli; cli._parser(); "
            "print(json.dumps(sorted(n for n in json.loads(sys.argv[1]) if n in sys.modules)))",
            json.dumps(FORBIDDEN),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == []


def test_check_without_sandbox_imports_neither_stack_in_the_parent() -> None:
    code, imported, out = imports_of("check", str(SHOP), "--no-sandbox", "--format", "json")
    assert code == 1  # the example has error findings: the check really ran
    assert json.loads(out)["findings"]
    assert imported == []


def test_check_with_the_sandbox_imports_neither_stack_in_the_parent() -> None:
    from bot.errors import UserError
    from bot.sandbox.cluster import find_binaries

    try:
        find_binaries()
    except UserError as error:
        pytest.skip(f"needs PostgreSQL server binaries: {error}")
    code, imported, out = imports_of("check", str(SHOP), "--format", "json", timeout=300)
    report = json.loads(out)
    assert code == 1
    assert report["sandbox"]["ran"], report["sandbox"]
    assert imported == []
