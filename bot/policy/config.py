"""The policy file `.github/migsafe.yml`: its model and a loader with precise errors.

Every key is optional; the defaults are the Migration Safety Checklist. Models
forbid unknown keys so that a typo is an error, not a silently ignored setting.

Rule ids are checked in a separate step, `Policy.check_rule_ids(known)` (or by
passing `known_rule_ids=` to the loaders): the rule catalog lives in the
analysis package, which itself reads policies, so this module cannot import it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import ErrorDetails

from bot.analysis.durations import parse_duration_ms
from bot.errors import UserError
from bot.migrations.database_env import TEMPLATE_KEYS, template_keys
from bot.policy.environments import (
    ADR_RULE_IDS,
    APPROVAL_RULE_IDS,
    CHECKLIST_ROLES,
    ENVIRONMENTS,
    MAINTENANCE_WINDOW_RULE_IDS,
    Backup,
    EnvName,
    Level,
)

POLICY_PATH = ".github/migsafe.yml"
MAX_POLICY_BYTES = 256 * 1024  # a policy file is a few hundred bytes; refuse anything absurd

_RULE_ID = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_ROLE = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
# GitHub organisation logins: alphanumerics and single hyphens; team slugs: lower-case
# alphanumerics, '-' and '_'. An '@' in front (as in CODEOWNERS) is accepted and dropped.
_TEAM = r"^[A-Za-z0-9](?:-?[A-Za-z0-9])*/[a-z0-9][a-z0-9_-]*$"
_ENV_VAR = r"^[A-Za-z_][A-Za-z0-9_]*$"
_REVISION = r"^[A-Za-z0-9_.+@-]+$"  # alembic ids are free-form; no spaces, nothing to a shell
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$]*$"
_CUSTOM_SETTING = r"^[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)+$"
_DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*$"
_SIZE_PATTERN = r"^\s*(\d+)\s*(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$"
# PostgreSQL's memory units are powers of 1024 (kB, MB, GB, TB); so are the IEC ones.
_SIZE_UNITS = {"B": 0, "kB": 1, "KB": 1, "MB": 2, "GB": 3, "TB": 4}
_SIZE_UNITS |= {"KiB": 1, "MiB": 2, "GiB": 3, "TiB": 4}


# --- constrained scalars: each check raises one message that names the bad value ---


def _check_pattern(pattern: str, what: str) -> Any:
    compiled = re.compile(pattern)

    def check(value: object) -> object:
        if isinstance(value, str) and not compiled.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return check


def _duration(value: object) -> object:
    ms = None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        ms = parse_duration_ms(value)
    if ms is None or ms <= 0:
        raise ValueError(
            f"must be a positive PostgreSQL duration such as 30s, 5min or 24h (got {value!r})"
        )
    return str(value).strip()


def parse_size_bytes(value: str | int) -> int | None:
    """A size as the policy file writes it, in bytes: an integer (bytes), or a number with a
    unit, PostgreSQL's (kB, MB, GB, TB) or IEC's (KiB, MiB, GiB, TiB), all powers of 1024
    ("1GB" == "1GiB" == 1073741824). None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.match(_SIZE_PATTERN, value) if isinstance(value, str) else None
    if match is None:
        return None
    shift = 10 * _SIZE_UNITS[match.group(2) or "B"]
    return int(match.group(1)) << shift


def _size(value: object) -> object:
    size = None
    if isinstance(value, str | int) and not isinstance(value, bool):
        size = parse_size_bytes(value)
    if size is None or size <= 0:
        raise ValueError(f"must be a positive size such as 512MB or 1GiB (got {value!r})")
    return str(value).strip()


def _team(value: object) -> object:
    if isinstance(value, str):
        value = value.removeprefix("@")
        if not re.match(_TEAM, value):
            raise ValueError(f"must be a GitHub team written as org/team-slug (got {value!r})")
    return value


def _repo_path(value: object) -> object:
    if not isinstance(value, str):
        return value  # the str type reports it
    if not value.strip():
        raise ValueError("must not be empty")
    path = PurePosixPath(value.strip().replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"must be a path relative to the repository root (got {value!r})")
    return str(path)


def _env_value(value: object) -> object:
    """Environment values are strings; YAML numbers and booleans are taken as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


RuleId = Annotated[
    str,
    StringConstraints(pattern=_RULE_ID),
    BeforeValidator(_check_pattern(_RULE_ID, "a rule id (lower-case words joined by '-')")),
]
RoleName = Annotated[
    str,
    StringConstraints(pattern=_ROLE),
    BeforeValidator(_check_pattern(_ROLE, "a role name (lower-case words joined by '-')")),
]
TeamRef = Annotated[str, StringConstraints(pattern=r"^@?" + _TEAM[1:]), BeforeValidator(_team)]
Duration = Annotated[
    str,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION_PATTERN},
                {"type": "integer", "exclusiveMinimum": 0},
            ]
        }
    ),
]
ByteSize = Annotated[
    str,
    BeforeValidator(_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _SIZE_PATTERN},
                {"type": "integer", "exclusiveMinimum": 0},
            ]
        }
    ),
]
RepoPath = Annotated[str, StringConstraints(min_length=1), BeforeValidator(_repo_path)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
RevisionId = Annotated[
    str,
    StringConstraints(pattern=_REVISION),
    BeforeValidator(_check_pattern(_REVISION, "an Alembic revision id")),
]
BranchPattern = Annotated[str, StringConstraints(min_length=1)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=50)]  # GitHub's label limit
EnvVarName = Annotated[
    str,
    StringConstraints(pattern=_ENV_VAR),
    BeforeValidator(_check_pattern(_ENV_VAR, "an environment variable name")),
]
EnvValue = Annotated[str, BeforeValidator(_env_value)]
Identifier = Annotated[
    str,
    StringConstraints(pattern=_IDENTIFIER),
    BeforeValidator(_check_pattern(_IDENTIFIER, "a PostgreSQL identifier")),
]
CustomSetting = Annotated[
    str,
    StringConstraints(pattern=_CUSTOM_SETTING),
    BeforeValidator(
        _check_pattern(_CUSTOM_SETTING, "a custom setting name with a prefix, e.g. app.tenant_id")
    ),
]
ApprovalCount = Annotated[int, Field(strict=True, ge=0, le=20)]
_INI_SECTION = r"^[^\[\]\r\n]*[^\[\]\r\n\s][^\[\]\r\n]*$"
IniSection = Annotated[
    str,
    StringConstraints(pattern=_INI_SECTION),
    BeforeValidator(_check_pattern(_INI_SECTION, "an ini section name")),
]
XArgument = Annotated[
    str,
    StringConstraints(pattern=r"^[^\r\n]+$"),
    BeforeValidator(_env_value),
    BeforeValidator(_check_pattern(r"^[^\r\n]+$", "one line of text")),
]


class _Strict(BaseModel):
    """Unknown keys are errors; parsed policies are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    unknown_key_noun: ClassVar[str] = "key"


# --- sections ---


class AlembicSettings(_Strict):
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


class EnvironmentOverride(_Strict):
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


class EnvironmentOverrides(_Strict):
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


class TimeoutLimits(_Strict):
    """The largest timeouts a migration may set (a longer one counts as missing)."""

    lock_timeout: Duration = Field(
        default="30s", description="Maximum allowed `lock_timeout` (PostgreSQL duration syntax)."
    )
    statement_timeout: Duration = Field(
        default="5min",
        description="Maximum allowed `statement_timeout` (PostgreSQL duration syntax).",
    )


class ApprovalSettings(_Strict):
    """Which findings need approval by the environment's roles."""

    rules: list[RuleId] = Field(
        default=list(APPROVAL_RULE_IDS),
        description=(
            "Rule ids whose findings need approval. The checklist's destructive changes "
            "(drop-table, drop-column, drop-index, alter-column-type, truncate-table) and "
            "undeclared-change always do; ids listed here are added to them."
        ),
    )
    distinct_approvers: bool = Field(
        default=False,
        description=(
            "When true, each required role must be satisfied by a different person; "
            "otherwise one member of two mapped teams can approve for both roles."
        ),
    )


class AdrSettings(_Strict):
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


class MaintenanceWindowSettings(_Strict):
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


class SandboxSettings(_Strict):
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
            raise ValueError(f'must be "all" or a list of table names (got {_show(value)})')
        return value


class Policy(_Strict):
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
                hint = _did_you_mean(rule_id, valid)
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
                hint = _did_you_mean(role, known) or " (define it under roles:)"
                raise UserError(f"{key}: unknown role {role!r}{hint}", path=self.source)

    def _role_references(self) -> Iterator[tuple[str, str]]:
        for env in ENVIRONMENTS:
            for role in getattr(self.environments, env).approvals or {}:
                yield f"environments.{env}.approvals", role
        for index, role in enumerate(self.contacts):
            yield f"contacts[{index}]", role


# --- loading ---


def load_policy(
    path: Path, *, source: str | None = None, known_rule_ids: Collection[str] | None = None
) -> Policy:
    """Read and validate a policy file; `source` is how messages name it (default: path)."""
    name = source or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the policy file: {exc.strerror or exc}", path=name) from exc
    if len(data) > MAX_POLICY_BYTES:
        raise UserError(f"policy file is larger than {MAX_POLICY_BYTES} bytes", path=name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError("policy file is not UTF-8 text", path=name) from exc
    return parse_policy(text, name, known_rule_ids=known_rule_ids)


def load_repo_policy(
    root: Path, config: Path | None = None, *, known_rule_ids: Collection[str] | None = None
) -> Policy:
    """The policy of the repository at `root`: `config` if given (it must exist), else
    `.github/migsafe.yml` if present, else the defaults."""
    if config is not None:
        return load_policy(config, known_rule_ids=known_rule_ids)
    path = root / POLICY_PATH
    if not path.is_file():
        return Policy.default()
    if not path.resolve().is_relative_to(root.resolve()):
        # Read from outside, its first line would be shown in the error about it.
        raise UserError(
            "is a link that leads outside the repository; migsafe reads only files inside it",
            path=POLICY_PATH,
        )
    return load_policy(path, source=POLICY_PATH, known_rule_ids=known_rule_ids)


def parse_policy(
    text: str, source: str, *, known_rule_ids: Collection[str] | None = None
) -> Policy:
    """Validate policy text (e.g. read from a git ref). Empty text means the defaults.

    A key left empty (`rules:` with nothing under it) also means its default.
    """
    if len(text.encode("utf-8", "replace")) > MAX_POLICY_BYTES:
        raise UserError(f"policy file is larger than {MAX_POLICY_BYTES} bytes", path=source)
    raw = _load_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"must be a mapping of settings (got {_show(raw)})", path=source)
    try:
        policy = Policy.model_validate(_drop_empty(raw))
    except ValidationError as exc:
        raise UserError(_describe_errors(exc), path=source) from None
    policy._source = source
    policy._check_roles()
    if known_rule_ids is not None:
        policy.check_rule_ids(known_rule_ids)
    return policy


# --- YAML: 1.2 booleans (so `off` stays the string "off"), duplicate keys are errors ---

_BOOL_TAG = "tag:yaml.org,2002:bool"


class _PolicyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load_yaml(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_PolicyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "unreadable"
        raise UserError(f"{where}invalid YAML: {problem}", path=source) from None
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML: {exc}", path=source) from None


def _drop_empty(value: object) -> object:
    """Mapping entries without a value mean "the default", like an empty file."""
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v is not None}
    return value


# --- pydantic errors -> one message naming the key ---


def _describe_errors(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    key, message = _describe(errors[0])
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{key}: {message}{suffix}" if key else f"{message}{suffix}"


def _describe(error: ErrorDetails) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if "[key]" in loc:  # a bad mapping key: report it at the mapping
        parent = loc[: loc.index("[key]") - 1]
        if kind == "value_error":
            return _key_path(parent), str(ctx.get("error"))
        return _key_path(parent), f"keys must be strings (got {_show(value)})"
    if kind == "extra_forbidden":
        return _key_path(loc[:-1]), _unknown_key(loc[:-1], str(loc[-1]))
    return _key_path(loc), _message(kind, value, ctx, error["msg"])


def _message(kind: str, value: object, ctx: dict[str, Any], fallback: str) -> str:
    got = f" (got {_show(value)})"
    if kind == "value_error":
        return str(ctx.get("error"))
    if kind == "literal_error":
        found = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        allowed = [quoted or number for quoted, number in found]
        one_of = allowed[0] if len(allowed) == 1 else f"one of {', '.join(allowed)}"
        return f"must be {one_of}{got}"
    simple = {
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "list_type": "must be a list",
        "string_type": "must be a string",
        "int_type": "must be a whole number",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_too_short": "must not be empty",
        "string_too_long": f"must be at most {ctx.get('max_length')} characters",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
    }
    if kind in simple:
        return simple[kind] + got
    return fallback[:1].lower() + fallback[1:] + got


def _unknown_key(parent: tuple[int | str, ...], key: str) -> str:
    model = _model_at(parent)
    if model is None:
        return f"unknown key {key!r}"
    if model.unknown_key_noun == "environment":
        return f"unknown environment {key!r} (must be one of {', '.join(ENVIRONMENTS)})"
    allowed = list(model.model_fields)
    hint = _did_you_mean(key, allowed) or f" (expected one of {', '.join(allowed)})"
    return f"unknown key {key!r}{hint}"


def _model_at(loc: tuple[int | str, ...]) -> type[_Strict] | None:
    model: type[_Strict] = Policy
    for segment in loc:
        field = model.model_fields.get(str(segment))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, _Strict)):
            return None
        model = annotation
    return model


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for segment in loc:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        else:
            text = segment if re.fullmatch(r"[A-Za-z0-9_-]+", segment) else repr(segment)
            parts.append(("." if parts else "") + text)
    return "".join(parts)


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
