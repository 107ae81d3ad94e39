"""dry_run on fixture Alembic projects: real Alembic, real isolated child processes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.analysis.migration_model import DryRun
from bot.analysis.model import Statement
from bot.sandbox.dryrun import FailureSummary, dry_run, summarize_traceback
from bot.sandbox.isolation import Limits
from tests.processes import processes_with

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dryrun"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """pytest's own, but outside its private base folder: where migsafe runs as root, the
    child runs as nobody (if it can) and must traverse the working copy, as in `migsafe check`."""
    with tempfile.TemporaryDirectory(prefix="migsafe-test-dryrun-") as folder:
        Path(folder).chmod(0o711)
        yield Path(folder)


def _copy(name: str, tmp_path: Path) -> Path:
    """A working copy: the child may write into it, the fixture stays pristine."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def _run(
    project: Path,
    *,
    base: tuple[str, ...] = (),
    heads: tuple[str, ...] = (),
    with_ini: bool = True,
    **kwargs: object,
) -> DryRun:
    return dry_run(
        project,
        ini_path=project / "alembic.ini" if with_ini else None,
        script_location=project,
        versions_dirs=[project / "versions"],
        base=base,
        heads=heads,
        **kwargs,  # type: ignore[arg-type]
    )


def _line_of(project: Path, path: str, needle: str) -> int:
    lines = (project / path).read_text().splitlines()
    matches = [number for number, text in enumerate(lines, 1) if needle in text]
    assert len(matches) == 1, f"{needle!r} occurs {len(matches)} times in {path}"
    return matches[0]


def _traced(statements: list[Statement]) -> list[tuple[str | None, str | None, int | None, str]]:
    return [(s.revision, s.path, s.line, s.sql) for s in statements if s.path is not None]


def _comment_lines(sql: str, prefix: str) -> list[str]:
    return [line for line in sql.splitlines() if line.startswith(prefix)]


BASIC_UPGRADE = [
    ("a1", "versions/0001_create_accounts.py", "op.create_table(", "CREATE TABLE accounts ("),
    ("a2", "versions/0002_add_email.py", "op.add_column(", "ALTER TABLE accounts ADD COLUMN"),
    ("a2", "versions/0002_add_email.py", "op.create_index(", "CREATE INDEX ix_accounts_email"),
    ("a3", "versions/0003_backfill.py", 'op.execute("SET', "SET lock_timeout = '5s'"),
    ("a3", "versions/0003_backfill.py", 'op.execute("SET', "UPDATE accounts SET email = 'a;b'"),
]
BASIC_DOWNGRADE = [
    ("a3", "versions/0003_backfill.py", 'op.execute("UPDATE', "UPDATE accounts SET email = NULL"),
    ("a2", "versions/0002_add_email.py", "op.drop_index(", "DROP INDEX ix_accounts_email"),
    ("a2", "versions/0002_add_email.py", "op.drop_column(", "ALTER TABLE accounts DROP COLUMN"),
    ("a1", "versions/0001_create_accounts.py", "op.drop_table(", "DROP TABLE accounts"),
]


def _assert_traced(
    project: Path, statements: list[Statement], expected: list[tuple[str, str, str, str]]
) -> None:
    traced = _traced(statements)
    assert len(traced) == len(expected), traced
    for (revision, path, line, sql), (want_rev, want_path, needle, sql_start) in zip(
        traced, expected, strict=True
    ):
        assert (revision, path) == (want_rev, want_path)
        assert line == _line_of(project, want_path, needle), sql
        assert sql.startswith(sql_start), sql


def test_every_statement_is_traced_to_its_op_call(tmp_path: Path) -> None:
    project = _copy("basic", tmp_path)
    result = _run(project)
    assert result.error is None
    _assert_traced(project, result.upgrade, BASIC_UPGRADE)
    _assert_traced(project, result.downgrade, BASIC_DOWNGRADE)


def test_statements_are_numbered_per_phase_and_alembic_own_have_no_file(tmp_path: Path) -> None:
    result = _run(_copy("basic", tmp_path))
    for phase, statements in (("upgrade", result.upgrade), ("downgrade", result.downgrade)):
        assert [s.index for s in statements] == list(range(len(statements)))
        assert {s.phase for s in statements} == {phase}
        assert (statements[0].sql, statements[-1].sql) == ("BEGIN", "COMMIT")
        assert statements[0].path is statements[-1].path is None
    version_updates = [s for s in result.upgrade if "alembic_version" in s.sql]
    assert version_updates and all(s.path is None for s in version_updates)
    assert [s.revision for s in version_updates if s.sql.startswith("UPDATE")] == ["a2", "a3"]


def test_full_sql_is_what_alembic_upgrade_sql_prints(tmp_path: Path) -> None:
    project = _copy("basic", tmp_path)
    result = _run(project)
    ini = project / "alembic.ini"  # the CLI needs a URL; the dry-run adds one itself
    ini.write_text(
        ini.read_text().replace("[alembic]\n", "[alembic]\nsqlalchemy.url = postgresql://\n")
    )
    alembic_cli = [sys.executable, "-m", "alembic"]
    upgrade = _cli([*alembic_cli, "upgrade", "--sql", "heads"], project)
    downgrade = _cli([*alembic_cli, "downgrade", "--sql", "a3:base"], project)
    noise = "NOISE FROM MIGRATION; DROP TABLE noise;\n"  # the CLI prints the migration's print()
    assert result.upgrade_sql == upgrade.replace(noise, "")
    assert result.downgrade_sql == downgrade


def _cli(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_stdout_noise_of_a_migration_does_not_corrupt_the_result(tmp_path: Path) -> None:
    result = _run(_copy("basic", tmp_path))
    assert result.error is None
    assert "NOISE" not in result.upgrade_sql
    assert not any("NOISE" in s.sql for s in result.upgrade)


def test_downgrade_holds_the_reverse_operations(tmp_path: Path) -> None:
    result = _run(_copy("basic", tmp_path))
    for reverse in (
        "DROP INDEX ix_accounts_email;",
        "ALTER TABLE accounts DROP COLUMN email;",
        "DROP TABLE accounts;",
    ):
        assert reverse in result.downgrade_sql
    assert "-- Running downgrade a3 -> a2" in result.downgrade_sql


def test_range_from_a_base_revision_holds_only_the_new_revisions(tmp_path: Path) -> None:
    project = _copy("basic", tmp_path)
    result = _run(project, base=("a1",), heads=("a3",))
    assert result.error is None
    assert {s.revision for s in result.upgrade if s.path} == {"a2", "a3"}
    assert "CREATE TABLE accounts" not in result.upgrade_sql
    _assert_traced(project, result.downgrade, BASIC_DOWNGRADE[:3])
    assert "UPDATE alembic_version SET version_num='a1'" in result.downgrade_sql


def test_multi_line_calls_and_helpers_point_at_the_call_line(tmp_path: Path) -> None:
    project = _copy("multiline", tmp_path)  # no alembic.ini: script_location only
    result = _run(project, with_ini=False)
    assert result.error is None
    path = "versions/m1_orders.py"
    _assert_traced(
        project,
        result.upgrade,
        [
            ("m1", path, "op.create_table(", "CREATE TABLE orders ("),
            ("m1", path, "op.add_column(", "ALTER TABLE orders ADD COLUMN status"),
            ("m1", path, "op.alter_column(", "ALTER TABLE orders ALTER COLUMN total TYPE"),
        ],
    )
    _assert_traced(project, result.downgrade, [("m1", path, "op.drop_table(", "DROP TABLE")])


def test_several_heads_and_several_bases(tmp_path: Path) -> None:
    project = _copy("branches", tmp_path)
    two_heads = _run(project, base=("r0",), heads=("b1", "c1"))
    assert two_heads.error is None
    assert sorted(s.revision or "" for s in two_heads.upgrade if s.path) == ["b1", "c1"]
    assert sorted(s.sql for s in two_heads.downgrade if s.path) == [
        "DROP TABLE b1",
        "DROP TABLE c1",
    ]
    two_bases = _run(project, base=("b1", "c1"), heads=("m1",))
    assert two_bases.error is None
    assert [s.sql for s in two_bases.upgrade if s.path] == ["CREATE TABLE m1 (id int)"]
    assert [s.sql for s in two_bases.downgrade if s.path] == ["DROP TABLE m1"]
    assert two_bases.downgrade_sql.startswith("-- migsafe: Alembic downgrades to a single")


def test_a_failing_migration_becomes_an_error_naming_file_and_line(tmp_path: Path) -> None:
    project = _copy("fails", tmp_path)
    result = _run(project)
    line = _line_of(project, "versions/h1_fails.py", "raise RuntimeError")
    assert result.error is not None
    assert result.error.startswith(
        "alembic failed: RuntimeError: broken migration h1 "
        f"(at versions/h1_fails.py:{line}, during upgrade)"
    )
    assert [s.sql for s in result.upgrade if s.path] == ["SELECT 1"]  # what ran before
    expected = f"RuntimeError: broken migration h1 (at versions/h1_fails.py:{line}, during upgrade)"
    assert result.error_summary == expected
    assert (result.error_path, result.error_line) == ("versions/h1_fails.py", line)


def test_a_timeout_is_summarised_by_what_happened(tmp_path: Path) -> None:
    result = _run(_copy("infinite_loop", tmp_path), timeout_s=2)
    assert result.error_summary == "dry-run timed out after 2 s"
    assert result.error_path is None


CHAINED = """alembic failed: ValueError: inner (at versions/a.py:3, during upgrade)
Traceback (most recent call last):
  File "{root}/versions/a.py", line 3, in upgrade
    int("x")
ValueError: inner

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/alembic/runtime/migration.py", line 616, in run
    step.migration_fn(**kw)
  File "{root}/env.py", line 20, in run_migrations_offline
    context.run_migrations()
  File "{root}/.venv/lib/python3.11/site-packages/lib.py", line 9, in helper
    raise KeyError(name)
KeyError: 'DATABASE_URL'
INFO  [alembic.runtime.migration] Will assume transactional DDL.
"""


def test_the_summary_is_the_last_tracebacks_exception_at_its_deepest_repository_frame(
    tmp_path: Path,
) -> None:
    summary = summarize_traceback(CHAINED.format(root=tmp_path), tmp_path)
    assert summary is not None
    assert summary.text("upgrade") == "KeyError: 'DATABASE_URL' (at env.py:20, during upgrade)"


def test_a_cut_traceback_a_syntax_error_and_no_traceback(tmp_path: Path) -> None:
    cut = f'  File "{tmp_path}/versions/b.py", line 7, in upgrade\n    x(\nNameError: x\n'
    assert summarize_traceback(cut, tmp_path) == FailureSummary("NameError: x", "versions/b.py", 7)
    syntax = (
        f'Traceback (most recent call last):\n  File "{tmp_path}/versions/c.py", line 2\n'
        "    def (\n        ^\nSyntaxError: invalid syntax\n"
    )
    summary = summarize_traceback(syntax, tmp_path)
    assert summary == FailureSummary("SyntaxError: invalid syntax", "versions/c.py", 2)
    outside = 'Traceback (most recent call last):\n  File "/elsewhere.py", line 1\nOSError: no\n'
    assert summarize_traceback(outside, tmp_path) == FailureSummary("OSError: no", None, None)
    assert summarize_traceback("Killed\n", tmp_path) is None


def test_an_infinite_loop_is_killed_at_the_time_limit(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _run(_copy("infinite_loop", tmp_path), timeout_s=3)
    assert time.monotonic() - started < 3 + 2
    assert result.error is not None and result.error.startswith("dry-run timed out after 3 s")


def test_a_memory_bomb_hits_the_memory_limit(tmp_path: Path) -> None:
    limits = Limits(memory_bytes=512 * 1024**2)
    result = _run(_copy("memory_bomb", tmp_path), limits=limits, timeout_s=60)
    assert result.error is not None and "MemoryError" in result.error
    assert any(line.startswith("limits: cpu 60s, memory 512 MiB") for line in result.protections)


def test_a_fork_loop_is_contained_and_cleaned_up(tmp_path: Path) -> None:
    marker = f"900.{uuid.uuid4().int % 10**9:09d}"  # the children `sleep` this long
    result = _run(
        _copy("fork_bomb", tmp_path),
        limits=Limits(max_processes=16),
        extra_env={"FORK_MARK": marker},
        timeout_s=30,
    )
    assert result.error is None
    assert processes_with(marker) == []
    (forked,) = _comment_lines(result.upgrade_sql, "-- forked ")
    limits_line = next(line for line in result.protections if line.startswith("limits:"))
    if "NOT enforced" in limits_line:  # root: the PID namespace and group kill contain it
        assert "processes 16 (NOT enforced: RLIMIT_NPROC does not apply to root)" in limits_line
    else:
        assert int(forked.removeprefix("-- forked ").rstrip(";")) < 16


def test_a_migration_reading_the_environment_finds_no_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGSAFE_WEBHOOK_SECRET", "sekrit")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_faketoken123")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db/app")
    # A process of "the bot" holding a secret in its environment, for /proc snooping.
    decoy = subprocess.Popen(
        ["sleep", "60"], env={"DECOY_SECRET": "decoy-sekrit"}, stdin=subprocess.DEVNULL
    )
    try:
        result = _run(_copy("reads_secrets", tmp_path))
    finally:
        decoy.kill()
        decoy.wait()
    assert result.error is None
    (dump,) = _comment_lines(result.upgrade_sql, "-- environment: ")
    assert "'PATH'" in dump  # the migration really read its environment
    for secret in ("sekrit", "ghs_faketoken123", "hunter2", "MIGSAFE_", "GITHUB_TOKEN"):
        assert secret not in result.upgrade_sql
    assert "decoy-sekrit" not in result.upgrade_sql  # other processes are out of sight


def test_a_migration_cannot_reach_the_network(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = str(server.getsockname()[1])
        result = _run(_copy("network", tmp_path), extra_env={"NET_PORT": port})
    assert result.error is None
    (outcome,) = _comment_lines(result.upgrade_sql, "-- network: ")
    assert "network: none (new network namespace)" in result.protections
    assert outcome.startswith("-- network: failed")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("garbage", "dry-run result unreadable"),
        ("exit", "dry-run child exited with status 0 without a result"),
        ("stdin", "alembic failed: EOFError"),
    ],
)
def test_a_migration_attacking_the_result_channel_is_an_error(
    tmp_path: Path, mode: str, expected: str
) -> None:
    result = _run(_copy("tampers", tmp_path), extra_env={"TAMPER": mode}, timeout_s=30)
    assert result.error is not None and result.error.startswith(expected), result.error
    assert result.duration_s < 30


def test_protections_are_reported(tmp_path: Path) -> None:
    result = _run(_copy("basic", tmp_path))
    prefixes = (
        "network: none",
        "processes:",
        "containment: bubblewrap",
        "identity:",
        "limits:",
        "wall clock: 120s",
        "environment:",
    )
    for prefix in prefixes:
        assert any(line.startswith(prefix) for line in result.protections), prefix
    assert result.duration_s > 0
