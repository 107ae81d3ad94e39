"""GitHub's OpenAPI description: routing a request to its operation and validating it.

Routing is ours, not openapi-core's: GitHub's `{path}` (contents), `{ref}` (tarball, check
runs of a ref) and `{basehead}` parameters may contain slashes, which openapi-core's path
templates do not match. Once routed, openapi-core 0.23 validates the parameters and the JSON
body (and, in debug mode, the fake's own responses) against the operation, `$ref`s and
`nullable` included.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.fakegithub import OPENAPI_RELATIVE

# The spec's servers entry; openapi-core matches requests against it.
SPEC_HOST = "https://api.github.com"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Parameters whose values GitHub accepts with slashes in them.
SLASHED_PARAMETERS = frozenset({"path", "ref", "basehead"})


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str  # e.g. /repos/{owner}/{repo}/check-runs
    operation_id: str
    regex: re.Pattern[str]
    literal_segments: int


@dataclass(frozen=True)
class Route:
    operation: Operation
    path_params: dict[str, str]


class RouteError(Exception):
    """The request matches no operation of the description (GitHub answers 404)."""


def _compile_template(template: str) -> re.Pattern[str]:
    pattern = ""
    for piece in re.split(r"(\{[^}]+\})", template):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            body = ".+" if name in SLASHED_PARAMETERS else "[^/]+"
            pattern += f"(?P<{name}>{body})"
        else:
            pattern += re.escape(piece)
    return re.compile(pattern)


def _operations(spec: Mapping[str, Any]) -> list[Operation]:
    found = []
    for template, item in spec["paths"].items():
        literal = sum(1 for s in template.split("/") if s and not s.startswith("{"))
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            found.append(
                Operation(
                    method=method.upper(),
                    template=template,
                    operation_id=operation["operationId"],
                    regex=_compile_template(template),
                    literal_segments=literal,
                )
            )
    # More literal segments first: /pulls/comments/{id} before /pulls/{pull_number}/...
    return sorted(found, key=lambda op: -op.literal_segments)


def _error_messages(error: BaseException) -> list[str]:
    """Readable messages from an openapi-core error: its schema errors where it has some (the
    top-level message repeats the whole value), else its own message, shortened."""
    schema_messages: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for schema_error in getattr(current, "schema_errors", None) or []:
            where = "/".join(str(p) for p in schema_error.absolute_path) or "(root)"
            schema_messages.append(f"{where}: {schema_error.message}")
        pending.extend(
            e for e in getattr(current, "errors", None) or [] if isinstance(e, BaseException)
        )
        if current.__cause__ is not None:
            pending.append(current.__cause__)
    if schema_messages:
        return schema_messages
    return [f"{type(error).__name__}: {str(error)[:500]}"]


# OpenAPI 3.0 leaves open whether `nullable: true` admits null when an `enum` omits it; GitHub's
# description relies on it (check-run `conclusion`, review comment `start_side`) and returns null.
_NULLABLE_ENUM_QUIRK = re.compile(r"None is not one of \[")


class GitHubDescription:
    """The trimmed description of api.github.com, loaded once per process."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.operations = _operations(spec)
        self._openapi = OpenAPI.from_dict(spec)

    @classmethod
    @functools.cache
    def load(cls, github_dir: Path) -> GitHubDescription:
        """The description in `github_dir`, with the operations its cut lacks where the
        packages give them (tests/fakegithub/published.py: `supplement`)."""
        from tests.fakegithub.published import merge_descriptions, supplement

        spec = json.loads((github_dir / OPENAPI_RELATIVE).read_text(encoding="utf-8"))
        served = {(op.method.lower(), op.template) for op in _operations(spec)}
        extra = supplement(github_dir, served)
        return cls(spec if extra is None else merge_descriptions(spec, extra))

    def route(self, method: str, path: str) -> Route:
        allowed_here: list[str] = []
        for operation in self.operations:
            match = operation.regex.fullmatch(path)
            if match is None:
                continue
            if operation.method == method.upper():
                return Route(operation, match.groupdict())
            allowed_here.append(operation.method)
        if allowed_here:
            raise RouteError(
                f"{method} {path}: the description has only {sorted(set(allowed_here))} here"
            )
        raise RouteError(f"{method} {path}: no operation of the description matches this path")

    def has_operation(self, operation_id: str) -> bool:
        return any(op.operation_id == operation_id for op in self.operations)

    def operation_ids(self) -> Iterator[str]:
        return (op.operation_id for op in self.operations)

    def example(self, name: str) -> Any:
        """A deep copy of `components/examples/<name>.value`: GitHub's own sample response."""
        return copy.deepcopy(self.spec["components"]["examples"][name]["value"])

    def validate_request(
        self,
        route: Route,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        content_type: str,
    ) -> list[str]:
        request = self._mock_request(route, path, query, headers, body, content_type)
        try:
            self._openapi.validate_request(request)
        except Exception as error:  # openapi-core raises a family of errors
            return _error_messages(error)
        return []

    def validate_response(
        self,
        route: Route,
        path: str,
        query: Mapping[str, str],
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        content_type: str,
    ) -> list[str]:
        request = self._mock_request(route, path, query, {}, b"", "application/json")
        response = MockResponse(
            body, status_code=status, headers=dict(headers), content_type=content_type
        )
        try:
            self._openapi.validate_response(request, response)
        except Exception as error:
            messages = _error_messages(error)
            if status >= 400 and any("ResponseNotFound" in m for m in messages):
                return []  # an error status the description does not list for this operation
            return [m for m in messages if not _NULLABLE_ENUM_QUIRK.search(m)]
        return []

    @staticmethod
    def _mock_request(
        route: Route,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        content_type: str,
    ) -> MockRequest:
        return MockRequest(
            SPEC_HOST,
            route.operation.method.lower(),
            path,
            path_pattern=route.operation.template,
            args=dict(query),
            view_args=dict(route.path_params),
            headers=dict(headers),
            data=body or None,
            content_type=content_type,
        )
