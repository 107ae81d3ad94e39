"""GitHub's REST description and webhook examples from pinned, published npm packages.

Where `../shared/github` is absent (a fresh clone), the fake GitHub reads the same data from
the packages it was taken from (see ../shared/github/PROVENANCE.md):

- `@octokit/openapi` 23.0.2: `generated/api.github.com.json`, the very file (same SHA-256)
  that `openapi/api.github.com.trimmed.json` was cut from; cut here the same way: the
  operations in OPERATIONS, every component they reference, the tags they use. The
  operations the fake serves beyond that cut (SUPPLEMENT_OPERATIONS) are cut the same way
  into `openapi/api.github.com.supplement.json`; `supplement()` gives them to a fake that
  reads `../shared/github`, whose cut lacks them.
- `@octokit/webhooks-examples` 7.6.1: every event's examples in one `index.json`, without
  file names; EXAMPLES names the ones the tests use, by their place in that list.
- `@octokit/webhooks-schemas` 7.6.1: one `schema.json` with every schema under
  `definitions`; written out one file per schema with the `$id`s and relative `$ref`s of
  the octokit/webhooks repository's files (the layout of `webhooks/schemas/`).

Each tarball is fetched with `npm pack NAME@VERSION` (npm's own registry configuration),
checked against the SHA-256 pinned here, read member by member without extracting paths
from the archive, and the result is written to a cache folder (`$MIGSAFE_TEST_CACHE_DIR`,
else `$XDG_CACHE_HOME/migsafe-test-github`, else `~/.cache/migsafe-test-github`) in the
layout of `../shared/github`, under a name derived from the pins: a later run reads it
from there, after checking each file against the manifest written beside it.

Unreachable registry (or no npm): `Unavailable`, and the tests that need the data skip with
its reason. A tarball that does not match its pin is an error, never a skip.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakegithub import SUPPLEMENT_RELATIVE

CACHE_DIR_ENV = "MIGSAFE_TEST_CACHE_DIR"
NPM_TIMEOUT_S = 600.0
MAX_MEMBER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    sha256: str  # of the tarball `npm pack` writes

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


OPENAPI_PACKAGE = NpmPackage(
    "@octokit/openapi",
    "23.0.2",
    "71a18407dd5e8464f4e0525daf03deabbe65abd9287d6adc7b5d98f516cd0d0c",
)
OPENAPI_MEMBER = "package/generated/api.github.com.json"
# The SHA-256 ../shared/github/PROVENANCE.md gives for the description it was cut from.
OPENAPI_MEMBER_SHA256 = "829b4bebb19a53133289f7b0bc819f4f1118115821db2ca9f25e9ee995a7da2a"
EXAMPLES_PACKAGE = NpmPackage(
    "@octokit/webhooks-examples",
    "7.6.1",
    "89e6cb1c6345d32e3dd775617fa54effbdc26c859e514898d7728e95e9738280",
)
EXAMPLES_MEMBER = "package/api.github.com/index.json"
SCHEMAS_PACKAGE = NpmPackage(
    "@octokit/webhooks-schemas",
    "7.6.1",
    "94be9136c02e5246912d6a4b1f178f8d5430ae36839e46ecfcad0020f42f33ca",
)
SCHEMAS_MEMBER = "package/schema.json"

# The operations the fake GitHub serves (method, path template): the description is cut down
# to these, as ../shared/github/openapi/api.github.com.trimmed.json was.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("get", "/app"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/orgs/{org}/teams/{team_slug}/members"),
    ("get", "/orgs/{org}/teams/{team_slug}/memberships/{username}"),
    ("post", "/repos/{owner}/{repo}/check-runs"),
    ("get", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("get", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("get", "/repos/{owner}/{repo}/compare/{basehead}"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"),
    ("get", "/repos/{owner}/{repo}/installation"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("post", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("patch", "/repos/{owner}/{repo}/pulls/comments/{comment_id}"),
    ("delete", "/repos/{owner}/{repo}/pulls/comments/{comment_id}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/comments"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/comments"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/commits"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("put", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/dismissals"),
    ("get", "/repos/{owner}/{repo}/tarball/{ref}"),
)

# Operations the fake serves that ../shared/github's cut lacks: kept apart, so that the cut
# of OPERATIONS stays the shared file to the byte.
SUPPLEMENT_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("post", "/app-manifests/{code}/conversions"),  # the App manifest flow (migsafe app create)
)

# webhooks/<name>.json -> its place in the event's `examples` of @octokit/webhooks-examples'
# index.json (the names are those of ../shared/github/webhooks, from the octokit/webhooks
# repository's file names; tests/fakegithub/test_published.py compares the two).
EXAMPLES: Mapping[str, int] = {
    "check_run.completed.1": 1,
    "check_run.completed": 2,
    "check_run.completed.with-organization": 3,
    "check_run.created": 4,
    "check_run.created.with-organization": 5,
    "check_run.requested_action": 6,
    "check_run.rerequested": 7,
    "check_run.rerequested.with-organization": 8,
    "check_suite.requested": 4,
    "check_suite.requested.with-email-with-special-characters": 5,
    "check_suite.requested.with-organization": 6,
    "check_suite.rerequested": 7,
    "check_suite.rerequested.with-organization": 8,
    "installation.created": 1,
    "installation.created.with-requester": 2,
    "installation.deleted": 3,
    "installation_repositories.added": 1,
    "issue_comment.created.1": 1,
    "issue_comment.created": 2,
    "issue_comment.created.with-installation": 3,
    "issue_comment.created.with-organization": 4,
    "membership.added": 1,
    "membership.removed": 2,
    "membership.removed.with-deleted-team": 3,
    "membership.removed.with-installation": 4,
    "ping": 1,
    "ping.with-app_id": 2,
    "ping.with-organization": 3,
    "pull_request.closed": 3,
    "pull_request.closed.with-organization": 4,
    "pull_request.labeled": 8,
    "pull_request.labeled.with-organization": 9,
    "pull_request.opened": 12,
    "pull_request.opened.with-null-body": 13,
    "pull_request.opened.with-organization": 14,
    "pull_request.reopened": 18,
    "pull_request.reopened.with-organization": 19,
    "pull_request.synchronize": 22,
    "pull_request_review.dismissed": 1,
    "pull_request_review.submitted": 2,
    "pull_request_review.submitted.with-organization": 3,
}

_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_COMPONENT_REF = re.compile(r"^#/components/([^/]+)/([^/]+)$")
_DEFINITION_REF = "#/definitions/"
# npm's words for "could not reach the registry": fetch and DNS errors, and a registry (or
# proxy) that answers 5xx. A 404 or a bad tarball is an error, not a reason to skip.
_NETWORK_ERRORS = re.compile(
    r"\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|EHOSTUNREACH|"
    r"ENETUNREACH|ENETDOWN|EPROXY|E5\d\d)\b|socket hang up|request to \S+ failed"
)


class Unavailable(Exception):
    """The packages cannot be had here (no npm, or the registry cannot be reached)."""


# ----- where --------------------------------------------------------------------------------


def cache_root() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "migsafe-test-github"


def pins_key() -> str:
    """Names the cached folder: any change of a pin, an operation or an example is a new one."""
    pins = {
        "layout": 1,
        "packages": [
            [p.name, p.version, p.sha256]
            for p in (OPENAPI_PACKAGE, EXAMPLES_PACKAGE, SCHEMAS_PACKAGE)
        ],
        "operations": OPERATIONS,
        "supplement": SUPPLEMENT_OPERATIONS,
        "examples": sorted(EXAMPLES.items()),
    }
    return hashlib.sha256(json.dumps(pins, sort_keys=True).encode()).hexdigest()[:16]


_outcome: Path | Unavailable | None = None


def published_github_dir() -> Path:
    """The `github` data folder built from the pinned packages (cached; fetched once per
    cache). Raises Unavailable (remembered for the process) where they cannot be had."""
    global _outcome
    if _outcome is None:
        try:
            _outcome = _cached_or_built(cache_root() / f"published-{pins_key()}")
        except Unavailable as error:
            _outcome = error
    if isinstance(_outcome, Unavailable):
        raise _outcome
    return _outcome


def _cached_or_built(target: Path) -> Path:
    github = target / "github"
    if target.is_dir():
        _verify_manifest(target)
        return github
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="migsafe-npm-") as downloads:
            write_github_dir(staging / "github", fetch_all(Path(downloads)))
        _write_manifest(staging)
        try:
            staging.rename(target)  # atomic: a reader sees the whole folder or none
        except OSError:
            if not target.is_dir():  # else another process finished first: use its folder
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _verify_manifest(target)
    return github


# ----- fetching -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    openapi: dict[str, Any]  # the whole description
    examples: list[dict[str, Any]]  # index.json: one entry per event
    schemas: dict[str, Any]  # schema.json


def fetch_all(downloads: Path) -> Sources:
    openapi = _member(npm_pack(OPENAPI_PACKAGE, downloads), OPENAPI_MEMBER)
    if hashlib.sha256(openapi).hexdigest() != OPENAPI_MEMBER_SHA256:
        raise RuntimeError(f"{OPENAPI_PACKAGE.spec}: {OPENAPI_MEMBER} is not the pinned file")
    examples = _member(npm_pack(EXAMPLES_PACKAGE, downloads), EXAMPLES_MEMBER)
    schemas = _member(npm_pack(SCHEMAS_PACKAGE, downloads), SCHEMAS_MEMBER)
    return Sources(json.loads(openapi), json.loads(examples), json.loads(schemas))


def npm_pack(package: NpmPackage, destination: Path) -> Path:
    """`npm pack NAME@VERSION` into `destination`: the tarball, its SHA-256 checked."""
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable(f"npm is not on PATH: cannot fetch {package.spec} from the npm registry")
    try:
        done = subprocess.run(
            [npm, "pack", package.spec, "--json", "--pack-destination", str(destination)],
            cwd=destination,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise Unavailable(
            f"`npm pack {package.spec}` got no answer from the npm registry within "
            f"{NPM_TIMEOUT_S:g} s"
        ) from error
    if done.returncode != 0:
        code, summary = _npm_error(done.stdout, done.stderr)
        if _NETWORK_ERRORS.search(f"{code} {summary}"):
            raise Unavailable(f"the npm registry cannot be reached ({package.spec}): {summary}")
        raise RuntimeError(f"`npm pack {package.spec}` failed: {code} {summary}")
    filename = json.loads(done.stdout)[0]["filename"]
    tarball = destination / Path(filename).name
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != package.sha256:
        raise RuntimeError(
            f"{package.spec}: the tarball's SHA-256 is {digest}, not the pinned {package.sha256}"
        )
    return tarball


def _npm_error(stdout: str, stderr: str) -> tuple[str, str]:
    """(code, summary) of a failed npm command: `--json` prints {"error": {...}} on stdout."""
    try:
        error = json.loads(stdout)["error"]
        return str(error.get("code", "")), str(error.get("summary", "")).strip()
    except (ValueError, KeyError, TypeError, AttributeError):
        lines = [line for line in stderr.splitlines() if line.strip()]
        return "", " / ".join(lines[:3]) or "no message"


def _member(tarball: Path, name: str) -> bytes:
    """One regular file of a tarball, read into memory: nothing is extracted to disk, so
    the archive's paths, links and modes never matter."""
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.name != name:
                continue
            if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                raise RuntimeError(f"{tarball.name}: {name} is not a regular file of sane size")
            stream = archive.extractfile(member)
            assert stream is not None
            with stream:
                return stream.read()
    raise RuntimeError(f"{tarball.name} has no {name}")


# ----- the layout of ../shared/github ------------------------------------------------------


def write_github_dir(github: Path, sources: Sources) -> None:
    openapi = github / "openapi"
    openapi.mkdir(parents=True)
    _write_json(
        openapi / "api.github.com.trimmed.json", trim_description(sources.openapi, OPERATIONS)
    )
    _write_json(
        github / SUPPLEMENT_RELATIVE, trim_description(sources.openapi, SUPPLEMENT_OPERATIONS)
    )
    webhooks = github / "webhooks"
    for name, payload in webhook_examples(sources.examples).items():
        _write_json(webhooks / f"{name}.json", payload)
    for relative, schema in webhook_schemas(sources.schemas).items():
        _write_json(webhooks / "schemas" / relative, schema)
    _write_json(
        github / "SOURCE.json",
        {
            "packages": [
                {"name": p.name, "version": p.version, "tarball_sha256": p.sha256}
                for p in (OPENAPI_PACKAGE, EXAMPLES_PACKAGE, SCHEMAS_PACKAGE)
            ],
            "written_by": "tests/fakegithub/published.py",
        },
    )


def trim_description(
    full: Mapping[str, Any], operations: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """`full` with only `operations`, each unchanged, every component they reference
    (directly or through other components), the tags they use; order as in `full`."""
    wanted: dict[str, set[str]] = {}
    for method, template in operations:
        wanted.setdefault(template, set()).add(method)
    paths: dict[str, Any] = {}
    for template, item in full["paths"].items():
        methods = wanted.get(template, set())
        kept = {key: value for key, value in item.items() if key in methods}
        if kept:
            paths[template] = kept
    missing = [
        f"{method.upper()} {template}"
        for method, template in operations
        if method not in paths.get(template, {})
    ]
    if missing:
        raise RuntimeError(f"the description has no {', '.join(missing)}")

    referenced: set[tuple[str, str]] = set()
    pending: list[Any] = [paths]
    while pending:
        for ref in _refs(pending.pop()):
            match = _COMPONENT_REF.match(ref)
            if match is None:
                raise RuntimeError(f"unexpected $ref {ref!r}")
            kind, name = match.groups()
            if (kind, name) not in referenced:
                referenced.add((kind, name))
                pending.append(full["components"][kind][name])
    components = {
        kind: {name: value for name, value in entries.items() if (kind, name) in referenced}
        for kind, entries in full["components"].items()
    }
    used_tags = {
        tag for item in paths.values() for operation in item.values() for tag in operation["tags"]
    }
    trimmed: dict[str, Any] = {}
    for key, value in full.items():
        if key == "paths":
            trimmed[key] = paths
        elif key == "components":
            trimmed[key] = {kind: entries for kind, entries in components.items() if entries}
        elif key == "tags":
            trimmed[key] = [tag for tag in value if tag["name"] in used_tags]
        elif not key.startswith("x-"):  # x-webhooks: not served by the fake
            trimmed[key] = value
    return trimmed


def supplement(github_dir: Path, operations: set[tuple[str, str]]) -> dict[str, Any] | None:
    """The description of SUPPLEMENT_OPERATIONS for a fake reading `github_dir`, whose own
    description has `operations`: None when it has them all already, or when it lacks some
    and the packages cannot be had (the fake then answers those as unknown paths)."""
    if all((method, template) in operations for method, template in SUPPLEMENT_OPERATIONS):
        return None
    own = github_dir / SUPPLEMENT_RELATIVE
    if not own.is_file():
        try:
            own = published_github_dir() / SUPPLEMENT_RELATIVE
        except Unavailable:
            return None
    loaded: dict[str, Any] = json.loads(own.read_text(encoding="utf-8"))
    return loaded


def merge_descriptions(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with the operations, components and tags of `extra` it lacks. Both are cut from
    the same file, so a component in both must be the same: else RuntimeError."""
    merged = copy.deepcopy(dict(base))
    for template, item in extra["paths"].items():
        path = merged["paths"].setdefault(template, {})
        for method, operation in item.items():
            path.setdefault(method, operation)
    components = merged.setdefault("components", {})
    for kind, entries in extra.get("components", {}).items():
        for name, value in entries.items():
            if components.setdefault(kind, {}).setdefault(name, value) != value:
                raise RuntimeError(f"components/{kind}/{name} differs between the descriptions")
    tags = merged.setdefault("tags", [])
    names = {tag["name"] for tag in tags}
    tags.extend(tag for tag in extra.get("tags", []) if tag["name"] not in names)
    return merged


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def webhook_examples(index: list[dict[str, Any]]) -> dict[str, Any]:
    by_event = {entry["name"]: entry["examples"] for entry in index}
    found: dict[str, Any] = {}
    for name, position in EXAMPLES.items():
        event = name.split(".")[0]
        payload = by_event[event][position]
        action = name.split(".")[1] if event != "ping" else None
        if payload.get("action") != action:
            raise RuntimeError(f"{EXAMPLES_PACKAGE.spec}: {event} example {position} is not {name}")
        found[name] = payload
    return found


def webhook_schemas(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle's definitions as the repository's files: `<event>.<action>.schema.json`
    (`ping.schema.json`) with `$id` `<event>$<action>` and `$ref`s `common/<name>.schema.json`;
    `common/<name>.schema.json` with that `$id` and `$ref`s `<name>.schema.json`. The
    bundle's `<event>_event` unions (oneOf every action) have no file there and are left out."""
    files: dict[str, Any] = {}
    for name, schema in bundle["definitions"].items():
        if "$" in name:
            stem = "ping" if name == "ping$event" else name.replace("$", ".", 1)
            relative = f"{stem}.schema.json"
            files[relative] = _with_id(_relative_refs(schema, "common/"), name)
        elif not name.endswith("_event"):
            relative = f"common/{name}.schema.json"
            files[relative] = _with_id(_relative_refs(schema, ""), relative)
    return files


def _with_id(schema: dict[str, Any], schema_id: str) -> dict[str, Any]:
    """`$id` after `$schema`, as in the repository's files."""
    head = {"$schema": schema["$schema"]} if "$schema" in schema else {}
    return {**head, "$id": schema_id, **schema}


def _relative_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                f"{prefix}{value[len(_DEFINITION_REF) :]}.schema.json"
                if key == "$ref" and isinstance(value, str) and value.startswith(_DEFINITION_REF)
                else _relative_refs(value, prefix)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_relative_refs(item, prefix) for item in node]
    return node


# ----- files --------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _files(root: Path) -> Iterator[Path]:
    return (p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "MANIFEST.json")


def _write_manifest(root: Path) -> None:
    manifest = {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in _files(root)
    }
    (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _verify_manifest(root: Path) -> None:
    """The cached folder is the one written: same files, same bytes (else delete it)."""
    try:
        manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{root}: no readable MANIFEST.json; delete the folder") from error
    actual = {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in _files(root)
    }
    if actual != manifest:
        raise RuntimeError(f"{root} differs from its MANIFEST.json; delete the folder")
