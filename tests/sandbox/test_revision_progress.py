"""The progress line shows the sandbox's revision n/N as the upgrade runs them."""

from __future__ import annotations

from pathlib import Path

from bot.check import CheckOptions, run_check

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def test_the_upgrade_to_head_reports_each_new_revision_as_it_starts() -> None:
    stages: list[str] = []
    result = run_check(CheckOptions(path=SHOP, all_revisions=True, progress=stages.append))
    assert result.sandbox is not None
    revisions = [s for s in stages if ", revision " in s]
    assert revisions == [
        f"sandbox: {step}, revision {n}/3 ({revision})"
        for step in ("upgrade to head", "upgrade again")
        for n, revision in ((1, "0001"), (2, "0002"), (3, "0003"))
    ]
    head = stages.index("sandbox: upgrade to head")
    assert head < stages.index(revisions[0]) < stages.index("sandbox: upgrade again")
