"""The published JSON Schema of `.github/migsafe.yml`, generated from the pydantic model.

    python -m bot.policy.schema > bot/policy/migsafe.schema.json   # regenerate
    python -m bot.policy.schema --check                             # exit 1 if it drifted

Editors (e.g. the YAML language server) can validate the file with it:
`# yaml-language-server: $schema=<url of migsafe.schema.json>` as the first line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from bot.policy.config import Policy

SCHEMA_PATH = Path(__file__).with_name("migsafe.schema.json")
SCHEMA_ID = "https://github.com/migsafe/migsafe/blob/main/bot/policy/migsafe.schema.json"


class _PolicySchema(GenerateJsonSchema):
    """Optional keys are absent rather than null: a written `null` is not advertised."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        generated = super().dict_schema(schema)
        if "patternProperties" in generated:  # keys with a pattern: no other keys allowed
            generated.setdefault("additionalProperties", False)
        return generated


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the policy file, with a description per key."""
    generated = Policy.model_json_schema(schema_generator=_PolicySchema, mode="validation")
    body = _drop_null_defaults(generated)
    assert isinstance(body, dict)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **body,
    }


def render_schema() -> str:
    """The schema as committed: indented JSON with a final newline."""
    return json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"


def load_published_schema() -> dict[str, Any]:
    """The committed `migsafe.schema.json`."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _drop_null_defaults(value: object) -> object:
    """`default: null` only means "computed from elsewhere"; the descriptions say from where."""
    if isinstance(value, dict):
        return {
            key: _drop_null_defaults(item)
            for key, item in value.items()
            if not (key == "default" and item is None)
        }
    if isinstance(value, list):
        return [_drop_null_defaults(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        if SCHEMA_PATH.read_text(encoding="utf-8") == render_schema():
            return 0
        print(f"{SCHEMA_PATH} is out of date: regenerate it (see --help)", file=sys.stderr)
        return 1
    if args:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(render_schema())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
