"""The checklist's vocabulary: environments, severity levels, backup levels, roles, and the
rules whose findings need approval, an ADR or a maintenance window by default.

The lowest module of `bot.policy`: the policy file's model (`bot.policy.model`) takes its
defaults and allowed values from here, and the matrix (`bot.policy.environments`) applies
a parsed policy to them.
"""

from __future__ import annotations

from typing import Literal, get_args

from bot.analysis.registry import adr_rule_ids, approval_rule_ids, window_rule_ids

EnvName = Literal["local", "ci", "staging", "production"]
ENVIRONMENTS: tuple[EnvName, ...] = get_args(EnvName)

Level = Literal["off", "notice", "warning", "error"]
LEVELS: tuple[Level, ...] = get_args(Level)

Backup = Literal["not-required", "recommended", "mandatory"]
BACKUPS: tuple[Backup, ...] = get_args(Backup)

# Roles the checklist names; approvals are listed in this order, other roles after.
ROLE_ORDER = ("backend-lead", "product-owner")
CHECKLIST_ROLES = ("backend-lead", "product-owner", "devops-lead")

# The checklist's defaults, as the rules declare them (`Rule.needs_approval` and the
# like): findings that always need approval where the environment asks for it (the
# destructive changes, plus the sandbox's undeclared schema change), an ADR, a window.
APPROVAL_RULE_IDS = approval_rule_ids()
ADR_RULE_IDS = adr_rule_ids()
MAINTENANCE_WINDOW_RULE_IDS = window_rule_ids()
