"""The policy file's model: one pydantic model per section, and `Policy`, the whole file.

Over 400 lines: each field carries the description the published JSON Schema shows.

Every key is optional; the defaults are the Migration Safety Checklist (`bot.policy.checklist`).
Models forbid unknown keys so that a typo is an error, not a silently ignored setting. The
field descriptions are the published JSON Schema's (`bot.policy.schema`).

Rule ids are checked in a separate step, `Policy.check_rule_ids(known)` (or by passing
`known_rule_ids=` to the loaders of `bot.policy.config`): the caller knows the rule catalog.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import PurePosixPath
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from bot.errors import UserError
from bot.policy.checklist import (
    ADR_RULE_IDS,
    APPROVAL_RULE_IDS,
    CHECKLIST_ROLES,
    ENVIRONMENTS,
    MAINTENANCE_WINDOW_RULE_IDS,
    Backup,
    EnvName,
    Level,
)
from bot.policy.fields import (
    TEMPLATE_KEYS,
    ApprovalCount,
    BranchPattern,
    ByteSize,
    CustomSetting,
    Duration,
    EnvValue,
    EnvVarName,
    Identifier,
    IniSection,
    Label,
    NonEmpty,
    PostgresVersion,
    RepoPath,
    RevisionId,
    RoleName,
    RuleId,
    TeamRef,
    XArgument,
    did_you_mean,
    parse_size_bytes,
    show_value,
    template_keys,
)


class StrictModel(BaseModel):
    """Unknown keys are errors; parsed policies are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    unknown_key_noun: ClassVar[str] = "key"


class AlembicSettings(StrictModel):
    """Where the Alembic project is. Without this section migsafe looks for `alembic.ini`."""

    config: RepoPath | None = Field(
        default=None,
        description="Path of `alembic.ini`, relative to the repository root.",
        examples=["alembic.ini", "backend/alembic.ini"],
    )
    script_location: RepoPath | None = Field(
        default=None,
        description=(
            "The Alembic script directory (the one holding `env.py` and `versions/`), "
            "relative to the repository root. Enough on its own: no ini file is then needed. "
            "With `config` as well, it takes precedence over the ini's `script_location`."
        ),
        examples=["migrations", "backend/alembic"],
    )
    ini_section: IniSection = Field(
        default="alembic",
        description=(
            "The section of the ini file Alembic reads, as `alembic -n NAME` (for a file "
            "holding several databases' settings). Default `alembic`."
        ),
        examples=["alembic", "tenants"],
    )
    x_arguments: list[XArgument] = Field(
        default=[],
        description=(
            "Arguments passed as `alembic -x ARG`, which env.py reads with "
            "`context.get_x_argument()` (`KEY=VALUE` for `as_dictionary=True`); the same in "
            "the dry-run and the sandbox."
        ),
        examples=[["tenant=acme", "data=false"]],
    )
    base_revision: RevisionId | None = Field(
        default=None,
        description=(
            "The revision already deployed: without `--from` / `--base` / `--all`, "
            "`migsafe check` judges the revisions after it. Quote it "
            '("0002"): YAML reads 0002 as a number. Default: inside git, the revisions since '
            "the merge-base with the default branch; outside git, the latest of each head."
        ),
        examples=["0002", "ae1027a6acf"],
    )

    @field_validator("base_revision", mode="before")
    @classmethod
    def _quoted_revision(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f'must be a string: quote it, e.g. "{value}" (got {value!r})')
        return value


class EnvironmentOverride(StrictModel):
    """Changes to one column of the environment matrix; unset keys keep the matrix value."""

    approvals: dict[RoleName, ApprovalCount] | None = Field(
        default=None,
        description=(
            "Role -> number of approvals destructive changes need, merged role by role over "
            "the matrix (staging: backend-lead 1; production: backend-lead 1 + product-owner 1; "
            "local and ci: none). A count of 0 removes a role."
        ),
        examples=[{"backend-lead": 2, "product-owner": 1}],
    )
    timeouts: Level | None = Field(
        default=None,
        description=(
            "Severity of a lock-taking statement without `lock_timeout` / `statement_timeout` "
            "(rules missing-lock-timeout, missing-statement-timeout). Matrix: local notice, "
            "ci warning, staging error, production error."
        ),
    )
    backup: Backup | None = Field(
        default=None,
        description=(
            "Whether a recent backup must exist before migrating. Matrix: local and ci "
            "not-required, staging recommended, production mandatory."
        ),
    )
    backup_max_age: Duration | None = Field(
        default=None,
        description="Maximum age of the last backup when one is needed. Default 24h.",
        examples=["24h", "6h"],
    )
    maintenance_window: bool | None = Field(
        default=None,
        description=(
            "Whether major changes (see `maintenance_window.required_for`) need the "
            "maintenance-window label on the pull request. Matrix: production only."
        ),
    )


class EnvironmentOverrides(StrictModel):
    """Overrides of the environment matrix, per environment."""

    unknown_key_noun: ClassVar[str] = "environment"

    local: EnvironmentOverride = Field(
        default_factory=EnvironmentOverride,
        description="A developer's machine. Matrix: timeouts notice, no approval, no backup.",
    )
    ci: EnvironmentOverride = Field(
        default_factory=EnvironmentOverride,
        description="Automated test runs. Matrix: timeouts warning, no approval, no backup.",
    )
    staging: EnvironmentOverride = Field(
        default_factory=EnvironmentOverride,
        description=(
            "Matrix: timeouts error, backend-lead approval for destructive changes, "
            "backup recommended."
        ),
    )
    production: EnvironmentOverride = Field(
        default_factory=EnvironmentOverride,
        description=(
            "Matrix: timeouts error, backend-lead + product-owner approval for destructive "
            "changes, backup mandatory (24h), maintenance window for major changes."
        ),
    )


class TimeoutLimits(StrictModel):
    """The largest timeouts a migration may set (a longer one counts as missing)."""

    lock_timeout: Duration = Field(
        default="30s", description="Maximum allowed `lock_timeout` (PostgreSQL duration syntax)."
    )
    statement_timeout: Duration = Field(
        default="5min",
        description="Maximum allowed `statement_timeout` (PostgreSQL duration syntax).",
    )


class ApprovalSettings(StrictModel):
    """Which findings need approval by the environment's roles."""

    rules: list[RuleId] = Field(
        default=list(APPROVAL_RULE_IDS),
        description=(
            "Rule ids whose findings need approval. The checklist's destructive changes "
            "(drop-table, drop-column, drop-index, alter-column-type, truncate-table), "
            "drop-schema (its CASCADE drops tables) and undeclared-change always do; ids "
            "listed here are added to them."
        ),
    )
    distinct_approvers: bool = Field(
        default=False,
        description=(
            "When true, each required role must be satisfied by a different person; "
            "otherwise one member of two mapped teams can approve for both roles."
        ),
    )


class AdrSettings(StrictModel):
    """Architecture Decision Records for significant changes."""

    required_for: list[RuleId] = Field(
        default=list(ADR_RULE_IDS),
        description=(
            "Rule ids whose findings are significant: the pull request must add or link an "
            "ADR. Replaces the default list; [] switches the requirement off."
        ),
    )
    path: RepoPath = Field(
        default="docs/adr/*.md",
        description="Glob pattern (repository-relative) of the ADR files.",
    )


class MaintenanceWindowSettings(StrictModel):
    """The maintenance-window requirement for major changes (where the environment asks)."""

    label: Label = Field(
        default="maintenance-window",
        description="Pull request label that confirms the migration is scheduled in a window.",
    )
    required_for: list[RuleId] = Field(
        default=list(MAINTENANCE_WINDOW_RULE_IDS),
        description=(
            "Rule ids whose findings are major changes. Replaces the default list; [] "
            "switches the requirement off."
        ),
    )


class SandboxSettings(StrictModel):
    """How the sandbox run prepares the repository and tests tenant isolation."""

    setup: list[NonEmpty] = Field(
        default=[],
        description=(
            "Shell commands run (inside the sandbox's limits, in the repository's virtualenv) "
            "before Alembic, e.g. to install what `env.py` imports."
        ),
        examples=[["pip install -r requirements.txt"]],
    )
    setup_network: bool = Field(
        default=False,
        description=(
            "Whether the setup commands may reach the network (package indexes). They never "
            "see migsafe's secrets either way; Alembic itself never has a network."
        ),
    )
    env: dict[EnvVarName, EnvValue] = Field(
        default={},
        description=(
            "Environment variables for env.py, in the sandbox and the dry-run alike. A value "
            "may hold the sandbox database's `{host}`, `{port}`, `{user}`, `{password}`, "
            "`{database}` or `{url}` (placeholders in the dry-run, which has no database); "
            "these win over migsafe's own DATABASE_URL and PG* variables."
        ),
        examples=[{"APP_ENV": "test", "POSTGRES_SERVER": "{host}"}],
    )
    tenant_tables: list[NonEmpty] | Literal["all"] = Field(
        default=[],
        description=(
            'Tables whose row level security and tenant isolation are tested, or "all" '
            "for every table."
        ),
        examples=[["orders"], "all"],
    )
    tenant_setting: CustomSetting = Field(
        default="app.tenant_id",
        description="The setting the RLS policies read the current tenant from.",
    )
    tenant_column: Identifier = Field(
        default="tenant_id", description="The column holding each row's tenant."
    )
    max_database_size: ByteSize = Field(
        default="1GiB",
        description=(
            "The largest the sandbox database may grow (measured after each step); beyond it "
            "the run stops with `sandbox-size-limit`. Bytes, or a number with a unit: kB, "
            "MB, GB, TB (PostgreSQL's, powers of 1024) or KiB, MiB, GiB, TiB."
        ),
        examples=["1GiB", "512MB"],
    )

    @property
    def max_database_bytes(self) -> int:
        size = parse_size_bytes(self.max_database_size)
        assert size is not None  # validated
        return size

    @field_validator("env")
    @classmethod
    def _known_templates(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            for key in template_keys(text):
                if key not in TEMPLATE_KEYS:
                    known = ", ".join(f"{{{k}}}" for k in TEMPLATE_KEYS)
                    raise ValueError(f"{name}: unknown placeholder {{{key}}} (one of {known})")
        return value

    @field_validator("tenant_tables", mode="before")
    @classmethod
    def _all_or_tables(cls, value: object) -> object:
        # Checked here so that one message comes out instead of one per union branch.
        if value == "all":
            return value
        ok = isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
        if not ok:
            raise ValueError(f'must be "all" or a list of table names (got {show_value(value)})')
        return value


class Policy(StrictModel):
    """migsafe's policy file, `.github/migsafe.yml`. Every key is optional; the defaults
    are the Migration Safety Checklist."""

    model_config = ConfigDict(title="migsafe policy (.github/migsafe.yml)")

    version: Literal[1] = Field(default=1, description="Format version of this file.")
    alembic: AlembicSettings = Field(
        default_factory=AlembicSettings, description=AlembicSettings.__doc__
    )
    migration_paths: list[RepoPath] | None = Field(
        default=None,
        description=(
            "Glob patterns (repository-relative) of the files that count as migrations for "
            '"this change touches migrations". Default: `versions/*.py` under the script '
            "location."
        ),
        examples=[["migrations/versions/*.py"]],
    )
    environment: EnvName = Field(
        default="ci",
        description=(
            "Environment of `migsafe check` when `--env` is not given and `branches` does not "
            "map its base branch."
        ),
    )
    branches: dict[BranchPattern, EnvName] = Field(
        default={},
        description=(
            "Base branch -> environment it deploys to. Keys may be fnmatch patterns "
            "(`release/*`); an exact name wins, then the first matching pattern in file order."
        ),
        examples=[{"main": "production", "staging": "staging", "release/*": "production"}],
    )
    default_environment: EnvName = Field(
        default="ci", description="Environment of base branches that `branches` does not map."
    )
    postgres_version: PostgresVersion | None = Field(
        default=None,
        description=(
            'The PostgreSQL version the migrations run on in production, e.g. "16" or "14.2" '
            "(a string: YAML reads 14.10 as a number). It drives the version-dependent rules "
            "(a constant default rewrites the table before 11; concurrent index builds on "
            "14.0-14.3). `--pg-version` overrides it; unset, `migsafe check` takes the sandbox "
            "server's version, and without a sandbox the rules assume a current server."
        ),
        examples=["16", "14.2"],
    )
    roles: dict[RoleName, TeamRef] = Field(
        default={},
        description=(
            "Role -> GitHub team (`org/team-slug`) whose members approve for it. The checklist "
            "names backend-lead, product-owner and devops-lead; other roles may be added."
        ),
        examples=[{"backend-lead": "my-org/backend-leads", "product-owner": "my-org/po"}],
    )
    environments: EnvironmentOverrides = Field(
        default_factory=EnvironmentOverrides, description=EnvironmentOverrides.__doc__
    )
    timeouts: TimeoutLimits = Field(
        default_factory=TimeoutLimits, description=TimeoutLimits.__doc__
    )
    rules: dict[RuleId, Level] = Field(
        default={},
        description=(
            "Rule id -> severity in every environment, overriding the matrix; `off` disables "
            "the rule (and the approval it would need)."
        ),
        examples=[{"rename-column": "error", "backfill-in-migration": "off"}],
    )
    approval: ApprovalSettings = Field(
        default_factory=ApprovalSettings, description=ApprovalSettings.__doc__
    )
    adr: AdrSettings = Field(default_factory=AdrSettings, description=AdrSettings.__doc__)
    maintenance_window: MaintenanceWindowSettings = Field(
        default_factory=MaintenanceWindowSettings, description=MaintenanceWindowSettings.__doc__
    )
    contacts: list[RoleName] = Field(
        default=["backend-lead", "devops-lead"],
        description="Roles the emergency procedure names for a failed production migration.",
    )
    sandbox: SandboxSettings = Field(
        default_factory=SandboxSettings, description=SandboxSettings.__doc__
    )

    _source: str = PrivateAttr(default="<defaults>")

    @classmethod
    def default(cls) -> Policy:
        """The checklist's policy, for repositories without a policy file."""
        return cls()

    @classmethod
    def from_file(cls, data: object, source: str) -> Policy:
        """The policy in `data` (the file's YAML, read by `bot.policy.config`); `source` names
        the file in later messages. Raises pydantic's ValidationError, or UserError for a
        role that is neither the checklist's nor defined under `roles:`."""
        policy = cls.model_validate(data)
        policy._source = source
        policy._check_roles()
        return policy

    @property
    def source(self) -> str:
        """The file (or ref:path) the policy came from, for error messages."""
        return self._source

    @property
    def approval_rule_ids(self) -> tuple[str, ...]:
        """Rule ids that need approval: the checklist's, then those the file adds."""
        extra = [rule for rule in self.approval.rules if rule not in APPROVAL_RULE_IDS]
        return (*APPROVAL_RULE_IDS, *dict.fromkeys(extra))

    def team_for(self, role: str) -> str | None:
        """The `org/team-slug` mapped to `role`, if any."""
        return self.roles.get(role)

    def migration_globs(self, script_location: str) -> list[str]:
        """`migration_paths`, or `<script_location>/versions/*.py`."""
        if self.migration_paths is not None:
            return list(self.migration_paths)
        return [str(PurePosixPath(script_location) / "versions" / "*.py")]

    def check_rule_ids(self, known: Collection[str]) -> None:
        """Raise UserError naming the key of the first rule id not in `known`.

        Pass every id migsafe can report (analysis, sandbox, meta). The ids the
        defaults name are always accepted.
        """
        valid = set(known) | {*APPROVAL_RULE_IDS, *ADR_RULE_IDS, *MAINTENANCE_WINDOW_RULE_IDS}
        for key, rule_id in self._rule_references():
            if rule_id not in valid:
                hint = did_you_mean(rule_id, valid)
                raise UserError(f"{key}: unknown rule id {rule_id!r}{hint}", path=self.source)

    def _rule_references(self) -> Iterator[tuple[str, str]]:
        for rule_id in self.rules:
            yield "rules", rule_id
        for key, ids in (
            ("approval.rules", self.approval.rules),
            ("adr.required_for", self.adr.required_for),
            ("maintenance_window.required_for", self.maintenance_window.required_for),
        ):
            for index, rule_id in enumerate(ids):
                yield f"{key}[{index}]", rule_id

    def _check_roles(self) -> None:
        """Roles used in approvals and contacts must be the checklist's or defined in `roles`."""
        known = {*CHECKLIST_ROLES, *self.roles}
        for key, role in self._role_references():
            if role not in known:
                hint = did_you_mean(role, known) or " (define it under roles:)"
                raise UserError(f"{key}: unknown role {role!r}{hint}", path=self.source)

    def _role_references(self) -> Iterator[tuple[str, str]]:
        for env in ENVIRONMENTS:
            for role in getattr(self.environments, env).approvals or {}:
                yield f"environments.{env}.approvals", role
        for index, role in enumerate(self.contacts):
            yield f"contacts[{index}]", role
