"""Scale-out: one web process and two workers as an operator runs them on separate hosts
(`migsafe serve --no-worker`, two `migsafe worker`), sharing only the state PostgreSQL (the
job queue) and the sandbox server. 50 pull requests are opened; each is checked exactly
once, the work is spread over both workers, and the worker killed (SIGKILL) in the middle
of a check has that check finished by the other, on the same check run."""

from __future__ import annotations

import asyncio
import signal
import socket
import textwrap
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.cluster import EmbeddedCluster
from bot.service.check import check_run_name
from tests.e2e.conftest import (
    AUTHOR,
    REPO,
    SECRET,
    app_settings,
    base_files,
    head_migration,
    seed_teams,
)
from tests.e2e.services import SLOW, migsafe_process, sandbox_sleeping, service_env, wait_for
from tests.fakegithub import payloads
from tests.fakegithub.conftest_plugin import SeededPull, seed_pull_request
from tests.fakegithub.server import FakeGitHub
from tests.processes import kill_tree
from tests.statedb import query

pytestmark = pytest.mark.asyncio

PULLS = 50
SLOW_PULL = 21  # the one whose check is interrupted: both workers have done some by then
STALLED_S = 3  # the dead worker's jobs are taken over within 3 s + one 6 s pass
CHECK = "migsafe.check_pull_request"
GATE = "migsafe/approvals (main)"


def note_column(n: int) -> dict[str, bytes]:
    """A small, safe revision of its own for pull request `n`."""
    text = textwrap.dedent(
        f'''\
        """add users.note_{n}

        Revision ID: 0003
        Revises: 0002
        """

        import sqlalchemy as sa
        from alembic import op

        revision = "0003"
        down_revision = "0002"
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
            op.execute("SET lock_timeout = '5s'")
            op.execute("SET statement_timeout = '5min'")
            op.add_column("users", sa.Column("note_{n}", sa.Text(), nullable=True))


        def downgrade() -> None:
            op.execute("SET lock_timeout = '5s'")
            op.execute("SET statement_timeout = '5min'")
            op.drop_column("users", "note_{n}")
        '''
    )
    return {f"migrations/versions/0003_note_{n}.py": text.encode()}


def app_change(n: int) -> dict[str, bytes]:
    """Application code only: the check says so without downloading or running anything."""
    models = base_files()["app/models.py"]
    return {"app/models.py": models + f"# change {n}\n".encode()}


def adds_revision(n: int) -> bool:
    """Odd pull requests add a revision (the sandbox runs); even ones change the app only."""
    return n % 2 == 1


def seed_pulls(fake: FakeGitHub) -> list[SeededPull]:
    """acme/shop with PULLS open pull requests; SLOW_PULL's revision sleeps in the sandbox."""
    pulls = []
    for n in range(1, PULLS + 1):
        files = note_column(n) if adds_revision(n) else app_change(n)
        files = head_migration(SLOW) if n == SLOW_PULL else files
        pulls.append(
            seed_pull_request(
                fake,
                REPO,
                base_files=base_files(),
                head_files=files,
                head_branch=f"feature-{n}",
                author=AUTHOR,
                title=f"Change {n}",
            )
        )
    seed_teams(fake)
    return pulls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def web_ready(url: str, log: Path, timeout_s: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await ready(url):
        if loop.time() > deadline:
            raise AssertionError(f"the web process is not ready: {tail(log)}")
        await asyncio.sleep(0.2)


def worker_ids(state: str) -> list[int]:
    return [int(i) for (i,) in query(state, "SELECT id FROM procrastinate_workers ORDER BY id")]


def check_jobs(state: str) -> list[tuple[int, int, str, int, int | None]]:
    """(id, PR number, status, attempts, worker id) of every check job, in order."""
    rows = query(
        state,
        "SELECT id, (args->>'number')::int, status::text, attempts, worker_id"
        " FROM procrastinate_jobs WHERE task_name = %s ORDER BY id",
        CHECK,
    )
    return [(int(i), int(n), str(s), int(a), w) for i, n, s, a, w in rows]


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def test_fifty_pull_requests_on_two_workers_one_killed_mid_check(
    fake_github: FakeGitHub,
    state: str,
    pg_cluster: EmbeddedCluster,
    tmp_path: Path,
    backup_source: str,
) -> None:
    pulls = seed_pulls(fake_github)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env(
        app_settings(fake_github, state, pg_cluster),
        PORT=str(port),
        # One check at a time per worker: the killed one was running only the slow check.
        MIGSAFE_WORKER_CONCURRENCY="1",
        MIGSAFE_STALLED_WORKER_SECONDS=str(STALLED_S),
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "worker-a", "worker-b")}
    with (
        migsafe_process(["serve", "--no-worker"], env, logs["web"]) as web,
        migsafe_process(["worker"], env, logs["worker-a"]) as worker_a,
    ):
        await web_ready(url, logs["web"])
        await wait_for(
            lambda: len(worker_ids(state)) == 1, 60, lambda: f"worker a: {tail(logs['worker-a'])}"
        )
        [id_a] = worker_ids(state)
        with migsafe_process(["worker"], env, logs["worker-b"]) as worker_b:
            await wait_for(
                lambda: len(worker_ids(state)) == 2,
                60,
                lambda: f"worker b: {tail(logs['worker-b'])}",
            )
            [id_b] = [i for i in worker_ids(state) if i != id_a]
            processes = {id_a: worker_a, id_b: worker_b}
            worker_logs = {id_a: logs["worker-a"], id_b: logs["worker-b"]}

            async with aiohttp.ClientSession() as http:
                for seeded in pulls:
                    payload = payloads.pull_request_event(
                        fake_github, "opened", seeded.repo, seeded.pull, seeded.installation.id
                    )
                    headers, body = payloads.delivery("pull_request", payload, SECRET)
                    async with http.post(f"{url}/webhook", data=body, headers=headers) as answer:
                        assert answer.status == 202, await answer.text()

            # The slow check is in the sandbox: kill the worker running it, and its children.
            await wait_for(
                lambda: sandbox_sleeping(pg_cluster), 180, "the slow check to run", every_s=0.2
            )
            slow = pulls[SLOW_PULL - 1]
            [(slow_job, _, status, _, victim_id)] = [
                job for job in check_jobs(state) if job[1] == slow.pull.number
            ]
            assert status == "doing" and victim_id in processes
            [survivor_id] = [i for i in processes if i != victim_id]
            [first_run] = fake_github.check_runs(
                REPO, head_sha=slow.head_sha, name=check_run_name("main")
            )
            assert first_run.status == "in_progress"
            victim = processes[victim_id]
            kill_tree(victim.pid)
            assert victim.wait(timeout=10) == -signal.SIGKILL

            def all_done() -> bool:
                jobs = check_jobs(state)
                assert processes[survivor_id].poll() is None, tail(worker_logs[survivor_id])
                return len(jobs) == PULLS and all(job[2] == "succeeded" for job in jobs)

            # Under a minute on two idle cores; the bound is for a loaded machine.
            await wait_for(all_done, 300, lambda: f"the checks: {check_jobs(state)}", every_s=0.5)
            assert web.poll() is None, tail(logs["web"])

    # The queue: one job per pull request, each run once but the slow one, taken over once
    # (procrastinate counts an attempt when a job ends or is re-queued).
    jobs = check_jobs(state)
    assert sorted(job[1] for job in jobs) == [p.pull.number for p in pulls]
    attempts = {job[1]: job[3] for job in jobs}
    assert attempts.pop(slow.pull.number) == 2 and set(attempts.values()) == {1}
    by_worker = Counter(job[4] for job in jobs)
    assert set(by_worker) == {id_a, id_b}, by_worker  # both did some work
    assert [job[4] for job in jobs if job[0] == slow_job] == [survivor_id]
    assert f"re-queued stalled job {slow_job} ({CHECK})" in worker_logs[survivor_id].read_text()

    # GitHub: one `migsafe` run per head, created once (the taken-over one reused), completed,
    # as the stored analysis says; one gate run per head.
    assert len(fake_github.requests_to("POST", "checks/create")) == 2 * PULLS
    for seeded in pulls:
        [run] = fake_github.check_runs(REPO, head_sha=seeded.head_sha, name=check_run_name("main"))
        [gate] = fake_github.check_runs(REPO, head_sha=seeded.head_sha, name=GATE)
        [(head, conclusion, ran)] = query(
            state,
            "SELECT head_sha, conclusion, (report->'sandbox'->>'ran')::bool FROM analyses"
            " WHERE repo = %s AND number = %s",
            REPO,
            seeded.pull.number,
        )
        # A revision: the sandbox ran, a warning (its ACCESS EXCLUSIVE lock); else nothing ran.
        expected = ("neutral", True) if adds_revision(seeded.pull.number) else ("success", None)
        assert (head, (conclusion, ran)) == (seeded.head_sha, expected)
        assert (run.status, run.conclusion) == ("completed", conclusion), run.output
        assert gate.conclusion == "success", gate.output
    [slow_run] = fake_github.check_runs(REPO, head_sha=slow.head_sha, name=check_run_name("main"))
    assert slow_run.id == first_run.id
