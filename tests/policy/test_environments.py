"""The environment matrix: defaults = the checklist, the file's overrides, branch mapping."""

from __future__ import annotations

import pytest

from bot.analysis.model import Family, RuleInfo, Severity
from bot.errors import UserError
from bot.policy.config import Policy, parse_policy
from bot.policy.environments import (
    DEFAULT_MATRIX,
    ENVIRONMENTS,
    adr_required,
    approval_roles,
    check_environment,
    effective_environment,
    environment_for_branch,
    maintenance_window_required,
    required_approvals,
    severity_for,
    timeout_limits_ms,
)


def rule(rule_id: str, family: Family, default: Severity = Severity.WARNING) -> RuleInfo:
    return RuleInfo(rule_id, family, default, summary="s", explanation="e")


DROP_COLUMN = rule("drop-column", Family.DESTRUCTIVE)
TRUNCATE = rule("truncate-table", Family.DESTRUCTIVE)
LOCK_TIMEOUT = rule("missing-lock-timeout", Family.TIMEOUT)
STATEMENT_TIMEOUT = rule("missing-statement-timeout", Family.TIMEOUT)
RENAME_COLUMN = rule("rename-column", Family.COMPATIBILITY, Severity.WARNING)
CREATE_INDEX = rule("create-index-non-concurrently", Family.LOCKING, Severity.ERROR)


def policy(text: str) -> Policy:
    return parse_policy(text, ".github/migsafe.yml")


DEFAULT = Policy.default()

# The checklist's matrix, one row per environment.
MATRIX = [
    # env, timeouts, destructive severity, approval roles, backup, maintenance window
    ("local", Severity.NOTICE, Severity.WARNING, [], "not-required", False),
    ("ci", Severity.WARNING, Severity.WARNING, [], "not-required", False),
    ("staging", Severity.ERROR, Severity.ERROR, ["backend-lead"], "recommended", False),
    (
        "production",
        Severity.ERROR,
        Severity.ERROR,
        ["backend-lead", "product-owner"],
        "mandatory",
        True,
    ),
]


@pytest.mark.parametrize(
    ("env", "timeouts", "destructive", "roles", "backup", "window"),
    MATRIX,
)
def test_default_matrix_is_the_checklist(
    env: str,
    timeouts: Severity,
    destructive: Severity,
    roles: list[str],
    backup: str,
    window: bool,
) -> None:
    assert severity_for(DEFAULT, env, LOCK_TIMEOUT) is timeouts
    assert severity_for(DEFAULT, env, STATEMENT_TIMEOUT) is timeouts
    assert severity_for(DEFAULT, env, DROP_COLUMN) is destructive
    assert approval_roles(DEFAULT, env, "drop-column") == roles
    assert required_approvals(DEFAULT, env, "drop-column") == dict.fromkeys(roles, 1)
    settings = effective_environment(DEFAULT, env)
    assert settings.backup == backup
    assert settings.backup_max_age_ms == 24 * 3_600_000
    assert settings.maintenance_window is window
    assert maintenance_window_required(DEFAULT, env, "drop-table") is window


def test_matrix_covers_every_environment_in_order() -> None:
    assert ENVIRONMENTS == ("local", "ci", "staging", "production")
    assert tuple(DEFAULT_MATRIX) == ENVIRONMENTS
    assert [row[0] for row in MATRIX] == list(ENVIRONMENTS)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_other_rules_keep_their_default_severity(env: str) -> None:
    assert severity_for(DEFAULT, env, RENAME_COLUMN) is Severity.WARNING
    assert severity_for(DEFAULT, env, CREATE_INDEX) is Severity.ERROR
    assert approval_roles(DEFAULT, env, "rename-column") == []


@pytest.mark.parametrize(
    "rule_id",
    [
        "drop-table",
        "drop-column",
        "drop-index",
        "alter-column-type",
        "truncate-table",
        "undeclared-change",
    ],
)
def test_every_checklist_destructive_change_needs_production_approval(rule_id: str) -> None:
    assert approval_roles(DEFAULT, "production", rule_id) == ["backend-lead", "product-owner"]


def test_rules_override_wins_over_the_matrix() -> None:
    custom = policy(
        "rules:\n"
        "  rename-column: error\n"
        "  missing-lock-timeout: notice\n"
        "  drop-column: warning\n"
        "  create-index-non-concurrently: off\n"
    )
    assert severity_for(custom, "local", RENAME_COLUMN) is Severity.ERROR
    assert severity_for(custom, "production", LOCK_TIMEOUT) is Severity.NOTICE
    assert severity_for(custom, "production", STATEMENT_TIMEOUT) is Severity.ERROR
    assert severity_for(custom, "production", DROP_COLUMN) is Severity.WARNING
    assert severity_for(custom, "ci", CREATE_INDEX) is None
    # A severity change keeps the approval; only `off` removes it.
    assert approval_roles(custom, "production", "drop-column") == ["backend-lead", "product-owner"]


def test_rule_off_needs_no_approval() -> None:
    custom = policy("rules:\n  drop-column: off\n")
    assert severity_for(custom, "production", DROP_COLUMN) is None
    assert approval_roles(custom, "production", "drop-column") == []
    assert approval_roles(custom, "production", "drop-table") == ["backend-lead", "product-owner"]


def test_environment_timeouts_override() -> None:
    custom = policy("environments:\n  ci: {timeouts: error}\n  local: {timeouts: off}\n")
    assert severity_for(custom, "ci", LOCK_TIMEOUT) is Severity.ERROR
    assert severity_for(custom, "local", LOCK_TIMEOUT) is None
    assert severity_for(custom, "staging", LOCK_TIMEOUT) is Severity.ERROR  # untouched


def test_approvals_merge_role_by_role() -> None:
    custom = policy(
        "roles:\n  dba: my-org/dbas\n"
        "environments:\n  production:\n    approvals: {dba: 1, backend-lead: 2}\n"
    )
    assert required_approvals(custom, "production", "drop-table") == {
        "backend-lead": 2,
        "product-owner": 1,
        "dba": 1,
    }
    assert approval_roles(custom, "production", "drop-table") == [
        "backend-lead",
        "product-owner",
        "dba",
    ]


def test_matrix_order_even_when_written_in_another_order() -> None:
    custom = policy("environments:\n  ci:\n    approvals: {product-owner: 1, backend-lead: 1}\n")
    assert approval_roles(custom, "ci", "drop-table") == ["backend-lead", "product-owner"]
    assert severity_for(custom, "ci", DROP_COLUMN) is Severity.ERROR


def test_count_zero_removes_a_role_and_no_role_left_means_warning() -> None:
    custom = policy("environments:\n  staging:\n    approvals: {backend-lead: 0}\n")
    assert approval_roles(custom, "staging", "drop-column") == []
    assert effective_environment(custom, "staging").needs_approval is False
    assert severity_for(custom, "staging", DROP_COLUMN) is Severity.WARNING


def test_approval_rules_added_by_the_file() -> None:
    custom = policy("approval:\n  rules: [rename-column]\n")
    assert approval_roles(custom, "staging", "rename-column") == ["backend-lead"]
    assert approval_roles(custom, "ci", "rename-column") == []
    # Not destructive: its severity is still its own.
    assert severity_for(custom, "staging", RENAME_COLUMN) is Severity.WARNING


def test_backup_and_window_overrides() -> None:
    custom = policy(
        "environments:\n"
        "  staging: {backup: mandatory, backup_max_age: 12h, maintenance_window: true}\n"
        "  production: {maintenance_window: false}\n"
    )
    staging = effective_environment(custom, "staging")
    assert (staging.backup, staging.backup_max_age_ms) == ("mandatory", 12 * 3_600_000)
    assert maintenance_window_required(custom, "staging", "drop-table") is True
    assert maintenance_window_required(custom, "production", "drop-table") is False


def test_maintenance_window_only_for_major_changes() -> None:
    assert maintenance_window_required(DEFAULT, "production", "alter-column-type") is True
    assert maintenance_window_required(DEFAULT, "production", "drop-column") is False
    custom = policy("maintenance_window:\n  required_for: [drop-column]\n")
    assert maintenance_window_required(custom, "production", "drop-column") is True
    assert maintenance_window_required(custom, "production", "drop-table") is False


def test_adr_required_for_significant_changes() -> None:
    assert adr_required(DEFAULT, "drop-table") is True
    assert adr_required(DEFAULT, "truncate-table") is True
    assert adr_required(DEFAULT, "drop-column") is False
    assert adr_required(policy("adr:\n  required_for: []\n"), "drop-table") is False


def test_timeout_limits_default_to_the_checklist() -> None:
    assert timeout_limits_ms(DEFAULT) == (30_000.0, 300_000.0)
    custom = policy("timeouts:\n  lock_timeout: 5s\n  statement_timeout: 60000\n")
    assert timeout_limits_ms(custom) == (5_000.0, 60_000.0)


BRANCHES = policy(
    "branches:\n"
    "  main: production\n"
    "  staging: staging\n"
    "  'release/*': production\n"
    "  'release/dev-*': ci\n"
    "  'feature/*': local\n"
    "default_environment: staging\n"
)


@pytest.mark.parametrize(
    ("branch", "env"),
    [
        ("main", "production"),
        ("refs/heads/main", "production"),
        ("staging", "staging"),
        ("release/1.2", "production"),
        ("release/dev-3", "production"),  # the first matching pattern wins
        ("feature/login", "local"),
        ("Main", "staging"),  # case-sensitive: unmapped
        ("develop", "staging"),  # unmapped: default_environment
    ],
)
def test_environment_for_branch(branch: str, env: str) -> None:
    assert environment_for_branch(BRANCHES, branch) == env


def test_exact_branch_wins_over_an_earlier_pattern() -> None:
    custom = policy("branches:\n  '*': production\n  sandbox: local\n")
    assert environment_for_branch(custom, "sandbox") == "local"
    assert environment_for_branch(custom, "main") == "production"


def test_without_a_file_every_branch_is_ci() -> None:
    assert environment_for_branch(DEFAULT, "main") == "ci"


def test_unknown_environment_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"unknown environment 'prod' \(must be one of local"):
        check_environment("prod")
    with pytest.raises(UserError):
        severity_for(DEFAULT, "prod", DROP_COLUMN)
    assert check_environment("staging") == "staging"
