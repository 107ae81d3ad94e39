"""Hostile migrations through the whole check: each ends in a clear finding within its limit.

Every hostile revision guards its attack with `if not op.get_context().as_sql:`, so the
offline dry-run passes and the sandbox's online upgrade (a contained child) meets it. After
each one the sandbox database and role must be gone and a normal check must still pass.
All checks run on the session's one embedded cluster (`sandbox_server`'s conninfo).
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from bot.analysis.model import Finding, Severity
from bot.analysis.sandbox_model import Step
from bot.check import CheckOptions, run_check
from bot.migrations.database_env import CONVENTION_VARIABLES
from bot.report import render
from bot.result import CheckResult
from bot.sandbox.cluster import EmbeddedCluster
from bot.sandbox.database import PREFIX, SandboxServer
from tests.processes import processes_with

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hostile"
SLACK_S = 3.0  # interpreter start, the dry-run's child, the sandbox database: on top of a limit

Check = Callable[..., CheckResult]


def _project(
    tmp_path: Path,
    name: str,
    *,
    env: dict[str, str] | None = None,
    base_revision: str | None = None,
) -> Path:
    """The skeleton project (alembic.ini, env.py) with the fixture's revisions and a policy."""
    root = tmp_path / name
    shutil.copytree(FIXTURES / "_skeleton", root)
    shutil.copytree(FIXTURES / name, root, dirs_exist_ok=True)
    policy: dict[str, Any] = {"version": 1, "sandbox": {"env": env or {}}}
    if base_revision:
        policy["alembic"] = {"base_revision": base_revision}
    (root / ".github").mkdir()
    (root / ".github" / "migsafe.yml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    return root


@pytest.fixture
def check(sandbox_server: SandboxServer, tmp_path: Path) -> Iterator[Check]:
    """run_check with the sandbox on the session's cluster; afterwards (the part every hostile
    test shares) no sandbox is left on the server and a harmless change checks cleanly."""

    def run(project: Path, *, timeout_s: float, environment: str | None = None) -> CheckResult:
        options = CheckOptions(
            path=project,
            sandbox=True,
            database_url=sandbox_server.admin_conninfo,
            sandbox_timeout_s=timeout_s,
            dry_run_timeout_s=60,
            environment=environment,
        )
        return run_check(options)

    yield run
    assert sandbox_server.leftover_names() == [], "the sandbox database or role was not dropped"
    healthy = run(_project(tmp_path, "healthy"), timeout_s=60)
    assert healthy.sandbox is not None
    assert [(s.name, s.outcome) for s in healthy.sandbox.steps] == [
        ("upgrade to the base", "passed"),
        ("upgrade to head", "passed"),
        ("post-migration checks", "passed"),
        ("rollback to the base", "passed"),
        ("upgrade again", "passed"),
    ]
    assert healthy.exit_code == 0, [f.message for f in healthy.blocking]
    assert sandbox_server.leftover_names() == []


def _step(result: CheckResult, name: str) -> Step:
    assert result.sandbox is not None
    return next(step for step in result.sandbox.steps if step.name == name)


def _upgrade_failure(result: CheckResult) -> Finding:
    """The one upgrade-failed finding; the steps after it were skipped, not run."""
    (finding,) = [f for f in result.findings if f.rule == "upgrade-failed"]
    assert finding.source == "sandbox" and result.exit_code == 1
    assert _step(result, "upgrade to head").outcome == "failed"
    assert _step(result, "rollback to the base").outcome == "skipped"
    return finding


def _protection(result: CheckResult, prefix: str) -> str:
    assert result.sandbox is not None
    return next(line for line in result.sandbox.protections if line.startswith(prefix))


def test_an_infinite_loop_is_killed_at_the_wall_clock_limit(check: Check, tmp_path: Path) -> None:
    result = check(_project(tmp_path, "infinite_loop"), timeout_s=4)
    finding = _upgrade_failure(result)
    assert finding.message == "the upgrade failed: killed after 4 s (wall clock limit)"
    assert _step(result, "upgrade to head").duration_s < 4 + SLACK_S


def test_a_memory_bomb_ends_in_a_memory_error(check: Check, tmp_path: Path) -> None:
    result = check(_project(tmp_path, "memory_bomb"), timeout_s=60)
    finding = _upgrade_failure(result)
    assert finding.message.startswith("the upgrade failed: MemoryError"), finding.message
    assert "h1_memory_bomb.py" in finding.message  # where, in the migration, it stopped
    assert _protection(result, "limits:").startswith("limits: cpu 60s, memory 1 GiB")
    assert _step(result, "upgrade to head").duration_s < 30


def test_a_fork_loop_is_stopped_and_leaves_no_process(check: Check, tmp_path: Path) -> None:
    marker = f"900.{uuid.uuid4().int % 10**9:09d}"  # the children `sleep` this long
    project = _project(tmp_path, "fork_loop", env={"FORK_MARK": marker})
    result = check(project, timeout_s=5)
    finding = _upgrade_failure(result)
    assert processes_with(marker) == []
    # The process limit holds as root too: each child has a uid of its own.
    assert "BlockingIOError" in finding.message, finding.message
    assert _step(result, "upgrade to head").duration_s < 5 + SLACK_S


@pytest.fixture
def secrets_in_parent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The bot's secrets in its environment, and a process of the bot holding one."""
    monkeypatch.setenv("MIGSAFE_WEBHOOK_SECRET", "whsec-sekrit")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_faketoken123")
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:secret-pw@db.internal/bot")
    decoy = subprocess.Popen(
        ["sleep", "60"], env={"DECOY_SECRET": "decoy-sekrit"}, stdin=subprocess.DEVNULL
    )
    try:
        yield ["whsec-sekrit", "ghs_faketoken123", "secret-pw", "db.internal", "decoy-sekrit"]
    finally:
        decoy.kill()
        decoy.wait()


def test_a_migration_looking_for_secrets_finds_none(
    check: Check, tmp_path: Path, secrets_in_parent: list[str]
) -> None:
    project = _project(tmp_path, "reads_secrets", env={"APP_ENV": "sandbox"})
    result = check(project, timeout_s=60)
    assert result.sandbox is not None
    assert _step(result, "upgrade to head").outcome == "passed"
    (insert,) = [s.sql for s in result.sandbox.trace if s.sql.startswith("INSERT INTO loot")]
    loot = json.loads(base64.b64decode(insert.split("'")[1]))
    seen = loot["environ"]
    allowed = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PWD", "APP_ENV", "PYTHONPATH"}
    allowed |= set(CONVENTION_VARIABLES)  # its own sandbox's DATABASE_URL and PG* variables
    assert set(seen) <= allowed  # PWD: the PID namespace's init shell sets it
    assert seen["APP_ENV"] == "sandbox"  # the policy file's variables do arrive
    assert seen["DATABASE_URL"].startswith(f"postgresql+psycopg://{PREFIX}")  # its own sandbox
    dump = json.dumps(loot)
    report = render(result, "json") + json.dumps(asdict(result), default=str)
    for secret in [*secrets_in_parent, "MIGSAFE_WEBHOOK_SECRET", "GITHUB_TOKEN"]:
        assert secret not in dump
        assert secret not in report
    assert len(loot["processes"]) < 5  # only the child's own few processes are visible


def test_a_migration_cannot_open_a_network_connection(check: Check, tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = str(listener.getsockname()[1])
        result = check(_project(tmp_path, "network", env={"NET_PORT": port}), timeout_s=60)
        assert _protection(result, "network:") == "network: none (new network namespace)"
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody called
    finding = _upgrade_failure(result)
    assert any(w in finding.message for w in ("Connection refused", "unreachable")), finding.message


class _LockHolder(threading.Thread):
    """Another session: waits for the check's sandbox database, then (when the migration has
    signalled with table lock_wait_ready) holds ACCESS EXCLUSIVE on `accounts` until
    released or terminated by the sandbox's drop."""

    def __init__(self, cluster: EmbeddedCluster, existing: set[str]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.existing = cluster, existing
        self.locked, self.release = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.deadline = time.monotonic() + 60

    def run(self) -> None:
        try:
            self._hold()
        except psycopg.Error as error:
            if not self.locked.is_set():  # after the lock: terminated by the drop, expected
                self.error = error
        except BaseException as error:
            self.error = error

    def _hold(self) -> None:
        database = self._await(self._new_sandbox)
        with psycopg.connect(self.cluster.conninfo(dbname=database)) as session:
            self._await(lambda: self._ready(session))
            session.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
            self.locked.set()
            self.release.wait(60)

    def _new_sandbox(self) -> str | None:
        with psycopg.connect(self.cluster.conninfo(), autocommit=True) as admin:
            rows = admin.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (PREFIX,)
            ).fetchall()
        fresh = [row[0] for row in rows if row[0] not in self.existing]
        return fresh[0] if fresh else None

    @staticmethod
    def _ready(session: psycopg.Connection[Any]) -> bool | None:
        row = session.execute("SELECT to_regclass('public.lock_wait_ready')").fetchone()
        session.rollback()  # a fresh look each time, and no transaction left open
        return True if row and row[0] else None

    def _await(self, probe: Callable[[], Any]) -> Any:
        while time.monotonic() < self.deadline:
            found = probe()
            if found:
                return found
            time.sleep(0.02)
        raise TimeoutError("the sandbox never got that far")


@pytest.mark.parametrize("lock_timeout", ["1s", None], ids=["lock_timeout", "no_timeout"])
def test_a_migration_waiting_on_another_sessions_lock_is_stopped(
    check: Check,
    tmp_path: Path,
    embedded_cluster: EmbeddedCluster,
    sandbox_server: SandboxServer,
    lock_timeout: str | None,
) -> None:
    env = {"LOCK_TIMEOUT": lock_timeout} if lock_timeout else {}
    project = _project(tmp_path, "lock_wait", env=env, base_revision="l1")
    holder = _LockHolder(embedded_cluster, set(sandbox_server.leftover_names()))
    holder.start()
    timeout_s = 20 if lock_timeout else 8
    try:
        result = check(project, timeout_s=timeout_s)
    finally:
        holder.release.set()
        holder.join(10)
    assert holder.error is None and holder.locked.is_set()
    finding = _upgrade_failure(result)
    assert _step(result, "upgrade to the base").outcome == "passed"
    if lock_timeout is None:  # nothing but the wall clock ends the wait
        assert (
            finding.message == f"the upgrade failed: killed after {timeout_s} s (wall clock limit)"
        )
        return
    assert "canceling statement due to lock timeout" in finding.message, finding.message
    assert finding.statement == "ALTER TABLE accounts ADD COLUMN note TEXT"
    assert finding.path == "migrations/versions/l2_lock_wait.py"
    assert result.sandbox is not None
    (waited,) = [s for s in result.sandbox.trace if s.error]
    assert waited.lock_timeout == "1s" and 1.0 <= waited.duration_s < 3.0
    assert _step(result, "upgrade to head").duration_s < 1 + 5 + SLACK_S


def test_a_migration_trying_every_way_out_gets_nowhere(
    check: Check, tmp_path: Path, embedded_cluster: EmbeddedCluster
) -> None:
    """Issue 11's attacks from inside a migration: the service's key file, the cluster's admin
    password, another check's tree, writing outside, TCP, DNS, superuser via the database,
    a process that outlives the check, and files left in /tmp."""
    marker = f"900.{uuid.uuid4().int % 10**9:09d}"
    key = tmp_path / "service" / "app.private-key.pem"
    key.parent.mkdir()
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    other_check = tmp_path / "other-check" / ".env"
    other_check.parent.mkdir()
    other_check.write_text("SECRET=other\n")
    for path in (key, other_check):
        path.chmod(0o644)  # readable by anyone who can see it: only the view protects it
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        env = {
            "KEY_FILE": str(key),
            "CLUSTER_PASSWORD_FILE": str(embedded_cluster.data_dir / "migsafe_admin.password"),
            "OTHER_CHECK_FILE": str(other_check),
            "OUTSIDE_FILE": str(tmp_path / "written-by-the-migration"),
            "TCP_PORT": str(listener.getsockname()[1]),
            "MARKER": marker,
        }
        result = check(_project(tmp_path, "escapes", env=env), timeout_s=60)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.sandbox is not None
    upgrade = _step(result, "upgrade to head")
    assert upgrade.outcome == "passed", upgrade.detail
    (insert,) = [s.sql for s in result.sandbox.trace if s.sql.startswith("INSERT INTO loot")]
    attempts = json.loads(base64.b64decode(insert.split("'")[1]))
    assert len(attempts) == 8, attempts
    assert all(outcome.startswith("blocked: ") for outcome in attempts.values()), attempts
    assert not (tmp_path / "written-by-the-migration").exists()
    assert processes_with(marker) == []
    assert not (Path("/tmp") / marker).exists()


def test_a_side_connection_beside_alembics_is_refused(check: Check, tmp_path: Path) -> None:
    """The sandbox role may hold one connection: the migration's second one, opened while
    Alembic's is open, fails, and the report says what happened."""
    project = _project(tmp_path, "side_connection", base_revision="s1")
    result = check(project, timeout_s=60, environment="production")
    finding = _upgrade_failure(result)
    assert "too many connections for role" in finding.message, finding.message
    (side,) = [f for f in result.findings if f.rule == "sandbox-side-connection"]
    assert side.severity is Severity.ERROR and not side.suppressed
    assert side.message.startswith(
        "the migration opened a second database connection while Alembic's was open, "
        "and the server refused it (the sandbox role may hold 1)"
    )
    assert _protection(result, "database:").startswith("database: a role of its own, verified")
    assert "connection limit 1, size limit 1 GiB" in _protection(result, "database:")


def test_changes_through_a_side_connection_are_undeclared_and_need_approval(
    check: Check, tmp_path: Path
) -> None:
    """Once Alembic's connection is closed, the migration's own connection changes a column's
    type and drops a unique index, with nothing of it in the offline SQL: the parent's schema
    diff shows both, and each is an undeclared change that blocks until approved."""
    project = _project(tmp_path, "side_connection_after", base_revision="s1")
    result = check(project, timeout_s=60, environment="production")
    assert result.sandbox is not None
    assert _step(result, "upgrade to head").outcome == "passed"
    assert "column public.accounts.amount: type integer → bigint" in result.sandbox.schema_diff
    undeclared = sorted(
        (f for f in result.findings if f.rule == "undeclared-change"), key=lambda f: f.message
    )
    assert [f.message for f in undeclared] == [
        "column accounts.amount: type integer → bigint, but the dry-run's SQL never declared it",
        "index ix_accounts_email removed (was: CREATE UNIQUE INDEX ix_accounts_email ON "
        "public.accounts USING btree (email)), but the dry-run's SQL never declared it",
    ]
    for finding in undeclared:
        assert finding.severity is Severity.ERROR and finding.blocking
        assert finding.approval_roles, finding
        assert finding.source == "sandbox"
    assert result.exit_code == 1
    assert result.approvals_required


def test_changes_left_by_an_upgrade_said_to_fail_are_measured_all_the_same(
    check: Check, tmp_path: Path
) -> None:
    """The child's word that the upgrade failed skips the later steps, not the parent's
    comparison of what the database holds now with what the SQL declared."""
    project = _project(
        tmp_path, "side_connection_after", env={"THEN_FAIL": "1"}, base_revision="s1"
    )
    result = check(project, timeout_s=60, environment="production")
    finding = _upgrade_failure(result)
    assert "nothing to see here" in finding.message
    undeclared = sorted(f.message for f in result.findings if f.rule == "undeclared-change")
    assert [message.split(",")[0] for message in undeclared] == [
        "column accounts.amount: type integer → bigint",
        "index ix_accounts_email removed (was: CREATE UNIQUE INDEX ix_accounts_email ON "
        "public.accounts USING btree (email))",
    ]
    assert result.approvals_required


def test_statements_reported_at_a_suppressed_line_are_not_suppressed(
    check: Check, tmp_path: Path
) -> None:
    """The migration runs a column drop and a TRUNCATE as if they stood on the lines of a
    reviewed drop and its suppression comment, so both children (dry-run and sandbox) report
    them there. The parent's own reading of the file finds no operation there that could emit
    them: their findings name the file without a line, say why, and stay unsuppressed, while
    the reviewed drop keeps its line and its suppression."""
    project = _project(tmp_path, "forged_lines", base_revision="f1")
    path = "migrations/versions/f2_forged_lines.py"
    lines = (project / path).read_text(encoding="utf-8").splitlines()
    assert lines[29 - 1].strip() == 'op.drop_column("accounts", "legacy")'
    assert lines[28 - 1].strip().startswith("# migsafe: ignore[drop-column, access-exclusive")
    result = check(project, timeout_s=60, environment="production")
    assert _step(result, "upgrade to head").outcome == "passed"
    forged_note = (
        f"(the process running the migration reported this statement at {path}:{{line}}, "
        "where migsafe's own reading of the revision file finds no operation that could "
        f"emit it: the finding names {path} without a line, and no suppression comment "
        "applies to it)"
    )

    def about(rule: str, source: str, sql: str) -> Finding:
        (found,) = [
            f
            for f in result.findings
            if f.rule == rule and f.source == source and (f.statement or "").startswith(sql)
        ]
        return found

    for rule, source, sql, line in [
        ("drop-column", "sql", "ALTER TABLE accounts DROP COLUMN email", 29),
        ("truncate-table", "sql", "TRUNCATE accounts", 28),
        ("access-exclusive-lock", "sandbox", "ALTER TABLE accounts DROP COLUMN email", 29),
    ]:
        forged = about(rule, source, sql)
        assert (forged.path, forged.line, forged.suppressed) == (path, None, False), forged
        assert forged.message.endswith(forged_note.format(line=line)), forged.message
    reviewed = about("drop-column", "sql", "ALTER TABLE accounts DROP COLUMN legacy")
    assert (reviewed.line, reviewed.suppressed) == (29, True)
    assert result.sandbox is not None
    traced = {s.sql: (s.path, s.line) for s in result.sandbox.trace}
    assert traced["ALTER TABLE accounts DROP COLUMN email"] == (path, None)
    assert traced["TRUNCATE accounts"] == (path, None)
    assert traced["ALTER TABLE accounts DROP COLUMN legacy"] == (path, 29)
    detail = _step(result, "upgrade to head").detail or ""
    assert "2 traced statement(s) came with a file:line where the revision file" in detail
    for fmt in ("text", "markdown"):  # the lock's span names the file, without a line
        assert f"{path}:None" not in render(result, fmt)
    assert result.exit_code == 1


def test_a_rewrite_left_out_of_the_trace_is_measured_all_the_same(
    check: Check, tmp_path: Path
) -> None:
    """The trace is the migration's word; the table's storage is the parent's own reading of
    pg_class before and after the upgrade."""
    project = _project(tmp_path, "hidden_rewrite", base_revision="h1")
    result = check(project, timeout_s=60, environment="production")
    assert result.sandbox is not None
    assert not any("accounts" in s.rewritten for s in result.sandbox.trace)  # hidden from it
    rewrites = [f for f in result.findings if f.rule == "table-rewrite"]
    assert [f.message for f in rewrites] == [
        "table accounts was rewritten during the upgrade (migsafe saw its storage replaced), "
        "but no traced statement says it did: the process running the migration did not "
        "report it"
    ]
    assert rewrites[0].severity is Severity.ERROR and not rewrites[0].suppressed
