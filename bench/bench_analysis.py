"""Static analysis throughput: migsafe (parse + every rule) beside squawk, on the same SQL.

Run: python bench/bench_analysis.py [--statements 10000] [--seed 7]

Generates a corpus of migration statements of the kinds real migrations hold,
times migsafe's parse + all rules on one core, writes the same corpus to a
file and times `squawk --reporter json` on it. Prints statements per second
for both. Goal (issue 2): migsafe >= 20,000 statements/s.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.analysis.engine import AnalysisOptions, analyze_upgrade
from bot.analysis.model import Statement
from bot.analysis.parse import parse_statements

TEMPLATES = (
    "ALTER TABLE {t} ADD COLUMN {c} VARCHAR(255)",
    "ALTER TABLE {t} ADD COLUMN {c} INTEGER NOT NULL",
    "ALTER TABLE {t} ADD COLUMN {c} TEXT DEFAULT 'x' NOT NULL",
    "ALTER TABLE {t} DROP COLUMN {c}",
    "ALTER TABLE {t} ALTER COLUMN {c} TYPE BIGINT",
    "ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL",
    "ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT 0",
    "ALTER TABLE {t} RENAME {c} TO {c}_old",
    "CREATE INDEX ix_{t}_{c} ON {t} ({c})",
    "CREATE INDEX CONCURRENTLY ix_{t}_{c}_2 ON {t} ({c})",
    "DROP INDEX ix_{t}_{c}",
    "ALTER TABLE {t} ADD CONSTRAINT fk_{t}_{c} FOREIGN KEY({c}) REFERENCES users (id)",
    "ALTER TABLE {t} ADD CONSTRAINT ck_{t}_{c} CHECK ({c} > 0) NOT VALID",
    "ALTER TABLE {t} VALIDATE CONSTRAINT ck_{t}_{c}",
    "CREATE TABLE {t}_new (id BIGSERIAL PRIMARY KEY, {c} TEXT NOT NULL, created_at TIMESTAMP)",
    "DROP TABLE {t}_old",
    "UPDATE {t} SET {c} = 0 WHERE {c} IS NULL",
    "SET lock_timeout = '30s'",
    "SET statement_timeout = '5min'",
    "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY p_{t} ON {t} USING (tenant_id = current_setting('app.tenant_id')::int)",
    "TRUNCATE TABLE {t}",
)


def corpus(size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    tables = [f"table_{n}" for n in range(200)]
    columns = [f"col_{n}" for n in range(50)]
    return [
        rng.choice(TEMPLATES).format(t=rng.choice(tables), c=rng.choice(columns))
        for _ in range(size)
    ]


def time_migsafe(sqls: list[str]) -> float:
    statements = [Statement(sql=sql, phase="upgrade", index=i) for i, sql in enumerate(sqls)]
    started = time.perf_counter()
    parse_statements(statements)
    analyze_upgrade(statements, AnalysisOptions())
    return time.perf_counter() - started


def time_squawk(sqls: list[str]) -> float | None:
    squawk = shutil.which("squawk")
    if squawk is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.sql"
        path.write_text(";\n".join(sqls) + ";\n")
        started = time.perf_counter()
        subprocess.run([squawk, "--reporter", "json", str(path)], capture_output=True, check=False)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    sqls = corpus(args.statements, args.seed)
    ours = min(time_migsafe(sqls) for _ in range(args.repeat))
    print(f"corpus: {len(sqls)} statements ({len(set(sqls))} distinct)")
    print(f"migsafe (parse + all rules): {ours:.3f} s = {len(sqls) / ours:,.0f} statements/s")
    theirs = time_squawk(sqls)
    if theirs is None:
        print("squawk: not installed (pip install squawk-cli)")
    else:
        print(
            f"squawk --reporter json:      {theirs:.3f} s = {len(sqls) / theirs:,.0f} statements/s"
        )
        print(f"migsafe takes {ours / theirs:.1f}x squawk's time (goal: within 3x)")
    goal = 20_000
    verdict = "meets" if len(sqls) / ours >= goal else "misses"
    print(f"goal >= {goal:,} statements/s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
