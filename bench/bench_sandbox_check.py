"""A full sandbox check of generated projects against the floor of plain Alembic.

Run: python bench/bench_sandbox_check.py [--sizes 10,50,200,500] [--runs 3] [--url ADMIN_URL]
     [--cli]
(--revisions N is --sizes N; the default is 50.)

(a) migsafe: `run_check` with the sandbox (dry-run child, analysis, a fresh database and
    role, upgrade traced per statement, snapshots and seeding, post-migration checks,
    downgrade, upgrade again, drop). The sandbox's one child runs every step on request and
    starts, like the dry-run beside it, while the rest of the check gets ready;
(b) the floor: one Python process running `alembic upgrade head`, `alembic downgrade base`,
    `alembic upgrade head` on a database of the same server.
Both on the embedded cluster (or --url / MIGSAFE_SANDBOX_URL), warm (one of each first),
then --runs rounds per size, the two sides alternated within a round; the ratio (a)/(b) of
each round, min/median/max. With several sizes a scaling table ends the output: linear
tracing keeps the ratio flat (issue 14: at 500 revisions within 10% of the ratio at 10).
Goals (issue 14): (a) <= 1.5x (b) at every size; the per-check database create+drop <= 150 ms.

--cli measures whole `migsafe check` processes instead of `run_check` in this one, each
round alternating: (a warm) the CLI with its kept cluster already running (a private
MIGSAFE_DATA_DIR), (b) the floor, (a fresh) `--fresh-cluster` (initdb + start + stop in the
run, as before the kept cluster), (a cold) the kept cluster's first run (its home removed:
initdb + start, left running). The floor runs against an already running server, so the
warm row is the like-for-like one; the cold and fresh rows say what a first run costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from bot.check import CheckOptions, run_check
from bot.migrations.database_env import sandbox_params
from bot.result import CheckResult
from bot.sandbox.database import SandboxServer, create_sandbox, shared_server

FLOOR_DATABASE = "migsafe_bench_floor"
ENV_PY = """
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), "sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
"""
ALEMBIC_INI = """[alembic]
script_location = %(here)s/migrations
sqlalchemy.url = postgresql://localhost/bench
"""
# The floor: the three commands in one interpreter, as a deploy script would run them.
FLOOR_SCRIPT = """
import sys
from alembic import command
from alembic.config import Config
config = Config(sys.argv[1])
config.set_main_option("sqlalchemy.url", sys.argv[2].replace("%", "%%"))
command.upgrade(config, "head")
command.downgrade(config, "base")
command.upgrade(config, "head")
"""


def revision_body(number: int) -> tuple[str, str]:
    """(upgrade, downgrade) of revision `number` (1-based): tables, columns, indexes, data."""
    table = f"t{(number - 1) // 5 + 1:02d}"  # a new table every 5 revisions
    step = (number - 1) % 5
    if step == 0:
        up = f"""op.create_table(
        "{table}",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, server_default=sa.func.now(), nullable=False),
    )"""
        return up, f'op.drop_table("{table}")'
    if step in (1, 3):
        column = f"c{number}"
        up = f'op.add_column("{table}", sa.Column("{column}", sa.Integer, nullable=True))'
        return up, f'op.drop_column("{table}", "{column}")'
    if step == 2:
        index = f"ix_{table}_name"
        return f'op.create_index("{index}", "{table}", ["name"])', f'op.drop_index("{index}")'
    column = f"c{number - 1}"
    up = f'op.execute("UPDATE {table} SET {column} = 0 WHERE {column} IS NULL")'
    return up, f'op.execute("UPDATE {table} SET {column} = NULL")'


def write_project(root: Path, revisions: int) -> Path:
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    previous = None
    for number in range(1, revisions + 1):
        revision = f"{number:04d}"
        up, down = revision_body(number)
        source = (
            f'"""revision {revision}\n\nRevision ID: {revision}\nRevises: {previous or ""}\n"""\n'
            "import sqlalchemy as sa\nfrom alembic import op\n\n"
            f"revision = {revision!r}\ndown_revision = {previous!r}\n"
            "branch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade() -> None:\n    {up}\n\n\n"
            f"def downgrade() -> None:\n    {down}\n"
        )
        (versions / f"{revision}_step.py").write_text(source)
        previous = revision
    return root


def timed(action: Callable[[], object], runs: int) -> tuple[list[float], object]:
    seconds, last = [], None
    for _ in range(runs):
        began = time.perf_counter()
        last = action()
        seconds.append(time.perf_counter() - began)
    return seconds, last


def check_once(project: Path, admin_url: str) -> CheckResult:
    # Every revision new, as the numbers in the README were measured (outside git the
    # default would judge only the latest).
    options = CheckOptions(path=project, sandbox=True, database_url=admin_url, all_revisions=True)
    result = run_check(options)
    failed = [s for s in (result.sandbox.steps if result.sandbox else []) if s.outcome != "passed"]
    if result.sandbox is None or failed:
        raise SystemExit(f"the sandbox check did not pass: {failed or result.sandbox_skipped}")
    return result


def floor_once(project: Path, server: SandboxServer) -> None:
    conninfo = server.conninfo(
        dbname=FLOOR_DATABASE, user=str(server_user(server)), password=password(server)
    )
    url = sandbox_params(conninfo).url
    with psycopg.connect(server.admin_conninfo, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(FLOOR_DATABASE)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(FLOOR_DATABASE)))
    try:
        subprocess.run(
            [sys.executable, "-c", FLOOR_SCRIPT, str(project / "alembic.ini"), url],
            cwd=project,
            check=True,
        )
    finally:
        with psycopg.connect(server.admin_conninfo, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(FLOOR_DATABASE)
                )
            )


def cli_once(project: Path, data_dir: Path, *extra: str) -> None:
    """One whole `migsafe check` process; its sandbox must pass."""
    report = project.parent / "report.json"
    environment = {**os.environ, "MIGSAFE_DATA_DIR": str(data_dir)}
    environment.pop("MIGSAFE_FRESH_CLUSTER", None)
    environment.pop("MIGSAFE_SANDBOX_URL", None)
    argv = [sys.executable, "-m", "bot.cli", "check", str(project), "--all", "--format", "json"]
    done = subprocess.run(
        [*argv, "--output", str(report), *extra],
        env=environment,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"migsafe check failed (exit {done.returncode}): {done.stderr.strip()}")
    steps = json.loads(report.read_text())["sandbox"]["steps"]
    if {step["outcome"] for step in steps} != {"passed"}:
        raise SystemExit(f"the sandbox check did not pass: {steps}")


def cluster_command(data_dir: Path, action: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "cluster", action],
        env={**os.environ, "MIGSAFE_DATA_DIR": str(data_dir)},
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        check=True,
    )


def measure_cli(size: int, runs: int, server: SandboxServer) -> dict[str, list[float]]:
    """Wall seconds per side (warm, floor, fresh, cold), alternated round by round. (No CPU
    figures: the contained children's CPU never reaches this process's RUSAGE_CHILDREN,
    bubblewrap's PID namespace reaps them, so it would flatter migsafe.)"""
    seconds: dict[str, list[float]] = {"warm": [], "floor": [], "fresh": [], "cold": []}

    def one(side: str, action: Callable[[], object]) -> None:
        seconds[side] += timed(action, 1)[0]

    with tempfile.TemporaryDirectory(prefix="migsafe-bench-") as tmp:
        Path(tmp).chmod(0o711)  # as root the server user must enter the kept cluster's home
        project = write_project(Path(tmp) / "project", size)
        data_dir = Path(tmp) / "pg"
        home = data_dir.with_name("pg-cli")
        try:
            cli_once(project, data_dir)
            floor_once(project, server)
            for _ in range(runs):
                one("warm", lambda: cli_once(project, data_dir))
                one("floor", lambda: floor_once(project, server))
                one("fresh", lambda: cli_once(project, data_dir, "--fresh-cluster"))
                cluster_command(data_dir, "stop")
                shutil.rmtree(home)
                one("cold", lambda: cli_once(project, data_dir))
        finally:
            cluster_command(data_dir, "stop")
    return seconds


def server_ready_times(runs: int) -> tuple[list[float], list[float]]:
    """What the kept cluster saves each run: a throw-away cluster's start + stop (initdb
    included) beside attaching to the running kept one, in this process."""
    from bot.sandbox.cluster import EmbeddedCluster
    from bot.sandbox.kept_cluster import open_kept_cluster, stop_server

    fresh = timed(lambda: EmbeddedCluster().start().stop(), runs)[0]
    with tempfile.TemporaryDirectory(prefix="migsafe-bench-") as tmp:
        Path(tmp).chmod(0o711)
        home = Path(tmp) / "pg-cli"
        try:
            open_kept_cluster(home, 0)
            attach = timed(lambda: open_kept_cluster(home, 0), runs)[0]
        finally:
            stop_server(home / "data")  # this process still holds its use locks
    return fresh, attach


def main_cli(sizes: list[int], runs: int, server: SandboxServer) -> None:
    fresh, attach = server_ready_times(runs)
    print(f"embedded cluster per run: throw-away start + stop {ms(statistics.median(fresh))}"
          f" (runs: {fmt(fresh)}); attach to the kept one {ms(statistics.median(attach))}"
          f" (runs: {fmt(attach)})")  # fmt: skip
    for size in sizes:
        print(f"project: {size} revisions, {runs} rounds (after a warm-up), whole processes")
        seconds = measure_cli(size, runs, server)
        floor_s = seconds["floor"]
        print(f"(b) floor, alembic up/down/up:          median {ms(statistics.median(floor_s))}")
        for side, label in (
            ("warm", "kept cluster, running"),
            ("cold", "kept cluster, first run"),
            ("fresh", "--fresh-cluster"),
        ):
            median = ms(statistics.median(seconds[side]))
            runs_s = fmt(seconds[side])
            print(f"(a) migsafe check, {label + ':':<24} median {median}  (runs: {runs_s})")
            print(f"    {ratio_line(seconds[side], floor_s)}")


def server_user(server: SandboxServer) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(server.admin_conninfo).get("user", ""))


def password(server: SandboxServer) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(server.admin_conninfo).get("password", ""))


def create_drop_times(server: SandboxServer, runs: int) -> list[float]:
    create_sandbox(server).drop()  # warm
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        create_sandbox(server).drop()
        seconds.append(time.perf_counter() - began)
    return seconds


def interpreter_start(runs: int) -> float:
    """What every child pays before its first statement: Python and its imports."""
    argv = [sys.executable, "-I", "-c", "from alembic import command; import psycopg"]
    seconds, _ = timed(lambda: subprocess.run(argv, check=True), runs)
    return statistics.median(seconds)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


RATIO_GOAL = 1.5


def measure(size: int, runs: int, server: SandboxServer) -> tuple[list[float], list[float], object]:
    """(check seconds, floor seconds, the last check's result), alternated round by round."""
    admin_url = server.admin_conninfo
    check_s: list[float] = []
    floor_s: list[float] = []
    result: object = None
    with tempfile.TemporaryDirectory(prefix="migsafe-bench-") as tmp:
        project = write_project(Path(tmp) / "project", size)
        check_once(project, admin_url)
        floor_once(project, server)
        for _ in range(runs):
            seconds, result = timed(lambda: check_once(project, admin_url), 1)
            check_s += seconds
            seconds, _ = timed(lambda: floor_once(project, server), 1)
            floor_s += seconds
    return check_s, floor_s, result


def ratio_line(check_s: list[float], floor_s: list[float]) -> str:
    ratios = sorted(c / f for c, f in zip(check_s, floor_s, strict=True))
    median = statistics.median(ratios)
    verdict = "ok" if median <= RATIO_GOAL else "MISSED"
    return (
        f"ratio (a)/(b): min {ratios[0]:.2f}x  median {median:.2f}x  max {ratios[-1]:.2f}x"
        f"   goal <= {RATIO_GOAL}x: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", help="revision counts, comma-separated: 10,50,200,500")
    parser.add_argument("--revisions", type=int, default=50, help="one size (without --sizes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("MIGSAFE_SANDBOX_URL"))
    parser.add_argument("--cli", action="store_true", help="whole `migsafe check` processes")
    options = parser.parse_args()
    sizes = [int(n) for n in options.sizes.split(",")] if options.sizes else [options.revisions]
    began = time.perf_counter()
    server = shared_server(options.url)
    version = server.server_version()
    print(f"server: PostgreSQL {version} (ready in {time.perf_counter() - began:.2f} s)")
    if options.cli:
        main_cli(sizes, options.runs, server)
        return
    table = []
    for size in sizes:
        print(f"project: {size} revisions, {options.runs} rounds (after a warm-up)")
        check_s, floor_s, result = measure(size, options.runs, server)
        check, floor = statistics.median(check_s), statistics.median(floor_s)
        print(f"(a) migsafe check, sandbox on:      median {ms(check)}  (runs: {fmt(check_s)})")
        assert isinstance(result, CheckResult) and result.sandbox is not None
        dry, box = ms(result.dry_run.duration_s), ms(result.sandbox.duration_s)
        print(f"      dry-run child {dry}; sandbox {box}, of which:")
        for step in result.sandbox.steps:
            print(f"        {step.name:<24} {ms(step.duration_s)}")
        print(f"(b) floor, alembic up/down/up:       median {ms(floor)}  (runs: {fmt(floor_s)})")
        print(ratio_line(check_s, floor_s))
        table.append((size, check_s, floor_s))
    if len(table) > 1:
        print("scaling (ratio (a)/(b) per round):")
        for size, check_s, floor_s in table:
            print(f"  {size:>5} revisions  {ratio_line(check_s, floor_s)}")
    print(
        f"child start (python + alembic/sqlalchemy/psycopg imports): {ms(interpreter_start(5))},"
        " paid once by (b); twice by (a), side by side (the dry-run child and the one sandbox"
        " child that runs every step)"
    )
    create_drop = statistics.median(create_drop_times(server, 20))
    verdict = "ok" if create_drop <= 0.150 else "MISSED"
    print(f"per-check database create+drop: median {ms(create_drop)}   goal <= 150 ms: {verdict}")


def fmt(seconds: list[float]) -> str:
    return ", ".join(ms(s) for s in seconds)


if __name__ == "__main__":
    main()
