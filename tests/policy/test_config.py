"""The policy file: loading, every error path, and the published JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.errors import UserError
from bot.policy.config import POLICY_PATH, Policy, load_policy, load_repo_policy, parse_policy
from bot.policy.schema import SCHEMA_PATH, load_published_schema, main, render_schema

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "policy.md"
SOURCE = ".github/migsafe.yml"
KNOWN_RULES = {
    "drop-table",
    "drop-column",
    "drop-index",
    "alter-column-type",
    "truncate-table",
    "rename-column",
    "rename-table",
    "backfill-in-migration",
    "missing-lock-timeout",
}


def docs_example() -> str:
    """The complete example of docs/policy.md: the first yaml block after its heading."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## A complete example", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match, "docs/policy.md lost its complete example"
    return match.group(1)


def error_of(text: str) -> str:
    with pytest.raises(UserError) as caught:
        parse_policy(text, SOURCE)
    return str(caught.value)


# --- defaults ---


def test_empty_file_is_the_default_policy() -> None:
    default = Policy.default().model_dump()
    assert parse_policy("", SOURCE).model_dump() == default
    assert parse_policy("# only a comment\n", SOURCE).model_dump() == default


def test_keys_left_empty_mean_their_defaults() -> None:
    policy = parse_policy("rules:\nenvironments:\n  production:\n", SOURCE)
    assert policy.model_dump() == Policy.default().model_dump()


def test_defaults_are_the_checklist() -> None:
    policy = Policy.default()
    assert policy.environment == "ci"
    assert policy.default_environment == "ci"
    assert policy.branches == {}
    assert policy.roles == {}
    assert (policy.timeouts.lock_timeout, policy.timeouts.statement_timeout) == ("30s", "5min")
    assert policy.approval_rule_ids == (
        "drop-table",
        "drop-column",
        "drop-index",
        "alter-column-type",
        "truncate-table",
        "drop-schema",  # DROP SCHEMA ... CASCADE drops the tables in it: a DROP TABLE
        "undeclared-change",
    )
    assert policy.approval.distinct_approvers is False
    assert policy.adr.required_for == ["drop-table", "truncate-table"]
    assert policy.adr.path == "docs/adr/*.md"
    assert policy.maintenance_window.label == "maintenance-window"
    assert policy.maintenance_window.required_for == [
        "drop-table",
        "truncate-table",
        "alter-column-type",
    ]
    assert policy.contacts == ["backend-lead", "devops-lead"]
    assert policy.sandbox.tenant_tables == []
    assert policy.sandbox.tenant_setting == "app.tenant_id"


def test_repo_without_policy_file_gets_defaults(tmp_path: Path) -> None:
    policy = load_repo_policy(tmp_path)
    assert policy.model_dump() == Policy.default().model_dump()
    assert policy.source == "<defaults>"


def test_repo_policy_file_is_read_and_named_relative(tmp_path: Path) -> None:
    (tmp_path / ".github").mkdir()
    (tmp_path / POLICY_PATH).write_text("rules:\n  rename-column: eror\n")
    with pytest.raises(UserError, match=r"^\.github/migsafe\.yml: rules\.rename-column: "):
        load_repo_policy(tmp_path)


def test_explicit_config_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(UserError, match=r"nope\.yml: cannot read the policy file"):
        load_repo_policy(tmp_path, missing)


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("environment: staging\nbranches:\n  main: production\n")
    policy = load_policy(path)
    assert policy.environment == "staging"
    assert policy.branches == {"main": "production"}
    assert policy.source == str(path)


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_bytes(b"environment: \xff\xfe\n")
    with pytest.raises(UserError, match="not UTF-8"):
        load_policy(path)


def test_oversized_file_is_an_error() -> None:
    with pytest.raises(UserError, match="larger than"):
        parse_policy("#" * 300_000, SOURCE)


# --- the full example ---


def test_docs_example_loads_with_every_key() -> None:
    policy = parse_policy(docs_example(), SOURCE, known_rule_ids=KNOWN_RULES)
    assert policy.alembic.script_location == "backend/migrations"
    assert policy.alembic.base_revision == "0002"
    assert policy.branches["release/*"] == "production"
    assert policy.roles["dba"] == "my-org/dbas"
    assert policy.environments.local.timeouts == "off"
    assert policy.environments.production.approvals == {"backend-lead": 2, "dba": 1}
    assert policy.rules == {"rename-column": "error", "backfill-in-migration": "off"}
    assert policy.approval_rule_ids[-1] == "rename-table"
    assert policy.sandbox.env == {"APP_ENV": "test", "POSTGRES_SERVER": "{host}"}
    assert policy.alembic.x_arguments == ["tenant=acme"]
    assert policy.source == SOURCE
    # Every top-level key of the model appears in the example, so it stays complete.
    assert set(yaml.safe_load(docs_example())) == set(Policy.model_fields)


def test_unquoted_off_is_the_word_off_not_false() -> None:
    text = "rules:\n  rename-column: off\nenvironments:\n  ci: {timeouts: off}\n"
    policy = parse_policy(text, SOURCE)
    assert policy.rules == {"rename-column": "off"}
    assert policy.environments.ci.timeouts == "off"


def test_team_ref_accepts_leading_at() -> None:
    policy = parse_policy("roles:\n  backend-lead: '@my-org/backend-leads'\n", SOURCE)
    assert policy.team_for("backend-lead") == "my-org/backend-leads"
    assert policy.team_for("product-owner") is None


def test_sandbox_env_values_are_strings_as_written() -> None:
    policy = parse_policy("sandbox:\n  env: {WORKERS: 2, DEBUG: true, NAME: x}\n", SOURCE)
    assert policy.sandbox.env == {"WORKERS": "2", "DEBUG": "true", "NAME": "x"}


def test_tenant_tables_all() -> None:
    assert parse_policy("sandbox: {tenant_tables: all}\n", SOURCE).sandbox.tenant_tables == "all"


def test_paths_are_normalised() -> None:
    policy = parse_policy("alembic:\n  script_location: ./db/migrations/\n", SOURCE)
    assert policy.alembic.script_location == "db/migrations"


def test_migration_globs_default_to_versions_under_script_location() -> None:
    assert Policy.default().migration_globs("db/migrations") == ["db/migrations/versions/*.py"]
    policy = parse_policy("migration_paths: ['a/*.py', 'b/*.py']\n", SOURCE)
    assert policy.migration_globs("db/migrations") == ["a/*.py", "b/*.py"]


def test_approval_rules_add_to_the_checklist_and_cannot_remove() -> None:
    policy = parse_policy("approval:\n  rules: [rename-table, drop-table]\n", SOURCE)
    assert policy.approval_rule_ids == (
        "drop-table",
        "drop-column",
        "drop-index",
        "alter-column-type",
        "truncate-table",
        "drop-schema",
        "undeclared-change",
        "rename-table",
    )


def test_policy_is_immutable() -> None:
    policy = Policy.default()
    with pytest.raises(ValueError, match="frozen"):
        policy.environment = "production"


# --- errors: one precise message naming file and key ---

ERRORS = [
    pytest.param(
        "environments:\n  production:\n    timeouts: eror\n",
        f"{SOURCE}: environments.production.timeouts: "
        "must be one of off, notice, warning, error (got 'eror')",
        id="bad-enum",
    ),
    pytest.param(
        "environments:\n  production:\n    timeout: error\n",
        f"{SOURCE}: environments.production: unknown key 'timeout' (did you mean 'timeouts'?)",
        id="unknown-nested-key",
    ),
    pytest.param(
        "sandbox:\n  tenant_tabels: [orders]\n",
        f"{SOURCE}: sandbox: unknown key 'tenant_tabels' (did you mean 'tenant_tables'?)",
        id="unknown-deep-key",
    ),
    pytest.param(
        "approval:\n  zzz: 1\n",
        f"{SOURCE}: approval: unknown key 'zzz' (expected one of rules, distinct_approvers)",
        id="unknown-key-lists-allowed",
    ),
    pytest.param(
        "alembc:\n  config: alembic.ini\n",
        f"{SOURCE}: unknown key 'alembc' (did you mean 'alembic'?)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "environments:\n  prod:\n    timeouts: error\n",
        f"{SOURCE}: environments: unknown environment 'prod' "
        "(must be one of local, ci, staging, production)",
        id="unknown-environment",
    ),
    pytest.param(
        "branches:\n  main: prod\n",
        f"{SOURCE}: branches.main: must be one of local, ci, staging, production (got 'prod')",
        id="unknown-environment-in-branches",
    ),
    pytest.param(
        "default_environment: qa\n",
        f"{SOURCE}: default_environment: must be one of local, ci, staging, production (got 'qa')",
        id="unknown-default-environment",
    ),
    pytest.param(
        "timeouts:\n  lock_timeout: 30 seconds\n",
        f"{SOURCE}: timeouts.lock_timeout: must be a positive PostgreSQL duration "
        "such as 30s, 5min or 24h (got '30 seconds')",
        id="bad-duration",
    ),
    pytest.param(
        "timeouts:\n  statement_timeout: 0\n",
        f"{SOURCE}: timeouts.statement_timeout: must be a positive PostgreSQL duration "
        "such as 30s, 5min or 24h (got 0)",
        id="zero-duration",
    ),
    pytest.param(
        "environments:\n  production:\n    backup_max_age: [24h]\n",
        f"{SOURCE}: environments.production.backup_max_age: must be a positive PostgreSQL "
        "duration such as 30s, 5min or 24h (got ['24h'])",
        id="duration-of-wrong-type",
    ),
    pytest.param(
        "roles:\n  backend-lead: backend-leads\n",
        f"{SOURCE}: roles.backend-lead: must be a GitHub team written as org/team-slug "
        "(got 'backend-leads')",
        id="bad-team-ref",
    ),
    pytest.param(
        "roles:\n  backend-lead: my-org/backend leads\n",
        f"{SOURCE}: roles.backend-lead: must be a GitHub team written as org/team-slug "
        "(got 'my-org/backend leads')",
        id="team-slug-with-space",
    ),
    pytest.param(
        "roles:\n  Backend Lead: my-org/leads\n",
        f"{SOURCE}: roles: 'Backend Lead' is not a role name (lower-case words joined by '-')",
        id="bad-role-name",
    ),
    pytest.param(
        "environments:\n  staging:\n    approvals: {backend-leed: 1}\n",
        f"{SOURCE}: environments.staging.approvals: unknown role 'backend-leed' "
        "(did you mean 'backend-lead'?)",
        id="unknown-role-in-approvals",
    ),
    pytest.param(
        "contacts: [dba]\n",
        f"{SOURCE}: contacts[0]: unknown role 'dba' (define it under roles:)",
        id="unknown-role-in-contacts",
    ),
    pytest.param(
        "environments:\n  staging:\n    approvals: {backend-lead: -1}\n",
        f"{SOURCE}: environments.staging.approvals.backend-lead: must be at least 0 (got -1)",
        id="negative-approval-count",
    ),
    pytest.param(
        "environments:\n  staging:\n    approvals: {backend-lead: 'two'}\n",
        f"{SOURCE}: environments.staging.approvals.backend-lead: must be a whole number "
        "(got 'two')",
        id="approval-count-not-a-number",
    ),
    pytest.param(
        "rules:\n  Drop_Table: off\n",
        f"{SOURCE}: rules: 'Drop_Table' is not a rule id (lower-case words joined by '-')",
        id="malformed-rule-id",
    ),
    pytest.param(
        "rules:\n  rename-column: true\n",
        f"{SOURCE}: rules.rename-column: must be one of off, notice, warning, error (got True)",
        id="rule-level-boolean",
    ),
    pytest.param(
        "rules: [rename-column]\n",
        f"{SOURCE}: rules: must be a mapping (got a list)",
        id="section-of-wrong-type",
    ),
    pytest.param(
        "approval:\n  distinct_approvers: maybe\n",
        f"{SOURCE}: approval.distinct_approvers: must be true or false (got 'maybe')",
        id="bad-boolean",
    ),
    pytest.param(
        "alembic:\n  config: ../other/alembic.ini\n",
        f"{SOURCE}: alembic.config: must be a path relative to the repository root "
        "(got '../other/alembic.ini')",
        id="path-escapes-repo",
    ),
    pytest.param(
        "alembic:\n  script_location: /etc\n",
        f"{SOURCE}: alembic.script_location: must be a path relative to the repository root "
        "(got '/etc')",
        id="absolute-path",
    ),
    pytest.param(
        "alembic:\n  base_revision: 0002\n",
        f'{SOURCE}: alembic.base_revision: must be a string: quote it, e.g. "2" (got 2)',
        id="unquoted-revision",
    ),
    pytest.param(
        "alembic:\n  base_revision: 'ab cd'\n",
        f"{SOURCE}: alembic.base_revision: 'ab cd' is not an Alembic revision id",
        id="bad-revision",
    ),
    pytest.param(
        "migration_paths: ['versions/*.py', '']\n",
        f"{SOURCE}: migration_paths[1]: must not be empty",
        id="empty-glob-in-list",
    ),
    pytest.param(
        "maintenance_window:\n  label: '" + "x" * 51 + "'\n",
        f"{SOURCE}: maintenance_window.label: must be at most 50 characters (got '{'x' * 51}')",
        id="label-too-long",
    ),
    pytest.param(
        "sandbox:\n  tenant_tables: some\n",
        f"{SOURCE}: sandbox.tenant_tables: must be \"all\" or a list of table names (got 'some')",
        id="bad-tenant-tables",
    ),
    pytest.param(
        "sandbox:\n  tenant_setting: tenant_id\n",
        f"{SOURCE}: sandbox.tenant_setting: 'tenant_id' is not a custom setting name "
        "with a prefix, e.g. app.tenant_id",
        id="bad-tenant-setting",
    ),
    pytest.param(
        "sandbox:\n  env: {APP-ENV: test}\n",
        f"{SOURCE}: sandbox.env: 'APP-ENV' is not an environment variable name",
        id="bad-env-var-name",
    ),
    pytest.param(
        "branches:\n  2024: production\n",
        f"{SOURCE}: branches: keys must be strings (got 2024)",
        id="non-string-key",
    ),
    pytest.param(
        "version: 2\n",
        f"{SOURCE}: version: must be 1 (got 2)",
        id="unknown-version",
    ),
    pytest.param(
        "- environment: ci\n",
        f"{SOURCE}: must be a mapping of settings (got a list)",
        id="top-level-not-a-mapping",
    ),
    pytest.param(
        "branches: 4\nrules: 3\n",
        f"{SOURCE}: branches: must be a mapping (got 4) (and 1 more problem)",
        id="several-problems-first-named",
    ),
    pytest.param(
        "rules:\n  rename-column: error\n  backfill: [\n",
        f"{SOURCE}: line 4, column 1: invalid YAML: "
        "expected the node content, but found '<stream end>'",
        id="yaml-unclosed",
    ),
    pytest.param(
        "rules:\n  rename-column: error: x\n",
        f"{SOURCE}: line 2, column 23: invalid YAML: mapping values are not allowed here",
        id="yaml-syntax",
    ),
    pytest.param(
        "rules:\n  rename-column: error\n  rename-column: off\n",
        f"{SOURCE}: line 3, column 3: invalid YAML: duplicate key 'rename-column'",
        id="yaml-duplicate-key",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_names_file_key_and_problem(text: str, message: str) -> None:
    assert error_of(text) == message


def test_unknown_rule_ids_are_errors_with_their_key() -> None:
    policy = parse_policy("rules:\n  drop-tabel: off\n", SOURCE)
    with pytest.raises(UserError) as caught:
        policy.check_rule_ids(KNOWN_RULES)
    assert str(caught.value) == f"{SOURCE}: rules: unknown rule id 'drop-tabel' " + (
        "(did you mean 'drop-table'?)"
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("approval:\n  rules: [drop-table, no-such-rule]\n", "approval.rules[1]"),
        ("adr:\n  required_for: [no-such-rule]\n", "adr.required_for[0]"),
        (
            "maintenance_window:\n  required_for: [no-such-rule]\n",
            "maintenance_window.required_for[0]",
        ),
    ],
)
def test_unknown_rule_ids_in_lists(text: str, key: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_policy(text, SOURCE, known_rule_ids=KNOWN_RULES)
    assert str(caught.value) == f"{SOURCE}: {key}: unknown rule id 'no-such-rule'"


def test_default_rule_ids_are_always_known() -> None:
    Policy.default().check_rule_ids(set())  # undeclared-change is the sandbox's, not in the set


# --- the published JSON Schema ---


def schema_validator() -> jsonschema.protocols.Validator:
    schema = load_published_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "regenerate: python -m bot.policy.schema > bot/policy/migsafe.schema.json"
    )
    assert main(["--check"]) == 0


def test_schema_accepts_the_full_example() -> None:
    errors = list(schema_validator().iter_errors(yaml.safe_load(docs_example())))
    assert errors == []


def test_schema_describes_every_key() -> None:
    def undescribed(node: Any, path: str) -> list[str]:
        if not isinstance(node, dict):
            return []
        missing = []
        for name, prop in node.get("properties", {}).items():
            target = prop
            if "$ref" in prop:
                target = schema["$defs"][prop["$ref"].rsplit("/", 1)[1]]
            if not (prop.get("description") or target.get("description")):
                missing.append(f"{path}{name}")
            missing += undescribed(target, f"{path}{name}.")
        return missing

    schema = load_published_schema()
    assert undescribed(schema, "") == []


@pytest.mark.parametrize(
    "bad",
    [
        {"environments": {"production": {"timeouts": "eror"}}},
        {"environments": {"prod": {}}},
        {"environments": {"production": {"timeout": "error"}}},
        {"alembc": {}},
        {"timeouts": {"lock_timeout": "30 seconds"}},
        {"roles": {"backend-lead": "backend-leads"}},
        {"rules": {"Drop_Table": "off"}},
        {"branches": {"main": "prod"}},
        {"sandbox": {"tenant_tables": "some"}},
        {"version": 2},
    ],
)
def test_schema_rejects_what_the_loader_rejects(bad: dict[str, Any]) -> None:
    assert not schema_validator().is_valid(bad)
    with pytest.raises(UserError):
        parse_policy(json.dumps(bad), SOURCE)


def test_docs_name_every_key_of_the_schema() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    schema = load_published_schema()

    def keys(node: dict[str, Any], prefix: str) -> list[str]:
        found = []
        for name, prop in node.get("properties", {}).items():
            found.append(f"{prefix}{name}")
            if "$ref" in prop and prefix == "":
                found += keys(schema["$defs"][prop["$ref"].rsplit("/", 1)[1]], f"{name}.")
        return found

    undocumented = [
        key
        for key in keys(schema, "")
        if f"`{key}`" not in docs and f"### `{key.split('.')[0]}`" not in docs
    ]
    assert undocumented == []


def test_postgres_version_is_read_as_written_and_a_yaml_number_is_refused() -> None:
    assert parse_policy('postgres_version: "14.10"\n', SOURCE).postgres_version == "14.10"
    assert parse_policy("postgres_version: 16\n", SOURCE).postgres_version == "16"
    assert Policy.default().postgres_version is None
    with pytest.raises(UserError, match=r"postgres_version: write the version as a string"):
        parse_policy("postgres_version: 14.10\n", SOURCE)  # YAML's 14.1
    with pytest.raises(UserError, match=r"postgres_version: must be a PostgreSQL version"):
        parse_policy("postgres_version: latest\n", SOURCE)
