"""Per-check sandbox database: create, drop, create+drop times (median, p95).

Run: python bench/bench_sandbox_db.py [--runs 20] [--url ADMIN_URL]

Without --url (or MIGSAFE_SANDBOX_URL) it starts the embedded cluster and also prints how
long that took. Besides migsafe's own create_sandbox (role + database from template0 +
schema lock-down), it times the bare CREATE DATABASE variants the choice rests on:
template0 vs a prepared template, and on PostgreSQL >= 15 the FILE_COPY strategy.
Goal (issue 3): create+drop <= 150 ms per check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg
from psycopg import sql

from bot.sandbox.cluster import EmbeddedCluster
from bot.sandbox.database import SandboxServer, create_sandbox

TEMPLATE = "migsafe_bench_template"
SCRATCH = "migsafe_bench_scratch"


def summary(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"  {label:<44} median {statistics.median(ordered) * 1000:7.1f} ms"
        f"   p95 {p95 * 1000:7.1f} ms"
    )


def time_sandboxes(server: SandboxServer, runs: int) -> None:
    create_sandbox(server).drop()  # Warm up: admin connection, leftover cleanup.
    creates, drops, totals = [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        sandbox = create_sandbox(server)
        created = time.perf_counter()
        sandbox.drop()
        dropped = time.perf_counter()
        creates.append(created - began)
        drops.append(dropped - created)
        totals.append(dropped - began)
    print("migsafe create_sandbox (role + database + schema lock-down):")
    print(summary("create", creates))
    print(summary("drop (terminate, DROP DATABASE FORCE, DROP ROLE)", drops))
    print(summary("create+drop", totals))


def time_create_variants(admin: psycopg.Connection[tuple[object, ...]], runs: int) -> None:
    template = sql.Identifier(TEMPLATE)
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(template))
    admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(template))
    variants = {
        "TEMPLATE template0": "TEMPLATE template0",
        "prepared template": f"TEMPLATE {TEMPLATE}",
    }
    if admin.info.server_version >= 150000:
        variants |= {
            "TEMPLATE template0 STRATEGY FILE_COPY": "TEMPLATE template0 STRATEGY FILE_COPY",
            "prepared template STRATEGY FILE_COPY": f"TEMPLATE {TEMPLATE} STRATEGY FILE_COPY",
        }
    print("bare CREATE DATABASE (the choice between templates):")
    try:
        for label, clause in variants.items():
            creates = []
            for _ in range(runs):
                began = time.perf_counter()
                admin.execute(f"CREATE DATABASE {SCRATCH} {clause}".encode())
                creates.append(time.perf_counter() - began)
                admin.execute(f"DROP DATABASE {SCRATCH}".encode())
            print(summary(f"create, {label}", creates))
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(template))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--url", default=os.environ.get("MIGSAFE_SANDBOX_URL"))
    options = parser.parse_args()
    cluster = None
    admin_url = options.url
    if not admin_url:
        began = time.perf_counter()
        cluster = EmbeddedCluster().start()
        print(
            f"embedded cluster start (initdb + pg_ctl start): {time.perf_counter() - began:.2f} s"
        )
        admin_url = cluster.conninfo()
    server = SandboxServer(admin_url)
    try:
        print(f"server: PostgreSQL {server.server_version()}, {options.runs} runs each")
        time_sandboxes(server, options.runs)
        with psycopg.connect(server.admin_conninfo, autocommit=True) as admin:
            time_create_variants(admin, options.runs)
    finally:
        server.close()
        if cluster is not None:
            began = time.perf_counter()
            cluster.stop()
            print(f"embedded cluster stop: {time.perf_counter() - began:.2f} s")


if __name__ == "__main__":
    main()
