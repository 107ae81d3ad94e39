"""The merge gate's evaluation: reviews, team memberships and findings in, a verdict out.

Pure: the caller fetches the reviews, the memberships (for the users `membership_checks`
names), the approval fingerprints, the findings of the head commit and the backup
status; this module decides. The rules (issue 5, "Counting approvals"):

- each user's latest review state counts: COMMENTED does not change it, DISMISSED
  clears it, pending (draft) reviews are not submitted and do not count;
- the pull request's author and accounts that are not users (bots) never count;
- an approval counts only if the approval fingerprint at its commit equals the current
  one: the revisions, env.py, script.py.mako, alembic.ini, the setup's requirement files
  and the repository modules they import (`bot.migrations.inputs`); an unknown commit is
  stale, what it ran was never analysed;
- a CHANGES_REQUESTED from an active member of a mapped team blocks until that member
  approves or the review is dismissed;
- one person in two mapped teams satisfies both roles unless `distinct_approvers`;
- only active memberships count (the caller maps `pending` to False).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bot.analysis.model import Finding
from bot.policy.backup import BackupStatus, BackupUnavailable
from bot.policy.config import Policy
from bot.policy.environments import (
    EnvironmentSettings,
    effective_environment,
    required_approvals,
)
from bot.policy.procedure import ProcedureItem, Reason, checklist_procedure

ReviewState = Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"]
Conclusion = Literal["success", "action_required"]
CHECK_NAME_PREFIX = "migsafe/approvals"

IsMember = Callable[[str, str], bool]


@dataclass(frozen=True)
class Review:
    """A pull request review as GitHub reports it (`user.login`, `user.type`, ...)."""

    user: str
    user_type: str  # "User" counts; "Bot" (and "Organization", "Mannequin") never does
    state: ReviewState
    commit_id: str
    submitted_at: datetime | None  # None for a pending (draft) review
    id: int


@dataclass(frozen=True)
class RoleStatus:
    role: str
    team: str | None  # None: the policy file maps no team to the role
    required: int
    approved_by: list[str]  # logins, in the order they approved
    missing: int
    why: list[Reason]  # the findings that need this role
    notes: list[str] = field(default_factory=list)  # e.g. an approver already used elsewhere


@dataclass(frozen=True)
class BlockingReview:
    user: str
    teams: list[str]  # the mapped teams the reviewer is an active member of
    commit_id: str
    submitted_at: datetime | None


@dataclass(frozen=True)
class StaleApproval:
    user: str
    commit_id: str
    reason: str


@dataclass(frozen=True)
class IgnoredApproval:
    user: str
    reason: str


@dataclass(frozen=True)
class GateVerdict:
    conclusion: Conclusion
    environment: str
    roles: list[RoleStatus]
    blocking_reviews: list[BlockingReview]
    stale_approvals: list[StaleApproval]
    procedure: list[ProcedureItem]
    ignored_approvals: list[IgnoredApproval] = field(default_factory=list)
    distinct_approvers: bool = False
    changes_migrations: bool = True

    @property
    def approval_needed(self) -> bool:
        return bool(self.roles)

    @property
    def missing_roles(self) -> list[RoleStatus]:
        return [role for role in self.roles if role.missing > 0]

    @property
    def failed_procedure(self) -> list[ProcedureItem]:
        return [item for item in self.procedure if item.ok is False]


def check_name(base_branch: str) -> str:
    """The gate's check-run name; it carries the base branch, so that an approval computed
    for one base can never satisfy branch protection on another."""
    return f"{CHECK_NAME_PREFIX} ({base_branch.removeprefix('refs/heads/')})"


def latest_reviews(reviews: Iterable[Review]) -> dict[str, Review]:
    """Each user's review that sets their state (key: lower-cased login).

    COMMENTED and pending reviews leave the state as it was; DISMISSED clears it.
    """
    ordered = sorted(
        (r for r in reviews if r.state != "PENDING" and r.submitted_at is not None),
        key=lambda r: (r.submitted_at, r.id),
    )
    latest: dict[str, Review] = {}
    for review in ordered:
        key = review.user.casefold()
        if review.state == "DISMISSED":
            latest.pop(key, None)
        elif review.state != "COMMENTED":
            latest[key] = review
    return latest


def membership_checks(
    reviews: Iterable[Review], author: str, policy: Policy
) -> set[tuple[str, str]]:
    """The (team, login) pairs the caller must look up: every mapped team, for every human
    reviewer (not the author) whose latest state is an approval or a change request."""
    teams = set(policy.roles.values())
    users = [r.user for r in latest_reviews(reviews).values() if _counts(r, author)]
    return {(team, user) for team in teams for user in users}


def evaluate_gate(
    *,
    reviews: Sequence[Review],
    author: str,
    memberships: Mapping[tuple[str, str], bool],
    fingerprints: Mapping[str, str],
    current_fingerprint: str,
    findings: Sequence[Finding],
    policy: Policy,
    environment: str,
    changes_migrations: bool,
    labels: Collection[str] = (),
    changed_files: Collection[str] = (),
    pr_body: str = "",
    backup: BackupStatus | BackupUnavailable | None = None,
    now: datetime,
) -> GateVerdict:
    """The gate's verdict for a pull request whose base branch deploys to `environment`.

    `memberships[(team, login)]` is True only for an active member (missing: not a member).
    `fingerprints` maps analysed commits to their approval fingerprint. `changes_migrations`
    says whether the pull request changes any migration file: without, nothing is required.
    `backup` is None when the operator configured no backup status source.
    """
    settings = effective_environment(policy, environment)
    if not changes_migrations:
        return _nothing_to_approve(settings)
    is_member = _membership_lookup(memberships)
    latest = [r for r in latest_reviews(reviews).values() if _counts(r, author)]
    approvals = [r for r in latest if r.state == "APPROVED"]
    fresh, stale = _split_stale(approvals, fingerprints, current_fingerprint)
    required, why = _required_roles(policy, settings.name, findings)
    teams = {role: policy.team_for(role) for role in required}
    eligible = {
        role: [r.user for r in fresh if team is not None and is_member(team, r.user)]
        for role, team in teams.items()
    }
    if policy.approval.distinct_approvers:
        approved_by, notes = _assign_distinct(required, eligible)
    else:
        approved_by, notes = eligible, {role: [] for role in required}
    roles = [
        RoleStatus(
            role=role,
            team=teams[role],
            required=count,
            approved_by=approved_by[role],
            missing=max(0, count - len(approved_by[role])),
            why=why[role],
            notes=notes[role],
        )
        for role, count in required.items()
    ]
    blocking = _blocking_reviews(latest, policy, is_member) if required else []
    procedure = checklist_procedure(
        policy, settings, findings, labels, changed_files, pr_body, backup, now
    )
    return GateVerdict(
        conclusion=_conclusion(roles, blocking, procedure),
        environment=settings.name,
        roles=roles,
        blocking_reviews=blocking,
        stale_approvals=stale,
        procedure=procedure,
        ignored_approvals=_ignored(reviews, author, fresh, eligible) if required else [],
        distinct_approvers=policy.approval.distinct_approvers,
    )


# --- counting ---


def _counts(review: Review, author: str) -> bool:
    """Authors and non-human accounts never count."""
    is_bot = review.user_type != "User" or review.user.endswith("[bot]")
    return not is_bot and review.user.casefold() != author.casefold()


def _membership_lookup(memberships: Mapping[tuple[str, str], bool]) -> IsMember:
    # GitHub logins and organisation names are case-insensitive.
    active = {(t.casefold(), u.casefold()) for (t, u), member in memberships.items() if member}

    def is_member(team: str, user: str) -> bool:
        return (team.casefold(), user.casefold()) in active

    return is_member


def _split_stale(
    approvals: list[Review], fingerprints: Mapping[str, str], current: str
) -> tuple[list[Review], list[StaleApproval]]:
    fresh: list[Review] = []
    stale: list[StaleApproval] = []
    for review in approvals:
        seen = fingerprints.get(review.commit_id)
        if seen == current:
            fresh.append(review)
        elif seen is None:
            reason = "migsafe never analysed that commit, so what it approved is unknown"
            stale.append(StaleApproval(review.user, review.commit_id, reason))
        else:
            reason = "the migrations or what they run changed since"
            stale.append(StaleApproval(review.user, review.commit_id, reason))
    return fresh, stale


def _approvals_of(
    policy: Policy, environment: str, finding: Finding
) -> Iterator[tuple[str, str, int]]:
    """(rule, role, approvals) for the finding's rule and each observation folded into it."""
    for rule in finding.rules:
        for role, count in required_approvals(policy, environment, rule).items():
            yield rule, role, count


def _required_roles(
    policy: Policy, environment: str, findings: Sequence[Finding]
) -> tuple[dict[str, int], dict[str, list[Reason]]]:
    """Role -> approvals needed, and the findings that need it. Suppressed findings too: a
    suppression comment in the change itself must not waive the approval."""
    required: dict[str, int] = {}
    why: dict[str, list[Reason]] = {}
    for finding in findings:
        for rule, role, count in _approvals_of(policy, environment, finding):
            required[role] = max(required.get(role, 0), count)
            reason = Reason(rule, finding.path, finding.line)
            reasons = why.setdefault(role, [])
            if reason not in reasons:
                reasons.append(reason)
    order = list(effective_environment(policy, environment).approvals)
    ordered = {role: required[role] for role in order if role in required}
    return ordered, why


def _assign_distinct(
    required: Mapping[str, int], eligible: Mapping[str, list[str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Give each role its required number of approvers, every person at most once: a
    maximum bipartite matching (augmenting paths) of people to role slots."""
    slots = [role for role, count in required.items() for _ in range(count)]
    holder: dict[str, int] = {}  # person -> slot

    def take(slot: int, tried: set[str]) -> bool:
        for person in eligible[slots[slot]]:
            if person in tried:
                continue
            tried.add(person)
            if person not in holder or take(holder[person], tried):
                holder[person] = slot
                return True
        return False

    for slot in range(len(slots)):
        take(slot, set())
    assigned: dict[str, list[str]] = {role: [] for role in required}
    for role in required:  # in approval order, as `eligible` lists them
        assigned[role] = [p for p in eligible[role] if p in holder and slots[holder[p]] == role]
    notes: dict[str, list[str]] = {role: [] for role in required}
    for role in required:
        for person in eligible[role]:
            elsewhere = slots[holder[person]] if person in holder else None
            if elsewhere is not None and elsewhere != role:
                notes[role].append(
                    f"@{person} also approved, but already counts for {elsewhere} "
                    "(each role needs a different person)"
                )
    return assigned, notes


def _blocking_reviews(
    latest: list[Review], policy: Policy, is_member: IsMember
) -> list[BlockingReview]:
    teams = list(dict.fromkeys(policy.roles.values()))
    blocking = []
    for review in latest:
        if review.state != "CHANGES_REQUESTED":
            continue
        member_of = [team for team in teams if is_member(team, review.user)]
        if member_of:
            blocking.append(
                BlockingReview(review.user, member_of, review.commit_id, review.submitted_at)
            )
    return blocking


def _ignored(
    reviews: Sequence[Review],
    author: str,
    fresh: list[Review],
    eligible: Mapping[str, list[str]],
) -> list[IgnoredApproval]:
    """Approvals that do not count, with the reason, so that nobody wonders why."""
    ignored: list[IgnoredApproval] = []
    for review in latest_reviews(reviews).values():
        if review.state != "APPROVED":
            continue
        if review.user_type != "User" or review.user.endswith("[bot]"):
            ignored.append(IgnoredApproval(review.user, "a bot account"))
        elif review.user.casefold() == author.casefold():
            ignored.append(IgnoredApproval(review.user, "the pull request's author"))
    counted = {user for users in eligible.values() for user in users}
    for review in fresh:
        if review.user not in counted:
            reason = "not an active member of a team whose approval this change needs"
            ignored.append(IgnoredApproval(review.user, reason))
    return ignored


def _conclusion(
    roles: list[RoleStatus], blocking: list[BlockingReview], procedure: list[ProcedureItem]
) -> Conclusion:
    done = all(role.missing == 0 for role in roles)
    if done and not blocking and all(item.ok is not False for item in procedure):
        return "success"
    return "action_required"


def _nothing_to_approve(settings: EnvironmentSettings) -> GateVerdict:
    return GateVerdict(
        conclusion="success",
        environment=settings.name,
        roles=[],
        blocking_reviews=[],
        stale_approvals=[],
        procedure=[],
        changes_migrations=False,
    )
