"""The gate's check-run title and summary: what a product owner reads first."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.analysis.model import Finding, Severity
from bot.policy.approvals import GateVerdict, Review, ReviewState, RoleStatus, evaluate_gate
from bot.policy.backup import NOT_CONFIGURED, BackupStatus
from bot.policy.config import parse_policy
from bot.policy.gate_report import DASH, MAX_CHARS, MAX_TITLE, render_gate_summary
from bot.policy.procedure import ADR, BACKUP, ProcedureItem, Reason

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = parse_policy(
    """
branches:
  main: production
roles:
  backend-lead: my-org/backend-leads
  product-owner: my-org/product-owners
""",
    ".github/migsafe.yml",
)
MIGRATION = "migrations/versions/0003_orders_cleanup.py"
DROP_COLUMN = Finding("drop-column", Severity.ERROR, "drops orders.note", MIGRATION, 14)
MEMBERS = {
    ("my-org/backend-leads", "alice"): True,
    ("my-org/product-owners", "bob"): True,
    ("my-org/backend-leads", "carol"): True,
}
BACKUP_3H = BackupStatus(NOW - timedelta(hours=3), None, "pgBackRest via command `pgbackrest`")
HEAD = "9f1c2d3e4b5a69788796a5b4c3d2e1f001122334"
BEFORE_EDIT = "1a2b3c4d5e6f708192a3b4c5d6e7f80911223344"


def review(user: str, state: ReviewState = "APPROVED", commit: str = HEAD) -> Review:
    return Review(user, "User", state, commit, NOW - timedelta(minutes=30), hash(user) % 1000)


def verdict(reviews: Sequence[Review], *, current: str = "fp-1") -> GateVerdict:
    return evaluate_gate(
        reviews=reviews,
        author="dora",
        memberships=MEMBERS,
        fingerprints={BEFORE_EDIT: "fp-0", HEAD: "fp-1"},
        current_fingerprint=current,
        findings=[DROP_COLUMN],
        policy=POLICY,
        environment="production",
        changes_migrations=True,
        changed_files=[MIGRATION],
        backup=BACKUP_3H,
        now=NOW,
    )


BLOCKED = """\
**Blocked: needs approval from product-owner (my-org/product-owners).**

Base branch `main` deploys to **production**: this check (`migsafe/approvals (main)`) \
is evaluated for it alone. Approvals count only for what they saw run: a change to a \
revision, `env.py`, `script.py.mako`, `alembic.ini`, the setup's requirement files or a \
repository module these import needs them again.

### Approvals

| Role | Team | Required | Approved by | Missing |
| --- | --- | ---: | --- | ---: |
| backend-lead | my-org/backend-leads | 1 | @alice | 0 |
| product-owner | my-org/product-owners | 1 | <dash> | **1** |

**Why approval is needed**

- `drop-column` at `migrations/versions/0003_orders_cleanup.py:14`: backend-lead, product-owner

### Procedure

- ✅ **Destructive changes documented**: every destructive operation has a comment
- <dash> **ADR**: not needed: no significant change
- <dash> **Maintenance window**: not needed: no major change
- ✅ **Backup**: last backup 3 h ago (limit 24 h); last tested restore unknown \
(pgBackRest via command `pgbackrest`)

<sub>✅ done · ❌ blocks the merge · <dash> not needed here, or recommended only</sub>
""".replace("<dash>", DASH)


def test_blocked_summary() -> None:
    title, markdown = render_gate_summary(
        verdict([review("alice")]), environment="production", base_branch="main"
    )
    assert title == "Blocked: needs product-owner approval"
    assert markdown == BLOCKED


def test_approved_summary() -> None:
    title, markdown = render_gate_summary(
        verdict([review("alice"), review("bob")]), environment="production", base_branch="main"
    )
    assert title == "Approved by @alice (backend-lead) and @bob (product-owner)"
    assert markdown.startswith("**Approved by @alice (backend-lead) and @bob (product-owner).**")
    assert "| product-owner | my-org/product-owners | 1 | @bob | 0 |" in markdown
    assert "❌" not in markdown.split("<sub>")[0]


def test_stale_and_blocking_reviews_are_explained() -> None:
    reviews = [
        review("alice", commit=BEFORE_EDIT),
        review("bob"),
        review("carol", "CHANGES_REQUESTED"),
    ]
    title, markdown = render_gate_summary(
        verdict(reviews), environment="production", base_branch="main"
    )
    assert title == "Blocked: needs backend-lead approval; changes requested by @carol"
    assert (
        "- @alice approved `1a2b3c4d5e6f`, but the migrations or what they run changed since: "
        "it no longer counts, a new review is needed"
    ) in markdown
    assert (
        "- @carol (my-org/backend-leads) requested changes on `9f1c2d3e4b5a`: this blocks "
        "until @carol approves or the review is dismissed"
    ) in markdown
    assert markdown.startswith(
        "**Blocked: needs approval from backend-lead (my-org/backend-leads); "
        "@carol requested changes.**"
    )


def test_retargeted_base_names_its_check_and_environment() -> None:
    _, markdown = render_gate_summary(
        verdict([review("alice")]), environment="staging", base_branch="refs/heads/staging"
    )
    assert "Base branch `staging` deploys to **staging**" in markdown
    assert "(`migsafe/approvals (staging)`)" in markdown


def roles_verdict(**changes: object) -> GateVerdict:
    base: dict[str, object] = {
        "conclusion": "action_required",
        "environment": "production",
        "roles": [
            RoleStatus("backend-lead", "my-org/backend-leads", 2, ["alice"], 1, []),
            RoleStatus("product-owner", None, 1, [], 1, []),
        ],
        "blocking_reviews": [],
        "stale_approvals": [],
        "procedure": [],
    }
    return GateVerdict(**{**base, **changes})  # type: ignore[arg-type]


def test_missing_counts_and_unmapped_roles() -> None:
    title, markdown = render_gate_summary(
        roles_verdict(), environment="production", base_branch="main"
    )
    assert markdown.startswith(
        "**Blocked: needs approval from backend-lead (my-org/backend-leads, 1 more) and "
        "product-owner (no team mapped).**"
    )
    assert f"| product-owner | *no team mapped* | 1 | {DASH} | **1** |" in markdown
    assert "No team is mapped to product-owner: map one under `roles:`" in markdown
    assert title == "Blocked: needs backend-lead and product-owner approval"
    two_missing = roles_verdict(
        roles=[RoleStatus("backend-lead", "my-org/backend-leads", 2, [], 2, [])]
    )
    sentence = render_gate_summary(two_missing, environment="production", base_branch="main")[1]
    assert sentence.startswith(
        "**Blocked: needs approval from backend-lead (my-org/backend-leads, 2 more).**"
    )


def test_no_approval_needed() -> None:
    nothing = roles_verdict(conclusion="success", roles=[])
    title, markdown = render_gate_summary(nothing, environment="ci", base_branch="dev")
    assert title == "No approval needed: nothing in this change needs one in ci"
    assert "### Approvals" not in markdown
    no_migration = roles_verdict(conclusion="success", roles=[], changes_migrations=False)
    title, _ = render_gate_summary(no_migration, environment="production", base_branch="main")
    assert title == "No approval needed: this pull request changes no migration"


def test_one_person_for_two_roles_is_named_once() -> None:
    both = roles_verdict(
        conclusion="success",
        roles=[
            RoleStatus("backend-lead", "my-org/backend-leads", 1, ["frank"], 0, []),
            RoleStatus("product-owner", "my-org/product-owners", 1, ["frank"], 0, []),
        ],
    )
    title, _ = render_gate_summary(both, environment="production", base_branch="main")
    assert title == "Approved by @frank (backend-lead, product-owner)"


def test_procedure_failures_in_the_sentence_and_checklist() -> None:
    failing = roles_verdict(
        roles=[],
        procedure=[
            ProcedureItem(ADR, True, "docs/adr/0007.md (in this pull request)"),
            ProcedureItem(BACKUP, False, f"{NOT_CONFIGURED}: the bot's operator sets one up"),
        ],
    )
    title, markdown = render_gate_summary(failing, environment="production", base_branch="main")
    assert title == "Blocked: missing recent backup"
    assert markdown.startswith("**Blocked: the procedure needs a recent backup.**")
    assert "- ✅ **ADR**: docs/adr/0007.md (in this pull request)" in markdown
    assert (
        "- ❌ **Backup**: no backup status source configured: the bot's operator sets one up"
        in markdown
    )


def test_repository_text_cannot_inject_markup() -> None:
    hostile = "migrations/versions/x|<img src=x onerror=alert(1)>`.py"
    role = RoleStatus(
        "backend-lead", "my-org/backend-leads", 1, [], 1, [Reason("drop-table", hostile, 3)]
    )
    item = ProcedureItem(ADR, False, f"drop-table in {hostile}:3 needs an ADR")
    _, markdown = render_gate_summary(
        roles_verdict(roles=[role], procedure=[item]), environment="production", base_branch="main"
    )
    why_line = next(line for line in markdown.splitlines() if line.startswith("- `drop-table`"))
    # Inside a code span (fenced longer than the backtick in it) the tag is literal text.
    assert "``migrations/versions/x|<img src=x onerror=alert(1)>`.py:3``" in why_line
    assert len(re.findall(r"(?<!\\)<img", markdown)) == 1  # only that one is unescaped
    adr_line = next(line for line in markdown.splitlines() if "**ADR**" in line)
    assert "x\\|\\<img src=x onerror=alert(1)\\>" in adr_line


def test_long_lists_and_size_stay_within_limits() -> None:
    reasons = [Reason("drop-column", f"migrations/versions/{i:04}.py", 1) for i in range(500)]
    role = RoleStatus("backend-lead", "my-org/backend-leads", 1, [], 1, reasons)
    title, markdown = render_gate_summary(
        roles_verdict(roles=[role]), environment="production", base_branch="main" * 100
    )
    assert "- … and 470 more" in markdown
    assert len(markdown) <= MAX_CHARS
    assert len(title) <= MAX_TITLE
