"""The checklist's environment matrix, and how a policy file changes it.

Pure functions: a `Policy` (parsed by `bot.policy.config`) and an environment name
in, severities / roles / environments out. No I/O. The matrix's vocabulary (environments,
levels, roles, default rule lists) is `bot.policy.checklist`, which the model uses too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase

from bot.analysis.durations import parse_duration_ms
from bot.analysis.model import Family, Finding, RuleInfo, Severity
from bot.errors import UserError
from bot.policy.checklist import (
    ENVIRONMENTS,
    ROLE_ORDER,
    Backup,
    EnvName,
    Level,
)
from bot.policy.model import Policy


@dataclass(frozen=True)
class EnvironmentSettings:
    """One column of the matrix, after the policy file's overrides."""

    name: EnvName
    timeouts: Level  # severity of a missing lock/statement timeout
    approvals: dict[str, int] = field(default_factory=dict)  # role -> count, matrix order
    backup: Backup = "not-required"
    backup_max_age: str = "24h"
    maintenance_window: bool = False  # major changes need the maintenance-window label

    @property
    def timeout_severity(self) -> Severity | None:
        return level_severity(self.timeouts)

    @property
    def backup_max_age_ms(self) -> float:
        return _duration_ms(self.backup_max_age)

    @property
    def needs_approval(self) -> bool:
        return bool(self.approvals)


DEFAULT_MATRIX: dict[EnvName, EnvironmentSettings] = {
    "local": EnvironmentSettings("local", timeouts="notice"),
    "ci": EnvironmentSettings("ci", timeouts="warning"),
    "staging": EnvironmentSettings(
        "staging", timeouts="error", approvals={"backend-lead": 1}, backup="recommended"
    ),
    "production": EnvironmentSettings(
        "production",
        timeouts="error",
        approvals={"backend-lead": 1, "product-owner": 1},
        backup="mandatory",
        maintenance_window=True,
    ),
}


def level_severity(level: Level) -> Severity | None:
    """`off` -> None, otherwise the Severity of the same name."""
    return None if level == "off" else Severity(level)


def check_environment(name: str) -> EnvName:
    """The name as an environment, or UserError (for `--env` and the like)."""
    for env in ENVIRONMENTS:
        if env == name:
            return env
    raise UserError(f"unknown environment {name!r} (must be one of {', '.join(ENVIRONMENTS)})")


def effective_environment(policy: Policy, env: str) -> EnvironmentSettings:
    """The matrix column for `env` with the file's `environments.<env>` applied.

    `approvals` merges role by role over the matrix; a count of 0 removes a role.
    """
    name = check_environment(env)
    base = DEFAULT_MATRIX[name]
    override = getattr(policy.environments, name)
    approvals = {**base.approvals, **(override.approvals or {})}
    return EnvironmentSettings(
        name=name,
        timeouts=override.timeouts or base.timeouts,
        approvals=_in_role_order({role: n for role, n in approvals.items() if n > 0}),
        backup=override.backup or base.backup,
        backup_max_age=override.backup_max_age or base.backup_max_age,
        maintenance_window=(
            base.maintenance_window
            if override.maintenance_window is None
            else override.maintenance_window
        ),
    )


def severity_for(policy: Policy, env: str, rule: RuleInfo) -> Severity | None:
    """The severity of `rule`'s findings in `env`; None when the rule is off.

    Order: the file's `rules:` entry; else the environment's timeout level for
    TIMEOUT rules; else for DESTRUCTIVE rules `error` where the environment asks
    for approvals of destructive changes (the checklist's procedure applies there,
    e.g. destructive-undocumented) and `warning` where it does not; else the
    rule's default.
    """
    override = policy.rules.get(rule.id)
    if override is not None:
        return level_severity(override)
    if rule.family is Family.TIMEOUT:
        return effective_environment(policy, env).timeout_severity
    if rule.family is Family.DESTRUCTIVE:
        needs_approvals = bool(effective_environment(policy, env).approvals)
        return Severity.ERROR if needs_approvals else Severity.WARNING
    return rule.default_severity


def approval_roles(policy: Policy, env: str, rule_id: str) -> list[str]:
    """Roles whose approval a finding of `rule_id` needs in `env`, in matrix order.

    Empty when the rule does not need approval, the environment asks for none,
    or the file switched the rule off.
    """
    if rule_id not in policy.approval_rule_ids or policy.rules.get(rule_id) == "off":
        return []
    return list(effective_environment(policy, env).approvals)


def required_approvals(policy: Policy, env: str, rule_id: str) -> dict[str, int]:
    """Like `approval_roles`, with the number of approvals each role needs."""
    roles = approval_roles(policy, env, rule_id)
    counts = effective_environment(policy, env).approvals
    return {role: counts[role] for role in roles}


def adr_required(policy: Policy, rule_id: str) -> bool:
    """A finding of `rule_id` is "significant": the PR must add or link an ADR."""
    return rule_id in policy.adr.required_for


def maintenance_window_required(policy: Policy, env: str, rule_id: str) -> bool:
    """A finding of `rule_id` is a major change needing the maintenance-window label in `env`."""
    if rule_id not in policy.maintenance_window.required_for:
        return False
    return effective_environment(policy, env).maintenance_window


def environment_for_branch(policy: Policy, branch: str) -> EnvName:
    """The environment a base branch deploys to.

    An exact `branches:` key wins; then the first pattern (fnmatch, case-sensitive)
    in file order; else `default_environment`. `refs/heads/` is ignored.
    """
    matched = branch_mapping(policy, branch)
    return matched[1] if matched else policy.default_environment


def branch_mapping(policy: Policy, branch: str) -> tuple[str, EnvName] | None:
    """The `branches:` entry (key, environment) that maps `branch`; None when none does."""
    name = branch.removeprefix("refs/heads/")
    exact = policy.branches.get(name)
    if exact is not None:
        return name, exact
    for pattern, env in policy.branches.items():
        if fnmatchcase(name, pattern):
            return pattern, env
    return None


def timeout_limits_ms(policy: Policy) -> tuple[float, float]:
    """(lock_timeout, statement_timeout) maxima in milliseconds."""
    limits = policy.timeouts
    return _duration_ms(limits.lock_timeout), _duration_ms(limits.statement_timeout)


def _in_role_order(approvals: dict[str, int]) -> dict[str, int]:
    def rank(role: str) -> int:
        return ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)

    return {role: approvals[role] for role in sorted(approvals, key=rank)}  # stable sort


def _duration_ms(value: str) -> float:
    ms = parse_duration_ms(value)
    if ms is None:  # the loader validated it; reaching this is a bug, not user input
        raise ValueError(f"not a duration: {value!r}")
    return ms


def apply_policy(
    findings: Iterable[Finding],
    policy: Policy,
    environment: str,
    rules: Mapping[str, RuleInfo],
) -> list[Finding]:
    """The environment matrix and the policy file decide each finding's severity and the
    approvals it needs; a rule switched off drops its findings. One step for `migsafe check`
    and `migsafe lint` alike."""
    kept = []
    for finding in findings:
        severity = severity_for(policy, environment, rules[finding.rule])
        if severity is not None:
            roles = approval_roles(policy, environment, finding.rule)
            kept.append(replace(finding, severity=severity, approval_roles=roles))
    return kept
