"""The GitHub App against the fake GitHub on loopback: webhook acknowledgement and check time.

Run: python bench/bench_service.py [--rate 100] [--seconds 30] [--runs 5]

(1) Acknowledgement: `migsafe serve --no-worker` (a real process, its settings from the
    environment, the state database on an embedded cluster) receives `--rate` signed
    `pull_request.opened` deliveries per second for `--seconds` seconds, sent open-loop (on
    schedule, whatever the answers) over one keep-alive pool. Each delivery names its own pull
    request and head, so each must become exactly one job. Printed: p50/p99/max of the
    acknowledgement latency, `lost` (acknowledged but absent from the database) and
    `duplicated` (deliveries with more than one job). Goal: p99 <= 50 ms, 0 lost, 0 duplicated.
(2) Check time: `migsafe serve` (web + worker) and the shop's risky migration in a fresh pull
    request per run: from POSTing `pull_request.opened` to the `migsafe` check run completed
    in the fake, beside the floor: `run_check` by hand on the same base and head trees with the
    same policy and sandbox. Medians after one warm-up each. Goal: <= floor + 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake GitHub and the e2e fixtures live under tests/

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from bot.analysis.catalog import RULES  # noqa: E402
from bot.check import CheckOptions, run_check  # noqa: E402
from bot.policy.config import POLICY_PATH, parse_policy  # noqa: E402
from bot.policy.environments import environment_for_branch  # noqa: E402
from bot.sandbox.cluster import EmbeddedCluster  # noqa: E402
from bot.store import db  # noqa: E402
from tests.e2e.conftest import REPO, SECRET, base_files, head_migration, seed_shop  # noqa: E402
from tests.fakegithub import payloads, require_shared_github_dir  # noqa: E402
from tests.fakegithub.server import FakeGitHub  # noqa: E402

RISKY = "0003_orders_cleanup.py"


# -- the service process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def service(
    fake: FakeGitHub, conninfo: str, sandbox_url: str, *, worker: bool, log: Path
) -> Iterator[str]:
    """`migsafe serve [--no-worker]` configured through its environment; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "MIGSAFE_APP_ID": str(fake.app_id),
        "MIGSAFE_PRIVATE_KEY": fake.private_key_pem,
        "MIGSAFE_WEBHOOK_SECRET": SECRET,
        "MIGSAFE_GITHUB_API_URL": fake.url,
        "DATABASE_URL": conninfo,
        "MIGSAFE_SANDBOX_URL": sandbox_url,
        "PORT": str(port),
    }
    command = [sys.executable, "-m", "bot.cli", "serve", *([] if worker else ["--no-worker"])]
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the service at {url} did not become ready")


# -- (1) acknowledgement latency ---------------------------------------------------------------


def deliveries(fake: FakeGitHub, count: int) -> list[tuple[dict[str, str], bytes]]:
    """`count` signed pull_request.opened deliveries, each for its own PR number and head."""
    seeded = seed_shop(fake, head_migration(RISKY))
    template = payloads.pull_request_event(
        fake, "opened", seeded.repo, seeded.pull, seeded.installation.id
    )
    built = []
    for index in range(count):
        payload = copy.deepcopy(template)
        payload["number"] = payload["pull_request"]["number"] = 10_000 + index
        head = hashlib.sha1(f"bench-{index}".encode()).hexdigest()
        payload["pull_request"]["head"]["sha"] = head
        built.append(payloads.delivery("pull_request", payload, SECRET))
    return built


async def acknowledgement(url: str, batch: list[tuple[dict[str, str], bytes]], rate: float) -> Any:
    latencies: list[float] = []
    acknowledged: list[str] = []
    refused: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=0)

    async def send(session: aiohttp.ClientSession, headers: dict[str, str], body: bytes) -> None:
        started = time.perf_counter()
        async with session.post(f"{url}/webhook", data=body, headers=headers) as response:
            await response.read()
        latencies.append(time.perf_counter() - started)
        if response.status == 202:
            acknowledged.append(headers["X-GitHub-Delivery"])
        else:
            refused[response.status] = refused.get(response.status, 0) + 1

    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for index, (headers, body) in enumerate(batch):
            delay = start + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(session, headers, body)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start
    return latencies, acknowledged, refused, elapsed


def lost_and_duplicated(conninfo: str, acknowledged: list[str]) -> tuple[int, int, int]:
    with psycopg.connect(conninfo) as connection:
        stored = {
            row[0]: row[1]
            for row in connection.execute("SELECT delivery_id, job_ids FROM deliveries")
        }
        jobs_per_delivery = connection.execute(
            "SELECT args->>'delivery_id', count(*) FROM procrastinate_jobs GROUP BY 1"
        ).fetchall()
    lost = sum(1 for delivery in acknowledged if delivery not in stored)
    duplicated = sum(1 for _, count in jobs_per_delivery if count > 1)
    duplicated += sum(1 for ids in stored.values() if ids is not None and len(ids) > 1)
    no_job = sum(1 for delivery in acknowledged if not stored.get(delivery))
    return lost, duplicated, no_job


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# -- (2) time to a completed check ---------------------------------------------------------------


async def time_to_check(url: str, fake: FakeGitHub) -> float:
    seeded = seed_shop(fake, head_migration(RISKY))
    payload = payloads.pull_request_event(
        fake, "opened", seeded.repo, seeded.pull, seeded.installation.id
    )
    headers, body = payloads.delivery("pull_request", payload, SECRET)
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.post(f"{url}/webhook", data=body, headers=headers) as response:
            if response.status != 202:
                raise RuntimeError(f"delivery refused: {response.status} {await response.text()}")
        while True:
            runs = fake.check_runs(REPO, head_sha=seeded.head_sha, name="migsafe")
            if runs and runs[-1].status == "completed":
                if runs[-1].conclusion != "failure":
                    raise RuntimeError(f"unexpected check: {runs[-1].output.get('title')}")
                return time.perf_counter() - started
            if time.perf_counter() - started > 120:
                raise RuntimeError("the check did not complete within 120 s")
            await asyncio.sleep(0.005)


def floor_once(sandbox_url: str) -> float:
    """`run_check` by hand on the same trees, policy and environment as the service's."""
    with tempfile.TemporaryDirectory(prefix="migsafe-floor-") as tmp:
        base, head = Path(tmp) / "base", Path(tmp) / "head"
        for root, files in (
            (base, base_files()),
            (head, {**base_files(), **head_migration(RISKY)}),
        ):
            for name, data in files.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)
        text = (base / POLICY_PATH).read_text(encoding="utf-8")
        policy = parse_policy(text, f"main:{POLICY_PATH}", known_rule_ids=set(RULES))
        started = time.perf_counter()
        result = run_check(
            CheckOptions(
                path=head,
                base_tree=base,
                policy=policy,
                environment=environment_for_branch(policy, "main"),
                sandbox=True,
                database_url=sandbox_url,
            )
        )
        elapsed = time.perf_counter() - started
    if not result.blocking:
        raise RuntimeError("the floor's check found nothing: not the same analysis")
    return elapsed


# -- main ----------------------------------------------------------------------------------------


@contextmanager
def state_database(cluster: EmbeddedCluster) -> Iterator[str]:
    name = f"bench_service_{secrets.token_hex(3)}"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        conninfo = cluster.conninfo(dbname=name)
        db.upgrade(conninfo)
        yield conninfo
    finally:
        with psycopg.connect(cluster.conninfo(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def empty_queue(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE deliveries, pull_requests, procrastinate_jobs, procrastinate_events"
            " RESTART IDENTITY CASCADE"
        )


async def bench(args: argparse.Namespace) -> None:
    log = Path(tempfile.gettempdir()) / "migsafe-bench-service.log"
    log.write_bytes(b"")
    fake = FakeGitHub(require_shared_github_dir())
    await fake.start()
    with EmbeddedCluster() as cluster, state_database(cluster) as conninfo:
        sandbox_url = cluster.conninfo()
        count = int(args.rate * args.seconds)
        batch = deliveries(fake, count)
        with service(fake, conninfo, sandbox_url, worker=False, log=log) as url:
            await wait_ready(url)
            latencies, acknowledged, refused, elapsed = await acknowledgement(url, batch, args.rate)
        lost, duplicated, no_job = lost_and_duplicated(conninfo, acknowledged)
        ms = [value * 1000 for value in latencies]
        print(f"(1) webhook acknowledgement, {count} deliveries at {args.rate:g}/s")
        print(f"    sent in {elapsed:.1f} s; acknowledged {len(acknowledged)}; refused {refused}")
        print(
            f"    latency p50 {percentile(ms, 0.50):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
            f"max {max(ms):.1f} ms (goal: p99 <= 50 ms)"
        )
        print(f"    lost {lost}, duplicated {duplicated}, without a job {no_job} (goal: 0, 0)")

        empty_queue(conninfo)
        with service(fake, conninfo, sandbox_url, worker=True, log=log) as url:
            await wait_ready(url)
            await time_to_check(url, fake)  # warm-up: the worker's first sandbox connection
            await asyncio.sleep(1)  # the gate that follows the warm-up check
            requests_before = len(fake.requests)
            service_s = []
            for _ in range(args.runs):
                service_s.append(await time_to_check(url, fake))
                await asyncio.sleep(1)  # let the gate finish: each run starts on a quiet worker
            requests = (len(fake.requests) - requests_before) / args.runs
        floor_once(sandbox_url)  # warm-up
        floor_s = [floor_once(sandbox_url) for _ in range(args.runs)]
        service_median, floor_median = statistics.median(service_s), statistics.median(floor_s)
        print(f"(2) pull_request.opened -> completed check run, median of {args.runs}")
        print(f"    service {service_median:.2f} s  ({', '.join(f'{s:.2f}' for s in service_s)})")
        print(f"    floor   {floor_median:.2f} s  ({', '.join(f'{s:.2f}' for s in floor_s)})")
        print(
            f"    overhead {service_median - floor_median:+.2f} s (goal: <= +1 s); "
            f"{requests:.0f} GitHub requests per pull request (check and gate)"
        )
    await fake.stop()
    print(f"service log: {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to send")
    parser.add_argument("--runs", type=int, default=5, help="checks timed (after a warm-up)")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
