"""table-rewrite from the parent's own reading of pg_class, where the trace says nothing."""

from __future__ import annotations

from bot.analysis.rules.sandbox import unreported_rewrites
from bot.analysis.sandbox_model import TracedStatement

BASE = {"public.accounts": (16390, 16390), "public.orders": (16400, 16400)}


def test_storage_replaced_without_a_traced_rewrite_is_a_finding() -> None:
    head = {**BASE, "public.accounts": (16390, 16420)}
    [finding] = unreported_rewrites(BASE, head, trace=[])
    assert finding.rule == "table-rewrite" and finding.source == "sandbox"
    assert finding.message.startswith("table accounts was rewritten during the upgrade")
    assert finding.path is None  # the parent does not know which statement did it


def test_a_rewrite_the_trace_reports_is_not_repeated() -> None:
    head = {**BASE, "public.accounts": (16390, 16420)}
    traced = TracedStatement("CLUSTER accounts", 0.0, 0.1, rewritten=["public.accounts"])
    assert unreported_rewrites(BASE, head, trace=[traced]) == []


def test_untouched_dropped_or_re_created_tables_are_not_rewrites() -> None:
    head = {"public.accounts": (16500, 16500)}  # orders dropped; accounts re-created
    assert unreported_rewrites(BASE, head, trace=[]) == []
    assert unreported_rewrites(BASE, dict(BASE), trace=[]) == []
