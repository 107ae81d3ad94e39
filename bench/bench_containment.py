"""What the containment costs per child start, beside what a whole check costs.

Run: python bench/bench_containment.py [--rounds 15]

Whole processes, the two sides alternated in every round: the same command (`python -I -c
pass`, the smallest a child can be) started by `run_isolated` (bubblewrap: namespaces, the
view, the tmpfs mounts, the uid drop, rlimits) and started plainly by subprocess. The cost is
the difference per round; min/median/max of it and of the ratio are printed. Then a whole
`migsafe check` of examples/shop with the sandbox (two contained children and the embedded
cluster's database), so the cost is seen beside what the user waits for anyway.
Goal (issue 11): <= 100 ms per child start.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.sandbox.containment import probe
from bot.sandbox.isolation import run_isolated, scrubbed_env

ROOT = Path(__file__).resolve().parents[1]
CHILD = [sys.executable, "-I", "-c", "pass"]
GOAL_MS = 100.0


def contained(cwd: Path) -> float:
    started = time.perf_counter()
    result = run_isolated(CHILD, cwd=cwd, env=scrubbed_env(), timeout_s=60)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the contained child failed: {result.stderr.strip()}")
    return elapsed


def plain(cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(CHILD, cwd=cwd, env=scrubbed_env(), check=True)
    return time.perf_counter() - started


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    return (
        f"min {min(values) * scale:7.1f}{unit}  median {statistics.median(values) * scale:7.1f}"
        f"{unit}  max {max(values) * scale:7.1f}{unit}"
    )


def whole_check() -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", str(ROOT / "examples" / "shop")],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"the check failed: {done.stderr.decode()[-500:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    mode = probe()
    identity = "root, an own uid per child" if mode.as_root else "a user namespace"
    print(f"containment: {mode.version}, {identity}")
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)
        contained(cwd), plain(cwd)  # warm caches on both sides
        costs, ratios = [], []
        for round_number in range(args.rounds):
            sides = [contained, plain] if round_number % 2 == 0 else [plain, contained]
            times = {side.__name__: side(cwd) for side in sides}
            costs.append(times["contained"] - times["plain"])
            ratios.append(times["contained"] / times["plain"])
    print(
        f"child start, contained minus plain ({args.rounds} rounds): {spread(costs, ' ms', 1000)}"
    )
    print(f"child start, contained / plain:                     {spread(ratios, 'x')}")
    checks = [whole_check() for _ in range(3)]
    print(f"whole `migsafe check examples/shop` (sandbox, 2 children): {spread(checks, ' s')}")
    verdict = "within" if statistics.median(costs) * 1000 <= GOAL_MS else "OVER"
    print(f"goal: <= {GOAL_MS:.0f} ms per child start: {verdict}")


if __name__ == "__main__":
    main()
