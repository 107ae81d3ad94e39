"""The policy file's scalar types: each check raises one message that names the bad value.

Durations, sizes, rule ids, role names, teams, repository paths, identifiers: the pydantic
field types of `bot.policy.model`, with the JSON Schema each publishes. Also the syntax of
the placeholders a `sandbox.env` value may hold, which the Alembic layer fills in
(`bot.migrations.database_env`), and the wording shared by every message about a value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema

from bot.analysis.durations import parse_duration_ms

# `sandbox.env` values may name the sandbox database's parts: `{host}`, `{url}`, ...
TEMPLATE_KEYS = ("host", "port", "user", "password", "database", "url")
TEMPLATE = re.compile(r"\{([a-z_]+)\}")

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


_PG_VERSION_PATTERN = r"^[0-9]+(\.[0-9]+)?$"


def _pg_version(value: object) -> object:
    if isinstance(value, float):  # YAML reads 14.10 as 14.1: only a string says which
        raise ValueError(f'write the version as a string, e.g. "14.2" (got {value!r})')
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.match(_PG_VERSION_PATTERN, value.strip()):
        raise ValueError(f'must be a PostgreSQL version such as "16" or "14.2" (got {value!r})')
    return value.strip()


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
PostgresVersion = Annotated[
    str,
    BeforeValidator(_pg_version),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _PG_VERSION_PATTERN},
                {"type": "integer", "minimum": 9},
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


def template_keys(value: str) -> list[str]:
    """The placeholders a `sandbox.env` value holds (known or not)."""
    return TEMPLATE.findall(value)


def did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show_value(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
