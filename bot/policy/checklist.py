"""The checklist's vocabulary: environments, severity levels, backup levels, roles, and the
rules whose findings need approval, an ADR or a maintenance window by default.

The lowest module of `bot.policy`: the policy file's model (`bot.policy.model`) takes its
defaults and allowed values from here, and the matrix (`bot.policy.environments`) applies
a parsed policy to them.
"""

from __future__ import annotations

from typing import Literal, get_args

from bot.analysis.rules.destructive import DESTRUCTIVE_RULE_IDS

EnvName = Literal["local", "ci", "staging", "production"]
ENVIRONMENTS: tuple[EnvName, ...] = get_args(EnvName)

Level = Literal["off", "notice", "warning", "error"]
LEVELS: tuple[Level, ...] = get_args(Level)

Backup = Literal["not-required", "recommended", "mandatory"]
BACKUPS: tuple[Backup, ...] = get_args(Backup)

# Roles the checklist names; approvals are listed in this order, other roles after.
ROLE_ORDER = ("backend-lead", "product-owner")
CHECKLIST_ROLES = ("backend-lead", "product-owner", "devops-lead")

# Findings that always need approval where the environment asks for it (the
# checklist's destructive changes, plus the sandbox's undeclared schema change).
APPROVAL_RULE_IDS = (*DESTRUCTIVE_RULE_IDS, "undeclared-change")
ADR_RULE_IDS = ("drop-table", "truncate-table")
MAINTENANCE_WINDOW_RULE_IDS = ("drop-table", "truncate-table", "alter-column-type")
