"""The merge gate's evaluation: reviews + memberships + findings in, verdict out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from bot.analysis.model import Finding, Severity
from bot.policy.approvals import (
    GateVerdict,
    Review,
    ReviewState,
    check_name,
    evaluate_gate,
    latest_reviews,
    membership_checks,
)
from bot.policy.backup import BackupStatus, BackupUnavailable
from bot.policy.config import Policy, parse_policy
from bot.policy.environments import environment_for_branch
from bot.policy.procedure import (
    ADR,
    BACKUP,
    DOCUMENTED,
    MAINTENANCE_WINDOW,
    ProcedureItem,
    human_duration,
    linked_paths,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(hours=2)
BACKEND = "my-org/backend-leads"
PRODUCT = "my-org/product-owners"
POLICY_TEXT = f"""
branches:
  main: production
  staging: staging
roles:
  backend-lead: {BACKEND}
  product-owner: {PRODUCT}
"""
POLICY = parse_policy(POLICY_TEXT, ".github/migsafe.yml")
MIGRATION = "migrations/versions/0003_orders_cleanup.py"
DROP_COLUMN = Finding("drop-column", Severity.ERROR, "drops orders.note", MIGRATION, 14)
DROP_TABLE = Finding("drop-table", Severity.ERROR, "drops legacy_orders", MIGRATION, 20)
UNDOCUMENTED = Finding(
    "destructive-undocumented", Severity.ERROR, "no comment", MIGRATION, 14, source="static"
)
ADD_COLUMN = Finding("missing-lock-timeout", Severity.ERROR, "no lock_timeout", MIGRATION, 9)
# c1: analysed; c2: an unrelated push after it (same migrations); c3: a migration edited.
FINGERPRINTS = {"c1": "fp-A", "c2": "fp-A", "c3": "fp-B"}
FRESH_BACKUP = BackupStatus(NOW - timedelta(hours=3), NOW - timedelta(days=6), "pgBackRest")
AUTHOR = "dora"
MEMBERS = {
    "alice": [BACKEND],
    "bob": [PRODUCT],
    "carol": [BACKEND],
    "frank": [BACKEND, PRODUCT],
    "dora": [BACKEND, PRODUCT],  # the author, a member of both teams
    "migsafe-helper[bot]": [BACKEND, PRODUCT],
}
_ids = count(1)


def review(
    user: str,
    state: ReviewState = "APPROVED",
    *,
    commit: str = "c1",
    minute: int = 0,
    user_type: str = "User",
) -> Review:
    return Review(user, user_type, state, commit, T0 + timedelta(minutes=minute), next(_ids))


def memberships(
    members: dict[str, list[str]] = MEMBERS, pending: Sequence[str] = ()
) -> dict[tuple[str, str], bool]:
    """What the caller fetched: active -> True; pending (invited, not accepted) -> False."""
    result = {(team, user): True for user, teams in members.items() for team in teams}
    result.update({(BACKEND, user): False for user in pending})
    return result


@dataclass
class Case:
    reviews: list[Review]
    conclusion: str
    approved_by: dict[str, list[str]]
    current: str = "c1"  # the head commit
    members: dict[tuple[str, str], bool] = field(default_factory=memberships)
    policy: Policy = POLICY
    environment: str = "production"
    stale: list[str] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def gate(
    reviews: Sequence[Review],
    *,
    current: str = "c1",
    members: dict[tuple[str, str], bool] | None = None,
    policy: Policy = POLICY,
    environment: str = "production",
    findings: Sequence[Finding] = (DROP_COLUMN,),
    labels: Sequence[str] = (),
    changed_files: Sequence[str] = (MIGRATION,),
    pr_body: str = "",
    backup: BackupStatus | BackupUnavailable | None = FRESH_BACKUP,
    changes_migrations: bool = True,
) -> GateVerdict:
    return evaluate_gate(
        reviews=reviews,
        author=AUTHOR,
        memberships=memberships() if members is None else members,
        fingerprints=FINGERPRINTS,
        current_fingerprint=FINGERPRINTS[current],
        findings=findings,
        policy=policy,
        environment=environment,
        changes_migrations=changes_migrations,
        labels=labels,
        changed_files=changed_files,
        pr_body=pr_body,
        backup=backup,
        now=NOW,
    )


DISTINCT = parse_policy(POLICY_TEXT + "approval:\n  distinct_approvers: true\n", "p.yml")
TWO_LEADS = parse_policy(
    POLICY_TEXT + "environments:\n  production:\n    approvals:\n      backend-lead: 2\n", "p.yml"
)

CASES = {
    "both roles approve": Case(
        [review("alice"), review("bob")],
        "success",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
    ),
    "author approval ignored": Case(
        [review("dora")], "action_required", {}, ignored=["dora: the pull request's author"]
    ),
    "bot approval ignored": Case(
        [review("migsafe-helper[bot]", user_type="Bot"), review("bob")],
        "action_required",
        {"product-owner": ["bob"]},
        ignored=["migsafe-helper[bot]: a bot account"],
    ),
    "non-member ignored": Case(
        [review("erin"), review("bob")],
        "action_required",
        {"product-owner": ["bob"]},
        ignored=["erin: not an active member of a team whose approval this change needs"],
    ),
    "pending membership ignored": Case(
        [review("gina"), review("bob")],
        "action_required",
        {"product-owner": ["bob"]},
        members=memberships(pending=["gina"]),
        ignored=["gina: not an active member of a team whose approval this change needs"],
    ),
    "changes requested blocks": Case(
        [review("carol", "CHANGES_REQUESTED"), review("alice"), review("bob")],
        "action_required",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
        blocking=["carol"],
    ),
    "changes requested then approved": Case(
        [review("carol", "CHANGES_REQUESTED"), review("carol", minute=5), review("bob")],
        "success",
        {"backend-lead": ["carol"], "product-owner": ["bob"]},
    ),
    "changes requested, then only a comment: still blocks": Case(
        [
            review("carol", "CHANGES_REQUESTED"),
            review("carol", "COMMENTED", minute=5),
            review("alice"),
            review("bob"),
        ],
        "action_required",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
        blocking=["carol"],
    ),
    "changes request dismissed": Case(
        [review("carol", "DISMISSED"), review("alice"), review("bob")],
        "success",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
    ),
    "changes requested by a non-member does not block": Case(
        [review("erin", "CHANGES_REQUESTED"), review("alice"), review("bob")],
        "success",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
    ),
    "dismissed approval no longer counts": Case(
        [review("alice", "DISMISSED"), review("bob")],
        "action_required",
        {"product-owner": ["bob"]},
    ),
    "a comment after an approval keeps it": Case(
        [review("alice"), review("alice", "COMMENTED", minute=9), review("bob")],
        "success",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
    ),
    "pending (draft) review changes nothing": Case(
        [review("alice"), review("alice", "PENDING", minute=9), review("bob")],
        "success",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
    ),
    "stale after a migration change": Case(
        [review("alice"), review("bob")],
        "action_required",
        {},
        current="c3",
        stale=["alice@c1", "bob@c1"],
    ),
    "kept after an unrelated push": Case(
        [review("alice"), review("bob")],
        "success",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
        current="c2",
    ),
    "approval of an unanalysed commit is stale": Case(
        [review("alice", commit="c0"), review("bob")],
        "action_required",
        {"product-owner": ["bob"]},
        stale=["alice@c0"],
    ),
    "two teams one person": Case(
        [review("frank")],
        "success",
        {"backend-lead": ["frank"], "product-owner": ["frank"]},
    ),
    "distinct approvers: one person is not enough": Case(
        [review("frank")], "action_required", {"backend-lead": ["frank"]}, policy=DISTINCT
    ),
    "distinct approvers: reassigned so both roles are filled": Case(
        # frank approves first and could take backend-lead; only the matching that gives
        # backend-lead to alice and product-owner to frank satisfies both roles.
        [review("frank"), review("alice", minute=1)],
        "success",
        {"backend-lead": ["alice"], "product-owner": ["frank"]},
        policy=DISTINCT,
    ),
    "raised count: two backend leads": Case(
        [review("alice"), review("bob")],
        "action_required",
        {"backend-lead": ["alice"], "product-owner": ["bob"]},
        policy=TWO_LEADS,
    ),
    "raised count met": Case(
        [review("alice"), review("carol"), review("bob")],
        "success",
        {"backend-lead": ["alice", "carol"], "product-owner": ["bob"]},
        policy=TWO_LEADS,
    ),
    "logins compare case-insensitively": Case(
        [review("Alice"), review("BOB")],
        "success",
        {"backend-lead": ["Alice"], "product-owner": ["BOB"]},
    ),
    "staging needs only a backend lead": Case(
        [review("alice")], "success", {"backend-lead": ["alice"]}, environment="staging"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_counting_approvals(case: Case) -> None:
    verdict = gate(
        case.reviews,
        current=case.current,
        members=case.members,
        policy=case.policy,
        environment=case.environment,
    )
    assert verdict.conclusion == case.conclusion
    approved = {role.role: role.approved_by for role in verdict.roles if role.approved_by}
    assert approved == case.approved_by
    assert [f"{s.user}@{s.commit_id}" for s in verdict.stale_approvals] == case.stale
    assert [b.user for b in verdict.blocking_reviews] == case.blocking
    assert [f"{i.user}: {i.reason}" for i in verdict.ignored_approvals] == case.ignored
    for role in verdict.roles:
        assert role.missing == max(0, role.required - len(role.approved_by))


def test_roles_say_which_team_how_many_and_why() -> None:
    verdict = gate([review("alice")], findings=[DROP_COLUMN, DROP_TABLE, ADD_COLUMN])
    lead, owner = verdict.roles
    assert (lead.role, lead.team, lead.required, lead.missing) == ("backend-lead", BACKEND, 1, 0)
    assert (owner.role, owner.team, owner.required, owner.missing) == (
        "product-owner",
        PRODUCT,
        1,
        1,
    )
    # Only the destructive findings need approval, each named with its place.
    assert [str(reason) for reason in owner.why] == [
        f"drop-column in {MIGRATION}:14",
        f"drop-table in {MIGRATION}:20",
    ]


def test_stale_reasons_tell_a_changed_migration_from_an_unknown_commit() -> None:
    verdict = gate([review("alice", commit="c1"), review("bob", commit="c0")], current="c3")
    reasons = {s.user: s.reason for s in verdict.stale_approvals}
    assert reasons["alice"] == "the migrations or what they run changed since"
    assert "never analysed" in reasons["bob"]


def test_distinct_approvers_note_who_was_already_used() -> None:
    verdict = gate([review("frank")], policy=DISTINCT)
    owner = verdict.roles[1]
    assert owner.missing == 1
    assert owner.notes == [
        "@frank also approved, but already counts for backend-lead "
        "(each role needs a different person)"
    ]


def test_retargeted_base_changes_check_name_and_environment() -> None:
    reviews = [review("alice")]
    on_main = gate(reviews, environment=environment_for_branch(POLICY, "main"))
    on_staging = gate(reviews, environment=environment_for_branch(POLICY, "refs/heads/staging"))
    assert check_name("main") == "migsafe/approvals (main)"
    assert check_name("refs/heads/staging") == "migsafe/approvals (staging)"
    assert check_name("main") != check_name("staging")
    assert (on_main.environment, on_main.conclusion) == ("production", "action_required")
    assert (on_staging.environment, on_staging.conclusion) == ("staging", "success")
    assert [r.role for r in on_staging.roles] == ["backend-lead"]


def test_unmapped_role_cannot_be_satisfied() -> None:
    policy = parse_policy(f"roles:\n  backend-lead: {BACKEND}\n", "p.yml")
    verdict = gate([review("alice"), review("bob")], policy=policy)
    owner = verdict.roles[1]
    assert (owner.team, owner.missing, verdict.conclusion) == (None, 1, "action_required")


def test_nothing_to_approve() -> None:
    no_destructive = gate([], findings=[ADD_COLUMN])
    assert (no_destructive.conclusion, no_destructive.roles) == ("success", [])
    in_ci = gate([], environment="ci", findings=[DROP_COLUMN])
    assert (in_ci.conclusion, in_ci.roles) == ("success", [])
    no_migrations = gate([], changes_migrations=False, backup=None)
    assert no_migrations.conclusion == "success"
    assert (no_migrations.procedure, no_migrations.changes_migrations) == ([], False)


def test_suppressed_destructive_finding_still_needs_approval() -> None:
    suppressed = Finding(
        "drop-column", Severity.ERROR, "m", MIGRATION, 14, suppressed=True, suppression_reason="x"
    )
    assert [r.role for r in gate([], findings=[suppressed]).roles] == [
        "backend-lead",
        "product-owner",
    ]


def test_latest_review_is_by_submission_time_not_list_order() -> None:
    later_approval = review("carol", minute=10)
    earlier_request = review("carol", "CHANGES_REQUESTED", minute=1)
    latest = latest_reviews([later_approval, earlier_request])
    assert latest["carol"].state == "APPROVED"


def test_membership_checks_cover_every_mapped_team_for_human_reviewers() -> None:
    reviews = [
        review("alice"),
        review("carol", "CHANGES_REQUESTED"),
        review("erin", "COMMENTED"),
        review("dora"),
        review("ci[bot]", user_type="Bot"),
    ]
    assert membership_checks(reviews, AUTHOR, POLICY) == {
        (BACKEND, "alice"),
        (PRODUCT, "alice"),
        (BACKEND, "carol"),
        (PRODUCT, "carol"),
    }


# --- the procedure ---


def item(verdict: GateVerdict, name: str) -> ProcedureItem:
    return next(i for i in verdict.procedure if i.name == name)


APPROVED = [review("alice"), review("bob")]


def test_procedure_passes_for_a_documented_drop_column_with_a_fresh_backup() -> None:
    verdict = gate(APPROVED)
    assert verdict.conclusion == "success"
    assert [(i.name, i.ok) for i in verdict.procedure] == [
        (DOCUMENTED, True),
        (ADR, None),
        (MAINTENANCE_WINDOW, None),
        (BACKUP, True),
    ]


def test_undocumented_destructive_change_blocks() -> None:
    verdict = gate(APPROVED, findings=[DROP_COLUMN, UNDOCUMENTED])
    documented = item(verdict, DOCUMENTED)
    assert documented.ok is False
    assert f"{MIGRATION}:14" in documented.detail
    assert verdict.conclusion == "action_required"
    suppressed = replace(UNDOCUMENTED, suppressed=True, suppression_reason="documented in ADR")
    assert item(gate(APPROVED, findings=[DROP_COLUMN, suppressed]), DOCUMENTED).ok is True


def test_adr_needed_for_a_dropped_table() -> None:
    labels = ["maintenance-window"]
    missing = gate(APPROVED, findings=[DROP_TABLE], labels=labels)
    assert item(missing, ADR).ok is False
    assert "docs/adr/*.md" in item(missing, ADR).detail
    assert missing.conclusion == "action_required"
    added = gate(
        APPROVED,
        findings=[DROP_TABLE],
        labels=labels,
        changed_files=[MIGRATION, "docs/adr/0007-drop-legacy-orders.md"],
    )
    assert item(added, ADR).ok is True
    assert added.conclusion == "success"
    body = "Why: see [the ADR](https://github.com/o/r/blob/main/docs/adr/0007-drop.md)."
    linked = gate(APPROVED, findings=[DROP_TABLE], labels=labels, pr_body=body)
    assert item(linked, ADR).ok is True
    assert "docs/adr/0007-drop.md" in item(linked, ADR).detail


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("see docs/adr/0001-x.md.", ["docs/adr/0001-x.md"]),
        ("[adr](../docs/adr/0002.md#decision)", ["docs/adr/0002.md"]),
        ("https://github.com/o/r/blob/abc/docs/adr/0003.md?plain=1", ["docs/adr/0003.md"]),
        ("docs/adr/sub/0004.md and docs/adr/notes.txt", []),
        ("nothing here", []),
    ],
)
def test_linked_adr_paths(body: str, expected: list[str]) -> None:
    assert linked_paths(body, "docs/adr/*.md") == expected


def test_maintenance_window_label_for_major_production_changes() -> None:
    changed = [MIGRATION, "docs/adr/0007.md"]
    without = gate(APPROVED, findings=[DROP_TABLE], changed_files=changed)
    assert item(without, MAINTENANCE_WINDOW).ok is False
    assert "maintenance-window" in item(without, MAINTENANCE_WINDOW).detail
    labelled = gate(
        APPROVED, findings=[DROP_TABLE], changed_files=changed, labels=["Maintenance-Window"]
    )
    assert item(labelled, MAINTENANCE_WINDOW).ok is True
    staging = gate(
        [review("alice")], findings=[DROP_TABLE], changed_files=changed, environment="staging"
    )
    assert item(staging, MAINTENANCE_WINDOW).ok is None
    assert staging.conclusion == "success"


@pytest.mark.parametrize(
    ("environment", "backup", "ok", "detail"),
    [
        (
            "production",
            FRESH_BACKUP,
            True,
            "last backup 3 h ago (limit 24 h); last tested restore 6 d ago (pgBackRest)",
        ),
        (
            "production",
            BackupStatus(NOW - timedelta(hours=30), None, "WAL-G"),
            False,
            "last backup 30 h ago (limit 24 h); last tested restore unknown (WAL-G)",
        ),
        (
            "production",
            None,
            False,
            "no backup status source configured: the bot's operator sets one up",
        ),
        (
            "production",
            BackupUnavailable("the backup status command `pgbackrest` exited with status 1"),
            False,
            "the backup status command `pgbackrest` exited with status 1",
        ),
        (
            "production",
            BackupStatus(None, None, "WAL-G"),
            False,
            "no backup found; last tested restore unknown (WAL-G)",
        ),
        (
            "staging",
            BackupStatus(NOW - timedelta(hours=30), None, "WAL-G"),
            None,
            "recommended in staging, not required: last backup 30 h ago (limit 24 h); "
            "last tested restore unknown (WAL-G)",
        ),
        (
            "staging",
            None,
            None,
            "recommended in staging, not required: "
            "no backup status source configured: the bot's operator sets one up",
        ),
        ("ci", None, None, "not required in ci"),
    ],
)
def test_backup_age(
    environment: str, backup: BackupStatus | BackupUnavailable | None, ok: bool, detail: str
) -> None:
    verdict = gate([review("alice"), review("bob")], environment=environment, backup=backup)
    assert (item(verdict, BACKUP).ok, item(verdict, BACKUP).detail) == (ok, detail)
    assert (verdict.conclusion == "success") is (ok is not False)


def test_backup_limit_from_the_policy() -> None:
    policy = parse_policy(
        POLICY_TEXT + "environments:\n  production:\n    backup_max_age: 2h\n", "p.yml"
    )
    verdict = gate(APPROVED, policy=policy)
    assert item(verdict, BACKUP).ok is False
    assert item(verdict, BACKUP).detail.startswith("last backup 3 h ago (limit 2 h)")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (600, "10 min"),
        (3 * 3600, "3 h"),
        (24.5 * 3600, "24 h 30 min"),
        (50 * 3600, "2 d 2 h"),
        (-5, "0 s"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
