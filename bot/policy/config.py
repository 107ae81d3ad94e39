"""The policy file `.github/migsafe.yml`: read it, from a file or a git ref, into a `Policy`.

Refuses what is not a policy before validating it: a file that is too large, not UTF-8, or
a link leading outside the repository; YAML is read as 1.2 (so `off` stays the string "off")
and a duplicate key is an error. The model itself is `bot.policy.model`; `Policy` and
`SandboxSettings` are importable from here too, as what the loaders return.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.errors import UserError
from bot.policy.fields import show_value
from bot.policy.messages import describe_errors
from bot.policy.model import Policy as Policy
from bot.policy.model import SandboxSettings as SandboxSettings

POLICY_PATH = ".github/migsafe.yml"
MAX_POLICY_BYTES = 256 * 1024  # a policy file is a few hundred bytes; refuse anything absurd


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
        raise UserError(f"must be a mapping of settings (got {show_value(raw)})", path=source)
    try:
        policy = Policy.from_file(_drop_empty(raw), source)
    except ValidationError as exc:
        raise UserError(describe_errors(exc), path=source) from None
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
