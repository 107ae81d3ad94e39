"""CLI start-up: CPU time of `migsafe --version` beside a bare `python -c pass`.

Run: python bench/bench_cli_start.py [--rounds 20]

Each round starts every side once, in turn (the order rotated each round), as whole
processes; a side's figure is the child's user + system CPU time from os.wait4, so a busy
machine slows the wall clock but not the figure. Sides: `python -c pass` (the floor: the
interpreter and site), `python -m bot.cli --version`, and the `migsafe` console script
beside this interpreter when it is installed. Goal (issue 14): `migsafe --version` within
0.15 s of CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 0.15


def sides() -> dict[str, list[str]]:
    found = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m bot.cli --version": [sys.executable, "-m", "bot.cli", "--version"],
    }
    script = Path(sys.executable).parent / "migsafe"
    if script.is_file() and os.access(script, os.X_OK):
        found["migsafe --version"] = [str(script), "--version"]
    else:
        print(f"note: no console script at {script}; `pip install -e .` adds it", file=sys.stderr)
    return found


def cpu_seconds(argv: list[str]) -> float:
    """user + system CPU time of one run of argv, output discarded; fails on a non-zero exit."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    previous = Path.cwd()
    os.chdir(ROOT)  # `python -m bot.cli` imports this checkout's bot
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    finally:
        os.chdir(previous)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed: exit status {status}")
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=20)
    options.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    args = options.parse_args()

    commands = sides()
    names = list(commands)
    for _ in range(args.warmup):  # byte-code caches, page cache
        for name in names:
            cpu_seconds(commands[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(cpu_seconds(commands[name]))

    print(f"CPU time (user + sys) per process, {args.rounds} rounds, sides alternated")
    print(f"{'':<30} {'min':>8} {'median':>8} {'max':>8}   {'median - floor':>14}")
    floor = statistics.median(times["python -c pass"])
    for name in names:
        values = times[name]
        median = statistics.median(values)
        print(
            f"{name:<30} {min(values):>7.3f}s {median:>7.3f}s {max(values):>7.3f}s"
            f"   {median - floor:>13.3f}s"
        )
    measured = "migsafe --version" if "migsafe --version" in times else names[1]
    median = statistics.median(times[measured])
    verdict = "within" if median <= GOAL_S else "OVER"
    print(f"goal: `migsafe --version` <= {GOAL_S:.2f} s CPU; {measured}: {median:.3f} s, {verdict}")
    return 0 if median <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
