"""A fake GitHub REST API: aiohttp on 127.0.0.1, state in memory, every request validated.

Each request is routed to an operation of GitHub's OpenAPI description
(`../shared/github/openapi/api.github.com.trimmed.json`); its parameters and body are validated
against that operation and its credentials checked: `Bearer <app JWT>` (RS256, signed with the
fake app's key, `iss` = app id, at most 10 minutes long) for the app endpoints, `token <t>` or
`Bearer <t>` for the rest, where `t` is an installation token this fake issued and that has not
expired. A request that fails is recorded in `violations` and answered as GitHub would (404
unknown path, 400 bad JSON, 422 invalid parameters or body, 401 bad credentials); the
`fake_github` fixture fails the test at teardown when `violations` is not empty.

Answers GitHub gives to valid requests (404 for a missing pull request, 422 for a review comment
on a line outside the diff, ...) are not violations: they are kept in `errors`.

Responses are built from GitHub's own examples in the description with the fake's state put in.
With `validate_responses=True` (the fake's own tests) every response is also validated against
the operation's response schema, so the fake cannot drift from GitHub.

Fault injection (`fail_next`, `primary_rate_limit_next`, `secondary_rate_limit_next`) answers a
matching, valid request with the given status instead of serving it. Every response carries the
`x-ratelimit-*` headers.
"""

from __future__ import annotations

import base64
import difflib
import functools
import hashlib
import io
import itertools
import json
import math
import re
import secrets
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakegithub import require_shared_github_dir
from tests.fakegithub.manifests import ManifestFlow
from tests.fakegithub.openapi import GitHubDescription, Route, RouteError

T = TypeVar("T")

DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000
TOKEN_LIFETIME_SECONDS = 3600
JWT_MAX_LIFETIME_SECONDS = 600
CLOCK_LEEWAY_SECONDS = 60
MAX_PR_FILES = 3000
CODELOAD_PREFIX = "/_codeload/"
JSON_TYPE = "application/json; charset=utf-8"
# The app endpoints authenticate with the app's JWT; everything else with an installation token.
JWT_OPERATIONS = frozenset(
    {
        "apps/get-authenticated",
        "apps/create-installation-access-token",
        "apps/get-repo-installation",
    }
)
# Operations that take no credentials: the manifest flow's code is its own.
ANONYMOUS_OPERATIONS = frozenset({"apps/create-from-manifest"})
# GitHub Enterprise Server serves the REST API under this prefix of its web host.
GHES_API_PREFIX = "/api/v3"
# GitHub's legacy `permission` field next to the `role_name`.
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}
REVIEW_STATES = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


@functools.cache
def _app_private_key() -> rsa.RSAPrivateKey:
    # One key per process: generating RSA keys is slow and the fake app needs no secrecy.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


# What migsafe's app.yml asks for: the fake's App and its installations have the same.
APP_PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "issues": "write",
    "members": "read",
    "metadata": "read",
    "pull_requests": "write",
}
APP_EVENTS = (
    "check_run",
    "check_suite",
    "issue_comment",
    "membership",
    "pull_request",
    "pull_request_review",
)


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # User | Organization | Bot


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    parents: list[str]
    message: str
    author: User
    timestamp: float


@dataclass
class Annotation:
    path: str
    start_line: int
    end_line: int
    annotation_level: str
    message: str
    title: str | None = None
    raw_details: str | None = None
    start_column: int | None = None
    end_column: int | None = None


@dataclass
class CheckRun:
    id: int
    repo: str
    head_sha: str
    name: str
    status: str
    conclusion: str | None
    started_at: float
    completed_at: float | None
    details_url: str | None
    external_id: str
    output: dict[str, Any]
    annotations: list[Annotation] = field(default_factory=list)
    # Every create/update request body, in order.
    updates: list[dict[str, Any]] = field(default_factory=list)
    app_id: int = 0
    check_suite_id: int = 0


@dataclass
class Reaction:
    id: int
    content: str
    user: User
    created_at: float


@dataclass
class IssueComment:
    id: int
    repo: str
    issue_number: int
    body: str
    user: User
    created_at: float
    updated_at: float
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class ReviewComment:
    id: int
    repo: str
    pull_number: int
    body: str
    path: str
    line: int | None
    side: str
    start_line: int | None
    start_side: str | None
    commit_id: str
    original_commit_id: str
    diff_hunk: str
    user: User
    created_at: float
    updated_at: float
    review_id: int
    in_reply_to_id: int | None = None
    subject_type: str = "line"
    position: int | None = None


@dataclass
class Review:
    id: int
    repo: str
    pull_number: int
    user: User
    body: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    commit_id: str
    submitted_at: float | None


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str = ""


@dataclass
class Pull:
    number: int
    id: int
    repo: str
    title: str
    body: str | None
    user: User
    base_ref: str
    base_sha: str
    head_ref: str
    head_sha: str
    head_repo: str
    state: str = "open"
    draft: bool = False
    labels: list[str] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class Repo:
    owner: User
    name: str
    id: int
    default_branch: str = "main"
    private: bool = False
    fork_of: str | None = None
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> role
    pulls: dict[int, Pull] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class Membership:
    role: str = "member"  # member | maintainer
    state: str = "active"  # active | pending


@dataclass
class Team:
    id: int
    slug: str
    name: str
    members: dict[str, Membership] = field(default_factory=dict)


@dataclass
class Org:
    user: User
    teams: dict[str, Team] = field(default_factory=dict)


@dataclass
class Installation:
    id: int
    account: User
    repositories: list[str] | None  # None = all the account's repositories
    permissions: dict[str, str]
    events: list[str]
    created_at: float
    tokens_issued: int = 0

    def covers(self, full_name: str) -> bool:
        owner, _, name = full_name.partition("/")
        if owner.lower() != self.account.login.lower():
            return False
        return self.repositories is None or name in self.repositories


@dataclass
class Token:
    token: str
    installation_id: int
    expires_at: float
    repositories: list[str] | None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    operation_id: str | None = None
    status: int = 0


@dataclass
class Fault:
    method: str
    path_pattern: str
    status: int
    headers: dict[str, str]
    body: Any
    times: int

    def matches(self, method: str, path: str, template: str) -> bool:
        if self.method not in ("*", method):
            return False
        return self.path_pattern == template or re.fullmatch(self.path_pattern, path) is not None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able value, or bytes for raw bodies
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE


def validation_failed(resource: str, field: str, message: str, code: str = "custom") -> GitHubError:
    """GitHub's 422 'Validation Failed' answer naming the offending field."""
    error = {"resource": resource, "code": code, "field": field, "message": message}
    return GitHubError(422, "Validation Failed", [error])


class GitHubError(Exception):
    """An answer GitHub gives to a valid request: 404, 409, 422, ..."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@dataclass
class Caller:
    installation: Installation | None = None  # None when authenticated as the app
    token: Token | None = None


@dataclass
class FileChange:
    filename: str
    status: str  # added | modified | removed
    sha: str
    additions: int
    deletions: int
    patch: str | None
    # line number -> position in the patch (GitHub's deprecated `position`), per side
    right_lines: dict[int, int]
    left_lines: dict[int, int]


# --------------------------------------------------------------------------------------------
# Diffs and tarballs
# --------------------------------------------------------------------------------------------


def _text_lines(data: bytes | None) -> list[str] | None:
    if data is None:
        return []
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def file_change(filename: str, old: bytes | None, new: bytes | None) -> FileChange:
    status = "added" if old is None else "removed" if new is None else "modified"
    sha = blob_sha(new if new is not None else b"")
    old_lines, new_lines = _text_lines(old), _text_lines(new)
    if old_lines is None or new_lines is None:  # binary: GitHub sends no patch
        return FileChange(filename, status, sha, 0, 0, None, {}, {})
    diff = list(difflib.unified_diff(old_lines, new_lines, lineterm="", n=3))[2:]
    right: dict[int, int] = {}
    left: dict[int, int] = {}
    additions = deletions = 0
    old_no = new_no = 0
    for position, line in enumerate(diff):
        hunk = re.match(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@", line)
        if hunk:
            old_no, new_no = int(hunk.group(1)), int(hunk.group(2))
            # An empty side is written as 0,0 and its first line is 1.
            old_no, new_no = max(old_no, 1), max(new_no, 1)
        elif line.startswith("+"):
            right[new_no] = position
            new_no += 1
            additions += 1
        elif line.startswith("-"):
            left[old_no] = position
            old_no += 1
            deletions += 1
        else:
            right[new_no] = position
            left[old_no] = position
            old_no += 1
            new_no += 1
    return FileChange(filename, status, sha, additions, deletions, "\n".join(diff), right, left)


def _position(change: FileChange, line: int | None, side: str) -> int | None:
    if line is None:
        return None
    return (change.right_lines if side == "RIGHT" else change.left_lines).get(line)


def _diff_hunk(change: FileChange, line: int | None, side: str) -> str:
    """The patch from the commented line's hunk header down to that line, as GitHub shows it."""
    lines = (change.patch or "").split("\n")
    end = _position(change, line, side)
    end = len(lines) - 1 if end is None else end
    start = max((i for i in range(end + 1) if lines[i].startswith("@@")), default=0)
    return "\n".join(lines[start : end + 1])


def diff_trees(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> list[FileChange]:
    changes = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changes.append(file_change(name, old.get(name), new.get(name)))
    return changes


def build_tarball(prefix: str, commit: Commit) -> bytes:
    """A gzip tarball as GitHub's codeload serves it: a pax global header holding the commit
    sha, then everything under `<owner>-<repo>-<short sha>/`, directories first."""
    buffer = io.BytesIO()
    mtime = int(commit.timestamp)
    with tarfile.open(
        fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": commit.sha}
    ) as archive:
        directories = {prefix}
        for path in commit.files:
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directories.add(prefix + "/" + "/".join(parts[:depth]))
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o775, mtime
            archive.addfile(info)
        for path, data in sorted(commit.files.items()):
            info = tarfile.TarInfo(f"{prefix}/{path}")
            info.size, info.mode, info.mtime = len(data), 0o664, mtime
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeGitHub(ManifestFlow):
    """GitHub's REST API for one GitHub App, in memory. `await start()`, then point the bot at
    `url` (or, as GitHub Enterprise Server's, at `url` + /api/v3); `await stop()` at the end.
    Its web side has the new-App page of the manifest flow (tests/fakegithub/manifests.py)."""

    def __init__(
        self,
        github_dir: Path | None = None,
        *,
        validate_responses: bool = False,
        app_id: int = 4242,
        app_slug: str = "migsafe",
    ) -> None:
        ManifestFlow.__init__(self)
        self.description = GitHubDescription.load(github_dir or require_shared_github_dir())
        self.validate_responses = validate_responses
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1001)
        self.clock_offset = 0.0
        # The app
        self.app_id = app_id
        self.app_slug = app_slug
        self._private_key = _app_private_key()
        self.app_owner = User("migsafe-dev", self._next_id(), "Organization")
        self.bot_user = User(f"{app_slug}[bot]", self._next_id(), "Bot")
        # State
        self.users: dict[str, User] = {}
        self.repos: dict[str, Repo] = {}
        self.orgs: dict[str, Org] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.check_run_store: dict[int, CheckRun] = {}
        self.issue_comment_store: dict[int, IssueComment] = {}
        self.review_comment_store: dict[int, ReviewComment] = {}
        self.deleted_review_comments: list[ReviewComment] = []
        self.review_store: dict[int, Review] = {}
        self.tarball_overrides: dict[tuple[str, str], bytes] = {}
        self._codeload_tickets: dict[str, tuple[str, str]] = {}
        # Observations
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.errors: list[tuple[RecordedRequest, int, str]] = []
        self._faults: list[Fault] = []
        self._rate_used: dict[str, int] = {}
        self._rate_reset: dict[str, int] = {}

    # ----- lifecycle ------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def private_key_pem(self) -> str:
        """The app's private key (PEM), for the bot's `MIGSAFE_PRIVATE_KEY`."""
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance_time(self, seconds: float) -> None:
        """Move the fake's clock (token expiry, rate-limit windows) forward."""
        self.clock_offset += seconds

    def _next_id(self) -> int:
        return next(self._ids)

    # ----- seeding --------------------------------------------------------------------------

    def user(self, login: str, type: str = "User") -> User:
        if login not in self.users:
            self.users[login] = User(login, self._next_id(), type)
        return self.users[login]

    def add_installation(
        self,
        account: str,
        *,
        repositories: list[str] | None = None,
        account_type: str = "Organization",
        installation_id: int | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> Installation:
        """Install the app on `account` (all its repositories unless `repositories` names some)."""
        installation = Installation(
            id=installation_id or self._next_id(),
            account=self.user(account, account_type),
            repositories=repositories,
            permissions=dict(permissions or APP_PERMISSIONS),
            events=list(APP_EVENTS),
            created_at=self.now(),
        )
        self.installations[installation.id] = installation
        return installation

    def create_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        private: bool = False,
        owner_type: str = "Organization",
        fork_of: str | None = None,
    ) -> Repo:
        owner, _, name = full_name.partition("/")
        repo = Repo(
            owner=self.user(owner, owner_type),
            name=name,
            id=self._next_id(),
            default_branch=default_branch,
            private=private,
            fork_of=fork_of,
            created_at=self.now(),
        )
        if fork_of is not None:  # a fork starts with the upstream's history and default branch
            upstream = self.repos[fork_of]
            repo.commits.update(upstream.commits)
            if upstream.default_branch in upstream.branches:
                repo.branches[default_branch] = upstream.branches[upstream.default_branch]
        self.repos[full_name] = repo
        return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name]

    def commit(
        self,
        full_name: str,
        files: Mapping[str, bytes | str | None],
        *,
        branch: str | None = None,
        parent: str | None = None,
        message: str = "Update",
        author: str = "octocat",
        replace: bool = False,
    ) -> str:
        """Commit `files` (path -> content; None deletes) on top of `parent` (default: the tip of
        `branch`, else of the default branch) and move `branch` (default: the default branch)
        to it; open pull requests from that branch follow, as on GitHub. `replace=True` makes
        `files` the whole tree. Returns the commit sha."""
        repo = self.repos[full_name]
        branch = branch or repo.default_branch
        parent = parent or repo.branches.get(branch) or repo.branches.get(repo.default_branch)
        tree = {} if replace or parent is None else dict(repo.commits[parent].files)
        for path, content in files.items():
            if content is None:
                tree.pop(path, None)
            else:
                tree[path] = content.encode() if isinstance(content, str) else content
        digest = hashlib.sha1(
            json.dumps(
                [parent, message, sorted((p, blob_sha(d)) for p, d in tree.items()), self.now()]
            ).encode()
            + secrets.token_bytes(8)
        ).hexdigest()
        repo.commits[digest] = Commit(
            digest, tree, [parent] if parent else [], message, self.user(author), self.now()
        )
        repo.branches[branch] = digest
        self._follow_branch(repo, branch, digest)
        return digest

    def _follow_branch(self, repo: Repo, branch: str, sha: str) -> None:
        for target in self.repos.values():
            for pull in target.pulls.values():
                if pull.head_repo == repo.full_name and pull.head_ref == branch:
                    self._copy_history(repo, target, sha)
                    pull.head_sha = sha
                    pull.updated_at = self.now()

    @staticmethod
    def _copy_history(source: Repo, target: Repo, sha: str | None) -> None:
        # A fork's commits are reachable from the base repository (refs/pull/N/head).
        while sha and sha not in target.commits:
            commit = source.commits[sha]
            target.commits[sha] = commit
            sha = commit.parents[0] if commit.parents else None

    def open_pull(
        self,
        full_name: str,
        *,
        head: str,
        base: str | None = None,
        user: str = "octocat",
        title: str = "Change the schema",
        body: str | None = "",
        head_repo: str | None = None,
        draft: bool = False,
        labels: Iterable[str] = (),
    ) -> Pull:
        """Open a pull request from branch `head` (of `head_repo`, a fork, when given) into
        `base` (default: the default branch)."""
        repo = self.repos[full_name]
        source = self.repos[head_repo or full_name]
        base = base or repo.default_branch
        number = 1 + max(
            [
                *repo.pulls,
                *(c.issue_number for c in self.issue_comment_store.values() if c.repo == full_name),
            ],
            default=0,
        )
        self._copy_history(source, repo, source.branches[head])
        pull = Pull(
            number=number,
            id=self._next_id(),
            repo=full_name,
            title=title,
            body=body,
            user=self.user(user),
            base_ref=base,
            base_sha=repo.branches[base],
            head_ref=head,
            head_sha=source.branches[head],
            head_repo=source.full_name,
            draft=draft,
            labels=list(labels),
            created_at=self.now(),
            updated_at=self.now(),
        )
        for label in pull.labels:
            self._label(repo, label)
        repo.pulls[number] = pull
        return pull

    def set_permission(self, full_name: str, login: str, role: str) -> None:
        """Make `login` a collaborator: admin | maintain | write | triage | read."""
        self.user(login)
        self.repos[full_name].collaborators[login] = role

    def add_org(self, login: str) -> Org:
        org = self.orgs.get(login) or Org(self.user(login, "Organization"))
        self.orgs[login] = org
        return org

    def add_team(
        self, org: str, slug: str, members: Mapping[str, str | Membership] | None = None
    ) -> Team:
        """A team of `org`; `members` maps login -> role ('member'/'maintainer') or Membership."""
        owner = self.add_org(org)
        team = Team(self._next_id(), slug, slug.replace("-", " ").title())
        for login, membership in (members or {}).items():
            self.user(login)
            team.members[login] = (
                membership if isinstance(membership, Membership) else Membership(role=membership)
            )
        owner.teams[slug] = team
        return team

    def set_membership(
        self, org: str, slug: str, login: str, *, role: str = "member", state: str = "active"
    ) -> None:
        self.user(login)
        self.orgs[org].teams[slug].members[login] = Membership(role, state)

    def add_issue_comment(self, full_name: str, number: int, user: str, body: str) -> IssueComment:
        """A comment written by a person (e.g. `/migsafe rerun`) on pull request `number`."""
        return self._new_issue_comment(full_name, number, self.user(user), body)

    def add_review(
        self, full_name: str, number: int, user: str, state: str, body: str = ""
    ) -> Review:
        pull = self.repos[full_name].pulls[number]
        review = Review(
            self._next_id(),
            full_name,
            number,
            self.user(user),
            body,
            state,
            pull.head_sha,
            self.now(),
        )
        self.review_store[review.id] = review
        return review

    # ----- fault injection ------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        body: Any = None,
    ) -> None:
        """Answer the next `times` matching requests with `status`. `method` may be '*';
        `path_pattern` is an operation template ('/repos/{owner}/{repo}/check-runs') or a
        regular expression matched against the whole path."""
        self._faults.append(
            Fault(
                method.upper(),
                path_pattern,
                status,
                dict(headers or {}),
                body if body is not None else {"message": "Server Error"},
                times,
            )
        )

    def secondary_rate_limit_next(
        self, method: str, path_pattern: str, retry_after: int = 1, times: int = 1
    ) -> None:
        self.fail_next(
            method,
            path_pattern,
            403,
            {"retry-after": str(retry_after)},
            times,
            {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes"
                " before you try again.",
                "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
            },
        )

    def primary_rate_limit_next(
        self, method: str, path_pattern: str, reset_in: int = 1, times: int = 1
    ) -> None:
        self.fail_next(
            method,
            path_pattern,
            403,
            {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": str(RATE_LIMIT),
                "x-ratelimit-reset": str(int(self.now()) + reset_in),
            },
            times,
            {
                "message": "API rate limit exceeded for installation.",
                "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
            },
        )

    # ----- introspection --------------------------------------------------------------------

    def pop_violations(self) -> list[str]:
        """The violations so far, cleared (for tests that provoke them on purpose)."""
        found, self.violations = self.violations, []
        return found

    def requests_to(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if method.upper() in ("*", r.method)
            and (r.operation_id == path_pattern or re.fullmatch(path_pattern, r.path))
        ]

    def tokens_issued(self, installation_id: int) -> int:
        return self.installations[installation_id].tokens_issued

    def check_runs(
        self, full_name: str, *, head_sha: str | None = None, name: str | None = None
    ) -> list[CheckRun]:
        return [
            run
            for run in self.check_run_store.values()
            if run.repo == full_name
            and head_sha in (None, run.head_sha)
            and name in (None, run.name)
        ]

    def comments(self, full_name: str, number: int) -> list[IssueComment]:
        """Issue comments (the conversation) of pull request `number`."""
        return [
            c
            for c in self.issue_comment_store.values()
            if c.repo == full_name and c.issue_number == number
        ]

    def review_comments(self, full_name: str, number: int) -> list[ReviewComment]:
        return [
            c
            for c in self.review_comment_store.values()
            if c.repo == full_name and c.pull_number == number
        ]

    def reviews(self, full_name: str, number: int) -> list[Review]:
        return [
            r for r in self.review_store.values() if r.repo == full_name and r.pull_number == number
        ]

    def reactions(self, comment_id: int) -> list[Reaction]:
        return list(self.issue_comment_store[comment_id].reactions)

    def labels(self, full_name: str, number: int) -> list[str]:
        return list(self.repos[full_name].pulls[number].labels)

    # ----- request pipeline -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        query = {k: v for k, v in request.query.items()}
        path = request.path
        if path.startswith(GHES_API_PREFIX + "/"):
            path = path[len(GHES_API_PREFIX) :]
        record = RecordedRequest(
            request.method,
            path,
            query,
            None,
            {k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(record)
        if request.path.startswith(CODELOAD_PREFIX):
            return self._codeload(record)
        form_reply = self._new_app_form(record, body)
        if form_reply is not None:
            record.status = form_reply.status
            return self._to_response(form_reply, record)
        violations_before = len(self.violations)
        reply, route = self._serve(record, body, request.headers.get("content-type", ""))
        record.status = reply.status
        # GitHub's own answers to valid requests (and injected faults); violations are apart.
        if reply.status >= 400 and len(self.violations) == violations_before:
            message = reply.body.get("message", "") if isinstance(reply.body, dict) else ""
            self.errors.append((record, reply.status, message))
        response = self._to_response(reply, record)
        # GitHub's description gives the contents answer a discriminator on `type`, which a
        # directory listing (a JSON array) cannot satisfy: skip that one check.
        listing = record.operation_id == "repos/get-content" and isinstance(reply.body, list)
        if self.validate_responses and route is not None and reply.status < 500 and not listing:
            self._check_response(route, record, reply, response)
        return response

    def _serve(
        self, record: RecordedRequest, body: bytes, content_type: str
    ) -> tuple[Reply, Route | None]:
        try:
            route = self.description.route(record.method, record.path)
        except RouteError as error:
            self._violate(record, str(error))
            return self._error_reply(404, "Not Found"), None
        record.operation_id = route.operation.operation_id
        problem = self._precheck(record, body, route, content_type)
        if problem is not None:
            return problem, route
        try:
            caller = self._authenticate(record, route)
        except GitHubError as error:
            self._violate(record, f"authentication: {error.message}")
            return self._error_reply(error.status, error.message), route
        fault = self._take_fault(record, route)
        if fault is not None:
            reply = Reply(fault.status, fault.body, dict(fault.headers))
            return self._with_rate_headers(reply, caller), None
        try:
            reply = self._dispatch(route, record, caller)
        except GitHubError as error:
            reply = self._error_reply(error.status, error.message, error.errors)
        return self._with_rate_headers(reply, caller), route

    def _precheck(
        self, record: RecordedRequest, body: bytes, route: Route, content_type: str
    ) -> Reply | None:
        if "user-agent" not in record.headers:
            self._violate(record, "no User-Agent header (GitHub rejects such requests)")
            return self._error_reply(403, "Request forbidden by administrative rules.")
        if body.strip():
            try:
                record.json = json.loads(body)
            except ValueError:
                self._violate(record, "the body is not JSON")
                return self._error_reply(400, "Problems parsing JSON")
        problems = self.description.validate_request(
            route,
            record.path,
            record.query,
            record.headers,
            body if body.strip() else b"",
            content_type.split(";")[0].strip() or "application/json",
        )
        if problems:
            self._violate(record, "; ".join(problems))
            return self._error_reply(422, "Invalid request.\n\n" + "\n".join(problems))
        return None

    def _violate(self, record: RecordedRequest, problem: str) -> None:
        self.violations.append(f"{record.method} {record.path}: {problem}")

    def _take_fault(self, record: RecordedRequest, route: Route) -> Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.matches(
                record.method, record.path, route.operation.template
            ):
                fault.times -= 1
                return fault
        return None

    def _error_reply(
        self, status: int, message: str, errors: list[dict[str, Any]] | None = None
    ) -> Reply:
        body: dict[str, Any] = {"message": message, "documentation_url": DOCS}
        if errors:
            body["errors"] = errors
        if status == 422:
            body["status"] = "422"
        return Reply(status, body)

    def _with_rate_headers(self, reply: Reply, caller: Caller) -> Reply:
        key = caller.token.token if caller.token else "app"
        now = int(self.now())
        if self._rate_reset.get(key, 0) <= now:
            self._rate_reset[key] = now + 3600
            self._rate_used[key] = 0
        self._rate_used[key] += 1
        used = self._rate_used[key]
        headers = {
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(max(RATE_LIMIT - used, 0)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": str(self._rate_reset[key]),
            "x-ratelimit-resource": "core",
        }
        headers.update(reply.headers)  # a fault's own values win
        reply.headers = headers
        return reply

    def _to_response(self, reply: Reply, record: RecordedRequest) -> web.Response:
        headers = dict(reply.headers)
        headers.setdefault("x-github-request-id", secrets.token_hex(8).upper())
        headers.setdefault("x-github-api-version-selected", "2022-11-28")
        if reply.body is None:
            return web.Response(status=reply.status, headers=headers)
        data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        headers["content-type"] = reply.content_type
        return web.Response(status=reply.status, body=data, headers=headers)

    def _check_response(
        self, route: Route, record: RecordedRequest, reply: Reply, response: web.Response
    ) -> None:
        data = response.body if isinstance(response.body, bytes) else b""
        problems = self.description.validate_response(
            route,
            record.path,
            record.query,
            reply.status,
            reply.headers,
            data,
            reply.content_type.split(";")[0] if reply.body is not None else "",
        )
        if problems:
            self._violate(record, "the fake's RESPONSE does not match: " + "; ".join(problems))

    # ----- authentication -------------------------------------------------------------------

    def _authenticate(self, record: RecordedRequest, route: Route) -> Caller:
        scheme, _, credential = record.headers.get("authorization", "").partition(" ")
        if route.operation.operation_id in ANONYMOUS_OPERATIONS:
            return Caller()
        if not credential:
            raise GitHubError(401, "Requires authentication")
        if route.operation.operation_id in JWT_OPERATIONS:
            if scheme.lower() != "bearer":
                raise GitHubError(401, "A JSON web token could not be decoded")
            self._verify_jwt(credential.strip())
            return Caller()
        if scheme.lower() not in ("token", "bearer"):
            raise GitHubError(401, "Bad credentials")
        token = self.tokens.get(credential.strip())
        if token is None:
            raise GitHubError(401, "Bad credentials (not a token this fake issued)")
        if token.expires_at <= self.now():
            raise GitHubError(
                401, f"Bad credentials (the token expired at {iso(token.expires_at)})"
            )
        return Caller(self.installations[token.installation_id], token)

    def _verify_jwt(self, token: str) -> None:
        try:
            claims = jwt.decode(
                token,
                self._private_key.public_key(),
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "require": ["iat", "exp", "iss"],
                },
            )
        except jwt.PyJWTError as error:
            raise GitHubError(401, f"A JSON web token could not be decoded: {error}") from error
        now = self.now()
        if str(claims["iss"]) != str(self.app_id):
            raise GitHubError(401, f"'Issuer' claim ('iss') must be the app id {self.app_id}")
        if claims["iat"] > now + CLOCK_LEEWAY_SECONDS:
            raise GitHubError(
                401, "'Issued at' claim ('iat') must be an Integer representing a time in the past"
            )
        if claims["exp"] <= now:
            raise GitHubError(401, "'Expiration time' claim ('exp') is too far in the past")
        if claims["exp"] - claims["iat"] > JWT_MAX_LIFETIME_SECONDS + CLOCK_LEEWAY_SECONDS or (
            claims["exp"] > now + JWT_MAX_LIFETIME_SECONDS + CLOCK_LEEWAY_SECONDS
        ):
            raise GitHubError(401, "'Expiration time' claim ('exp') is too far in the future")

    def _repo_for(self, caller: Caller, params: Mapping[str, str]) -> Repo:
        full_name = f"{params['owner']}/{params['repo']}"
        repo = self.repos.get(full_name)
        if repo is None:
            raise GitHubError(404, "Not Found")
        installation = caller.installation
        if installation is not None and not installation.covers(full_name):
            raise GitHubError(404, "Not Found")
        token = caller.token
        if (
            token is not None
            and token.repositories is not None
            and repo.name not in token.repositories
        ):
            raise GitHubError(404, "Not Found")
        return repo

    # ----- dispatch -------------------------------------------------------------------------

    def _dispatch(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        name = "_op_" + re.sub(r"\W", "_", route.operation.operation_id)
        handler: Callable[[Route, RecordedRequest, Caller], Reply] = getattr(self, name)
        return handler(route, record, caller)

    def _paginate(self, record: RecordedRequest, items: list[T]) -> tuple[list[T], dict[str, str]]:
        per_page = min(int(record.query.get("per_page", 30)), 100)
        page = max(int(record.query.get("page", 1)), 1)
        last = max(1, math.ceil(len(items) / per_page))
        links = []

        def link(number: int, rel: str) -> str:
            query = urlencode({**record.query, "per_page": per_page, "page": number})
            return f'<{self.url}{record.path}?{query}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        headers = {"link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    def _resolve(self, repo: Repo, ref: str) -> Commit:
        ref = ref.removeprefix("refs/").removeprefix("heads/")
        pull_ref = re.fullmatch(r"pull/(\d+)/head", ref)
        if pull_ref and int(pull_ref.group(1)) in repo.pulls:
            return repo.commits[repo.pulls[int(pull_ref.group(1))].head_sha]
        if ref in repo.branches:
            return repo.commits[repo.branches[ref]]
        if len(ref) >= 7:
            found = [c for sha, c in repo.commits.items() if sha.startswith(ref.lower())]
            if len(found) == 1:
                return found[0]
        raise GitHubError(404, f"No commit found for the ref {ref}")

    def _pull(self, repo: Repo, number: str | int) -> Pull:
        pull = repo.pulls.get(int(number))
        if pull is None:
            raise GitHubError(404, "Not Found")
        return pull

    def _pull_commits(self, repo: Repo, pull: Pull) -> list[Commit]:
        base_history = set()
        sha: str | None = pull.base_sha
        while sha:
            base_history.add(sha)
            parents = repo.commits[sha].parents
            sha = parents[0] if parents else None
        commits = []
        sha = pull.head_sha
        while sha and sha not in base_history:
            commits.append(repo.commits[sha])
            parents = repo.commits[sha].parents
            sha = parents[0] if parents else None
        return list(reversed(commits))

    def _pull_changes(
        self, repo: Repo, pull: Pull, head_sha: str | None = None
    ) -> list[FileChange]:
        head = repo.commits[head_sha or pull.head_sha]
        return diff_trees(repo.commits[pull.base_sha].files, head.files)

    # ----- apps -----------------------------------------------------------------------------

    def _op_apps_get_authenticated(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        return Reply(200, self.integration_json())

    def _op_apps_create_installation_access_token(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        installation = self.installations.get(int(route.path_params["installation_id"]))
        if installation is None:
            raise GitHubError(404, "Not Found")
        wanted = (record.json or {}).get("repositories")
        if wanted and installation.repositories is not None:
            missing = [name for name in wanted if name not in installation.repositories]
            if missing:
                raise GitHubError(
                    422,
                    "There is at least one repository that does not exist or is not accessible"
                    f" to the parent installation: {missing}",
                )
        token = Token(
            "ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36],
            installation.id,
            self.now() + TOKEN_LIFETIME_SECONDS,
            list(wanted) if wanted else None,
        )
        self.tokens[token.token] = token
        installation.tokens_issued += 1
        body: dict[str, Any] = {
            "token": token.token,
            "expires_at": iso(token.expires_at),
            "permissions": installation.permissions,
            "repository_selection": "all" if installation.repositories is None else "selected",
        }
        if wanted:
            body["repositories"] = [
                self.repo_json(self.repos[f"{installation.account.login}/{n}"])
                for n in wanted
                if f"{installation.account.login}/{n}" in self.repos
            ]
        return Reply(201, body)

    def _op_apps_get_repo_installation(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        full_name = f"{route.path_params['owner']}/{route.path_params['repo']}"
        for installation in self.installations.values():
            if full_name in self.repos and installation.covers(full_name):
                return Reply(200, self.installation_json(installation))
        raise GitHubError(404, "Not Found")

    # ----- teams ----------------------------------------------------------------------------

    def _team(self, caller: Caller, params: Mapping[str, str]) -> Team:
        org = self.orgs.get(params["org"])
        if (
            org is None
            or caller.installation is None
            or caller.installation.account.login.lower() != params["org"].lower()
        ):
            raise GitHubError(404, "Not Found")
        team = org.teams.get(params["team_slug"])
        if team is None:
            raise GitHubError(404, "Not Found")
        return team

    def _op_teams_list_members_in_org(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        team = self._team(caller, route.path_params)
        role = record.query.get("role", "all")
        members = [
            self.user_json(self.users[login])
            for login, m in team.members.items()
            if m.state == "active" and role in ("all", m.role)
        ]
        page, headers = self._paginate(record, members)
        return Reply(200, page, headers)

    def _op_teams_get_membership_for_user_in_org(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        team = self._team(caller, route.path_params)
        login = route.path_params["username"]
        membership = team.members.get(login)
        if membership is None:
            raise GitHubError(404, "Not Found")
        return Reply(
            200,
            {
                "url": f"{self.url}/teams/{team.id}/memberships/{login}",
                "role": membership.role,
                "state": membership.state,
            },
        )

    # ----- checks ---------------------------------------------------------------------------

    def _apply_check_update(self, run: CheckRun, body: Mapping[str, Any]) -> None:
        run.updates.append(dict(body))
        for key in ("name", "details_url", "external_id"):
            if key in body:
                setattr(run, key, body[key])
        if "status" in body:
            run.status = body["status"]
        if "started_at" in body:
            run.started_at = datetime.fromisoformat(body["started_at"]).timestamp()
        if "conclusion" in body:
            run.conclusion = body["conclusion"]
            run.status = "completed"
        if run.status == "completed":
            if run.conclusion is None:
                raise GitHubError(
                    422, "Invalid request.\n\nconclusion is required when status is completed"
                )
            run.completed_at = (
                datetime.fromisoformat(body["completed_at"]).timestamp()
                if "completed_at" in body
                else run.completed_at or self.now()
            )
        output = body.get("output")
        if output:
            for key in ("title", "summary", "text"):
                if key in output:
                    run.output[key] = output[key]
            run.annotations.extend(Annotation(**a) for a in output.get("annotations", []))

    def _op_checks_create(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        body = record.json
        if body["head_sha"] not in repo.commits:
            raise GitHubError(422, "No commit found for SHA: " + body["head_sha"])
        run = CheckRun(
            id=self._next_id(),
            repo=repo.full_name,
            head_sha=body["head_sha"],
            name=body["name"],
            status="queued",
            conclusion=None,
            started_at=self.now(),
            completed_at=None,
            details_url=None,
            external_id="",
            output={"title": None, "summary": None, "text": None},
            app_id=self.app_id,
            check_suite_id=self._next_id(),
        )
        self._apply_check_update(run, body)
        self.check_run_store[run.id] = run
        return Reply(201, self.check_run_json(run))

    def _check_run(self, repo: Repo, run_id: str) -> CheckRun:
        run = self.check_run_store.get(int(run_id))
        if run is None or run.repo != repo.full_name:
            raise GitHubError(404, "Not Found")
        return run

    def _op_checks_get(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        return Reply(
            200, self.check_run_json(self._check_run(repo, route.path_params["check_run_id"]))
        )

    def _op_checks_update(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        run = self._check_run(repo, route.path_params["check_run_id"])
        self._apply_check_update(run, record.json)
        return Reply(200, self.check_run_json(run))

    def _op_checks_list_for_ref(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        sha = self._resolve(repo, route.path_params["ref"]).sha
        runs = [r for r in self.check_runs(repo.full_name, head_sha=sha)]
        query = record.query
        runs = [
            r
            for r in runs
            if query.get("check_name") in (None, r.name)
            and query.get("status") in (None, r.status)
            and query.get("app_id") in (None, str(r.app_id))
        ]
        if query.get("filter", "latest") == "latest":
            latest: dict[str, CheckRun] = {}
            for run in runs:
                latest[run.name] = run
            runs = list(latest.values())
        page, headers = self._paginate(record, sorted(runs, key=lambda r: -r.id))
        return Reply(
            200,
            {"total_count": len(runs), "check_runs": [self.check_run_json(r) for r in page]},
            headers,
        )

    # ----- repository -----------------------------------------------------------------------

    def _op_repos_get_collaborator_permission_level(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        login = route.path_params["username"]
        user = self.users.get(login)
        if user is None:
            raise GitHubError(404, "Not Found")
        role = repo.collaborators.get(login)
        if login == repo.owner.login and repo.owner.type == "User":
            role = "admin"
        if role is None:
            role = "none" if repo.private else "read"
        user_json = self.user_json(user)
        user_json["permissions"] = {
            "admin": role == "admin",
            "maintain": role in ("admin", "maintain"),
            "push": role in ("admin", "maintain", "write"),
            "triage": role in ("admin", "maintain", "write", "triage"),
            "pull": role != "none",
        }
        user_json["role_name"] = role
        return Reply(
            200, {"permission": LEGACY_PERMISSION[role], "role_name": role, "user": user_json}
        )

    def _op_repos_list_pull_requests_associated_with_commit(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        sha = self._resolve(repo, route.path_params["commit_sha"]).sha
        pulls = [
            p
            for p in repo.pulls.values()
            if p.head_sha == sha or sha in (c.sha for c in self._pull_commits(repo, p))
        ]
        page, headers = self._paginate(record, pulls)
        return Reply(200, [self.pull_json(repo, p, simple=True) for p in page], headers)

    def _op_repos_compare_commits_with_basehead(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        base_ref, sep, head_ref = route.path_params["basehead"].partition("...")
        if not sep:
            raise GitHubError(404, "Not Found")
        base = self._resolve(repo, base_ref.rpartition(":")[2])
        head = self._resolve(repo, head_ref.rpartition(":")[2])
        commits: list[Commit] = []
        sha: str | None = head.sha
        while sha and sha != base.sha:
            commits.append(repo.commits[sha])
            parents = repo.commits[sha].parents
            sha = parents[0] if parents else None
        commits.reverse()
        page, headers = self._paginate(record, commits)
        changes = diff_trees(base.files, head.files)
        example = self.description.example("commit-comparison")
        api = f"{self.url}/repos/{repo.full_name}"
        body = {
            **example,
            "url": f"{api}/compare/{base.sha}...{head.sha}",
            "html_url": f"https://github.com/{repo.full_name}/compare/{base.sha}...{head.sha}",
            "permalink_url": f"https://github.com/{repo.full_name}/compare/{base.sha}...{head.sha}",
            "diff_url": f"https://github.com/{repo.full_name}/compare/{base.sha}...{head.sha}.diff",
            "patch_url": f"https://github.com/{repo.full_name}/compare/{base.sha}...{head.sha}.patch",
            "base_commit": self.commit_json(repo, base),
            "merge_base_commit": self.commit_json(repo, base),
            "status": "identical" if base.sha == head.sha else "ahead",
            "ahead_by": len(commits),
            "behind_by": 0,
            "total_commits": len(commits),
            "commits": [self.commit_json(repo, c) for c in page],
            "files": [self.diff_entry_json(repo, head.sha, c) for c in changes[:300]],
        }
        return Reply(200, body, headers)

    def _op_repos_get_content(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        commit = self._resolve(repo, record.query.get("ref") or repo.default_branch)
        path = route.path_params["path"].strip("/")
        accept = record.headers.get("accept", "")
        if path in commit.files:
            data = commit.files[path]
            if ".raw" in accept:
                return Reply(200, data, content_type="application/vnd.github.raw; charset=utf-8")
            return Reply(200, self.content_json(repo, commit, path, with_content=True))
        prefix = path + "/"
        names = sorted(
            {p[len(prefix) :].split("/")[0] for p in commit.files if p.startswith(prefix)}
        )
        if not names:
            raise GitHubError(404, "Not Found")
        entries = [self.content_json(repo, commit, prefix + n, with_content=False) for n in names]
        return Reply(200, entries)

    def _op_repos_download_tarball_archive(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        commit = self._resolve(repo, route.path_params["ref"])
        ticket = secrets.token_urlsafe(16)
        self._codeload_tickets[ticket] = (repo.full_name, commit.sha)
        location = (
            f"{self.url}{CODELOAD_PREFIX}{repo.full_name}/legacy.tar.gz/{commit.sha}?token={ticket}"
        )
        return Reply(302, None, {"location": location})

    def _codeload(self, record: RecordedRequest) -> web.Response:
        target = self._codeload_tickets.get(record.query.get("token", ""))
        if target is None:
            record.status = 404
            self._violate(record, "codeload: no valid download token (follow the API's redirect)")
            return web.Response(status=404, text="Not Found")
        full_name, sha = target
        repo = self.repos[full_name]
        prefix = f"{repo.owner.login}-{repo.name}-{sha[:7]}"
        data = self.tarball_overrides.get(target)
        if data is None:
            data = build_tarball(prefix, repo.commits[sha])
        record.status = 200
        return web.Response(
            body=data,
            headers={
                "content-type": "application/x-gzip",
                "content-disposition": f"attachment; filename={prefix}.tar.gz",
            },
        )

    # ----- issues ---------------------------------------------------------------------------

    def _new_issue_comment(
        self, full_name: str, number: int, user: User, body: str
    ) -> IssueComment:
        self._pull(self.repos[full_name], number)
        comment = IssueComment(
            self._next_id(), full_name, number, body, user, self.now(), self.now()
        )
        self.issue_comment_store[comment.id] = comment
        return comment

    def _issue_comment(self, repo: Repo, comment_id: str) -> IssueComment:
        comment = self.issue_comment_store.get(int(comment_id))
        if comment is None or comment.repo != repo.full_name:
            raise GitHubError(404, "Not Found")
        return comment

    def _op_issues_update_comment(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        comment = self._issue_comment(repo, route.path_params["comment_id"])
        if comment.user.login != self.bot_user.login:
            raise GitHubError(403, "Must have admin rights to Repository.")
        comment.body, comment.updated_at = record.json["body"], self.now()
        return Reply(200, self.issue_comment_json(comment))

    def _op_reactions_create_for_issue_comment(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        comment = self._issue_comment(repo, route.path_params["comment_id"])
        content = record.json["content"]
        for reaction in comment.reactions:
            if reaction.content == content and reaction.user.login == self.bot_user.login:
                return Reply(200, self.reaction_json(reaction))
        reaction = Reaction(self._next_id(), content, self.bot_user, self.now())
        comment.reactions.append(reaction)
        return Reply(201, self.reaction_json(reaction))

    def _op_issues_list_comments(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        number = int(route.path_params["issue_number"])
        self._pull(repo, number)
        page, headers = self._paginate(record, self.comments(repo.full_name, number))
        return Reply(200, [self.issue_comment_json(c) for c in page], headers)

    def _op_issues_create_comment(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        comment = self._new_issue_comment(
            repo.full_name,
            int(route.path_params["issue_number"]),
            self.bot_user,
            record.json["body"],
        )
        body = self.issue_comment_json(comment)
        return Reply(201, body, {"location": body["url"]})

    def _label(self, repo: Repo, name: str) -> Label:
        if name not in repo.labels:
            repo.labels[name] = Label(self._next_id(), name)
        return repo.labels[name]

    def _op_issues_list_labels_on_issue(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["issue_number"])
        page, headers = self._paginate(record, [repo.labels[n] for n in pull.labels])
        return Reply(200, [self.label_json(repo, label) for label in page], headers)

    def _op_issues_add_labels(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["issue_number"])
        for item in (record.json or {}).get("labels", []):
            name = item if isinstance(item, str) else item["name"]
            self._label(repo, name)
            if name not in pull.labels:
                pull.labels.append(name)
        return Reply(200, [self.label_json(repo, repo.labels[n]) for n in pull.labels])

    # ----- pulls ----------------------------------------------------------------------------

    def _op_pulls_list(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        query = record.query
        state = query.get("state", "open")
        pulls = [
            p
            for p in repo.pulls.values()
            if state in ("all", p.state)
            and query.get("base") in (None, p.base_ref)
            and query.get("head") in (None, f"{p.head_repo.split('/')[0]}:{p.head_ref}")
        ]
        pulls.sort(key=lambda p: p.number, reverse=query.get("direction", "desc") == "desc")
        page, headers = self._paginate(record, pulls)
        return Reply(200, [self.pull_json(repo, p, simple=True) for p in page], headers)

    def _op_pulls_get(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        return Reply(200, self.pull_json(repo, self._pull(repo, route.path_params["pull_number"])))

    def _op_pulls_list_commits(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["pull_number"])
        page, headers = self._paginate(record, self._pull_commits(repo, pull)[:250])
        return Reply(200, [self.commit_json(repo, c) for c in page], headers)

    def _op_pulls_list_files(self, route: Route, record: RecordedRequest, caller: Caller) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["pull_number"])
        changes = self._pull_changes(repo, pull)[:MAX_PR_FILES]
        page, headers = self._paginate(record, changes)
        return Reply(200, [self.diff_entry_json(repo, pull.head_sha, c) for c in page], headers)

    def _review_comment(self, repo: Repo, comment_id: str) -> ReviewComment:
        comment = self.review_comment_store.get(int(comment_id))
        if comment is None or comment.repo != repo.full_name:
            raise GitHubError(404, "Not Found")
        return comment

    def _op_pulls_update_review_comment(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        comment = self._review_comment(repo, route.path_params["comment_id"])
        comment.body, comment.updated_at = record.json["body"], self.now()
        return Reply(200, self.review_comment_json(repo, comment))

    def _op_pulls_delete_review_comment(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        comment = self._review_comment(repo, route.path_params["comment_id"])
        self.deleted_review_comments.append(self.review_comment_store.pop(comment.id))
        return Reply(204)

    def _op_pulls_list_review_comments(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["pull_number"])
        comments = sorted(self.review_comments(repo.full_name, pull.number), key=lambda c: c.id)
        if record.query.get("direction") == "desc":
            comments.reverse()
        page, headers = self._paginate(record, comments)
        return Reply(200, [self.review_comment_json(repo, c) for c in page], headers)

    def _new_review_comment(
        self, repo: Repo, pull: Pull, spec: Mapping[str, Any], commit_id: str, review_id: int
    ) -> ReviewComment:
        """A review comment after GitHub's own checks: known commit, file and line in its diff."""
        resource = "PullRequestReviewComment"
        if commit_id not in {c.sha for c in self._pull_commits(repo, pull)}:
            raise validation_failed(resource, "commit_id", "is not part of the pull request")
        changes = {c.filename: c for c in self._pull_changes(repo, pull, commit_id)}
        path = spec["path"]
        change = changes.get(path)
        if change is None:
            raise validation_failed(resource, "path", "could not be resolved")
        subject_type = spec.get("subject_type", "line")
        line = spec.get("line")
        side = spec.get("side", "RIGHT")
        start_line = spec.get("start_line")
        if subject_type == "line":
            if line is None and spec.get("position") is None:
                raise validation_failed(resource, "line", "is missing", "missing_field")
            lines = change.right_lines if side == "RIGHT" else change.left_lines
            if any(n is not None and n not in lines for n in (line, start_line)):
                # GitHub: "pull_request_review_thread.line must be part of the diff"
                raise validation_failed(
                    resource, "pull_request_review_thread.line", "must be part of the diff"
                )
            if start_line is not None and line is not None and start_line >= line:
                raise validation_failed(
                    resource, "pull_request_review_thread.start_line", "must precede the end line"
                )
        comment = ReviewComment(
            id=self._next_id(),
            repo=repo.full_name,
            pull_number=pull.number,
            body=spec["body"],
            path=path,
            line=line,
            side=side,
            start_line=start_line,
            start_side=spec.get("start_side", side) if start_line else None,
            commit_id=commit_id,
            original_commit_id=commit_id,
            diff_hunk=_diff_hunk(change, line, side),
            user=self.bot_user,
            created_at=self.now(),
            updated_at=self.now(),
            review_id=review_id,
            subject_type=subject_type,
            position=_position(change, line, side),
        )
        self.review_comment_store[comment.id] = comment
        return comment

    def _op_pulls_create_review_comment(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["pull_number"])
        spec = record.json
        review = Review(
            self._next_id(),
            repo.full_name,
            pull.number,
            self.bot_user,
            "",
            "COMMENTED",
            spec["commit_id"],
            self.now(),
        )
        if spec.get("in_reply_to"):
            parent = self._review_comment(repo, str(spec["in_reply_to"]))
            comment = ReviewComment(
                **{
                    **parent.__dict__,
                    "id": self._next_id(),
                    "body": spec["body"],
                    "user": self.bot_user,
                    "in_reply_to_id": parent.id,
                    "review_id": review.id,
                    "created_at": self.now(),
                    "updated_at": self.now(),
                }
            )
            self.review_comment_store[comment.id] = comment
        else:
            comment = self._new_review_comment(repo, pull, spec, spec["commit_id"], review.id)
        self.review_store[review.id] = review
        body = self.review_comment_json(repo, comment)
        return Reply(201, body, {"location": body["url"]})

    def _review(self, repo: Repo, pull: Pull, review_id: str) -> Review:
        review = self.review_store.get(int(review_id))
        if review is None or review.repo != repo.full_name or review.pull_number != pull.number:
            raise GitHubError(404, "Not Found")
        return review

    def _op_pulls_list_reviews(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["pull_number"])
        reviews = sorted(self.reviews(repo.full_name, pull.number), key=lambda r: r.id)
        page, headers = self._paginate(record, reviews)
        return Reply(200, [self.review_json(repo, r) for r in page], headers)

    def _op_pulls_create_review(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["pull_number"])
        spec = record.json or {}
        event = spec.get("event")
        body = spec.get("body", "")
        if event in ("REQUEST_CHANGES", "COMMENT") and not body and not spec.get("comments"):
            raise GitHubError(
                422,
                "Unprocessable Entity",
                [
                    {
                        "resource": "PullRequestReview",
                        "code": "custom",
                        "field": "body",
                        "message": "Review Comment is missing.",
                    }
                ],
            )
        commit_id = spec.get("commit_id") or pull.head_sha
        review = Review(
            self._next_id(),
            repo.full_name,
            pull.number,
            self.bot_user,
            body,
            REVIEW_STATES.get(event or "", "PENDING"),
            commit_id,
            self.now() if event else None,
        )
        for comment in spec.get("comments", []):
            self._new_review_comment(repo, pull, comment, commit_id, review.id)
        self.review_store[review.id] = review
        return Reply(200, self.review_json(repo, review))

    def _op_pulls_dismiss_review(
        self, route: Route, record: RecordedRequest, caller: Caller
    ) -> Reply:
        repo = self._repo_for(caller, route.path_params)
        pull = self._pull(repo, route.path_params["pull_number"])
        review = self._review(repo, pull, route.path_params["review_id"])
        if review.state == "PENDING":
            raise GitHubError(422, "Can not dismiss a pending pull request review")
        review.state = "DISMISSED"
        return Reply(200, self.review_json(repo, review))

    # ----- GitHub-shaped bodies -------------------------------------------------------------

    def user_json(self, user: User) -> dict[str, Any]:
        api = f"{self.url}/users/{user.login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id("User", user.id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"https://github.com/{user.login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _rebased(
        self, value: Any, full_name: str, example_full_name: str = "octocat/Hello-World"
    ) -> Any:
        text = json.dumps(value).replace("https://api.github.com", self.url)
        return json.loads(text.replace(example_full_name, full_name))

    def repo_json(self, repo: Repo) -> dict[str, Any]:
        template = self.description.example("pull-request")["base"]["repo"]
        body: dict[str, Any] = self._rebased(template, repo.full_name)
        body.update(
            id=repo.id,
            node_id=node_id("Repository", repo.id),
            name=repo.name,
            full_name=repo.full_name,
            owner=self.user_json(repo.owner),
            private=repo.private,
            visibility="private" if repo.private else "public",
            fork=repo.fork_of is not None,
            description=None,
            homepage=None,
            default_branch=repo.default_branch,
            created_at=iso(repo.created_at),
            updated_at=iso(repo.created_at),
            pushed_at=iso(self.now()),
            temp_clone_token=None,
            license=None,
            language="Python",
            mirror_url=None,
        )
        body.pop("permissions", None)
        body.pop("temp_clone_token", None)
        return body

    def integration_json(self) -> dict[str, Any]:
        body: dict[str, Any] = self.description.example("integration")
        body.update(
            id=self.app_id,
            slug=self.app_slug,
            node_id=node_id("Integration", self.app_id),
            owner=self.user_json(self.app_owner),
            name=self.app_slug,
            html_url=f"https://github.com/apps/{self.app_slug}",
            permissions=dict(APP_PERMISSIONS),
            events=list(APP_EVENTS),
        )
        return body

    def installation_json(self, installation: Installation) -> dict[str, Any]:
        body: dict[str, Any] = self.description.example("installation")
        body.update(
            id=installation.id,
            account=self.user_json(installation.account),
            repository_selection="all" if installation.repositories is None else "selected",
            access_tokens_url=f"{self.url}/app/installations/{installation.id}/access_tokens",
            repositories_url=f"{self.url}/installation/repositories",
            html_url=f"https://github.com/organizations/{installation.account.login}/settings/installations/{installation.id}",
            app_id=self.app_id,
            app_slug=self.app_slug,
            target_id=installation.account.id,
            target_type=installation.account.type,
            permissions=installation.permissions,
            events=installation.events,
            created_at=iso(installation.created_at),
            updated_at=iso(installation.created_at),
            single_file_name=None,
        )
        return body

    def check_run_json(self, run: CheckRun) -> dict[str, Any]:
        repo = self.repos[run.repo]
        body: dict[str, Any] = self.description.example("check-run")
        api = f"{self.url}/repos/{run.repo}/check-runs/{run.id}"
        pulls = [
            p for p in repo.pulls.values() if p.head_sha == run.head_sha and p.head_repo == run.repo
        ]
        body.update(
            id=run.id,
            head_sha=run.head_sha,
            node_id=node_id("CheckRun", run.id),
            external_id=run.external_id,
            url=api,
            html_url=f"https://github.com/{run.repo}/runs/{run.id}",
            details_url=run.details_url,
            status=run.status,
            conclusion=run.conclusion,
            started_at=iso(run.started_at),
            completed_at=iso(run.completed_at) if run.completed_at else None,
            output={
                "title": run.output.get("title"),
                "summary": run.output.get("summary"),
                "text": run.output.get("text"),
                "annotations_count": len(run.annotations),
                "annotations_url": f"{api}/annotations",
            },
            name=run.name,
            check_suite={"id": run.check_suite_id},
            app=self.integration_json(),
            pull_requests=[self.pull_minimal_json(repo, p) for p in pulls],
        )
        return body

    def pull_minimal_json(self, repo: Repo, pull: Pull) -> dict[str, Any]:
        def side(ref: str, sha: str, full_name: str) -> dict[str, Any]:
            r = self.repos[full_name]
            return {
                "ref": ref,
                "sha": sha,
                "repo": {"id": r.id, "url": f"{self.url}/repos/{full_name}", "name": r.name},
            }

        return {
            "id": pull.id,
            "number": pull.number,
            "url": f"{self.url}/repos/{repo.full_name}/pulls/{pull.number}",
            "head": side(pull.head_ref, pull.head_sha, pull.head_repo),
            "base": side(pull.base_ref, pull.base_sha, repo.full_name),
        }

    def label_json(self, repo: Repo, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.url}/repos/{repo.full_name}/labels/{label.name}",
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": False,
        }

    def pull_json(self, repo: Repo, pull: Pull, *, simple: bool = False) -> dict[str, Any]:
        name = "pull-request-simple-items" if simple else "pull-request"
        template = self.description.example(name)
        template = template[0] if simple else template
        body: dict[str, Any] = self._rebased(template, repo.full_name)
        text = json.dumps(body).replace("/pulls/1347", f"/pulls/{pull.number}")
        text = text.replace("/issues/1347", f"/issues/{pull.number}").replace(
            "/pull/1347", f"/pull/{pull.number}"
        )
        body = json.loads(text)
        head_repo = self.repos[pull.head_repo]

        def side(ref: str, sha: str, source: Repo) -> dict[str, Any]:
            return {
                "label": f"{source.owner.login}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self.user_json(source.owner),
                "repo": self.repo_json(source),
            }

        body.update(
            id=pull.id,
            node_id=node_id("PullRequest", pull.id),
            number=pull.number,
            state=pull.state,
            locked=False,
            title=pull.title,
            user=self.user_json(pull.user),
            body=pull.body,
            labels=[self.label_json(repo, repo.labels[n]) for n in pull.labels],
            milestone=None,
            created_at=iso(pull.created_at),
            updated_at=iso(pull.updated_at),
            closed_at=None,
            merged_at=None,
            merge_commit_sha=None,
            assignee=None,
            assignees=[],
            requested_reviewers=[],
            requested_teams=[],
            head=side(pull.head_ref, pull.head_sha, head_repo),
            base=side(pull.base_ref, pull.base_sha, repo),
            author_association="COLLABORATOR"
            if pull.user.login in repo.collaborators
            else "CONTRIBUTOR",
            auto_merge=None,
            draft=pull.draft,
            active_lock_reason=None,
        )
        if not simple:
            changes = self._pull_changes(repo, pull)
            body.update(
                merged=False,
                mergeable=True,
                rebaseable=True,
                mergeable_state="clean",
                merged_by=None,
                comments=len(self.comments(repo.full_name, pull.number)),
                review_comments=len(self.review_comments(repo.full_name, pull.number)),
                maintainer_can_modify=False,
                commits=len(self._pull_commits(repo, pull)),
                additions=sum(c.additions for c in changes),
                deletions=sum(c.deletions for c in changes),
                changed_files=len(changes),
            )
        return body

    def commit_json(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        body: dict[str, Any] = self._rebased(
            self.description.example("commit-items")[0], repo.full_name
        )
        body = json.loads(
            json.dumps(body).replace("6dcb09b5b57875f334f61aebed695e2e4193db5e", commit.sha)
        )
        person = {
            "name": commit.author.login,
            "email": f"{commit.author.login}@example.com",
            "date": iso(commit.timestamp),
        }
        body.update(
            node_id=node_id("Commit", int(commit.sha[:8], 16)),
            author=self.user_json(commit.author),
            committer=self.user_json(commit.author),
            parents=[
                {
                    "sha": p,
                    "url": f"{self.url}/repos/{repo.full_name}/commits/{p}",
                    "html_url": f"https://github.com/{repo.full_name}/commit/{p}",
                }
                for p in commit.parents
            ],
        )
        body["commit"].update(author=person, committer=person, message=commit.message)
        return body

    def diff_entry_json(self, repo: Repo, head_sha: str, change: FileChange) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sha": change.sha,
            "filename": change.filename,
            "status": change.status,
            "additions": change.additions,
            "deletions": change.deletions,
            "changes": change.additions + change.deletions,
            "blob_url": f"https://github.com/{repo.full_name}/blob/{head_sha}/{change.filename}",
            "raw_url": f"https://github.com/{repo.full_name}/raw/{head_sha}/{change.filename}",
            "contents_url": (
                f"{self.url}/repos/{repo.full_name}/contents/{change.filename}?ref={head_sha}"
            ),
        }
        if change.patch is not None:
            body["patch"] = change.patch
        return body

    def content_json(
        self, repo: Repo, commit: Commit, path: str, *, with_content: bool
    ) -> dict[str, Any]:
        data = commit.files.get(path)
        api = f"{self.url}/repos/{repo.full_name}/contents/{path}?ref={commit.sha}"
        sha = blob_sha(data) if data is not None else hashlib.sha1(path.encode()).hexdigest()
        body: dict[str, Any] = {
            "type": "file" if data is not None else "dir",
            "size": len(data) if data is not None else 0,
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": api,
            "git_url": f"{self.url}/repos/{repo.full_name}/git/blobs/{sha}",
            "html_url": f"https://github.com/{repo.full_name}/blob/{commit.sha}/{path}",
            "download_url": f"https://raw.githubusercontent.com/{repo.full_name}/{commit.sha}/{path}"
            if data is not None
            else None,
            "_links": {
                "self": api,
                "git": f"{self.url}/repos/{repo.full_name}/git/blobs/{sha}",
                "html": f"https://github.com/{repo.full_name}/blob/{commit.sha}/{path}",
            },
        }
        if with_content and data is not None:
            encoded = base64.b64encode(data).decode()
            body["encoding"] = "base64"
            # GitHub wraps the base64 text at 60 characters.
            body["content"] = (
                "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)) + "\n"
            )
        return body

    def issue_comment_json(self, comment: IssueComment) -> dict[str, Any]:
        repo = self.repos[comment.repo]
        body: dict[str, Any] = self._rebased(
            self.description.example("issue-comment"), repo.full_name
        )
        counts = {
            c: sum(1 for r in comment.reactions if r.content == c)
            for c in ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
        }
        body.update(
            id=comment.id,
            node_id=node_id("IssueComment", comment.id),
            url=f"{self.url}/repos/{repo.full_name}/issues/comments/{comment.id}",
            html_url=f"https://github.com/{repo.full_name}/pull/{comment.issue_number}#issuecomment-{comment.id}",
            body=comment.body,
            user=self.user_json(comment.user),
            created_at=iso(comment.created_at),
            updated_at=iso(comment.updated_at),
            issue_url=f"{self.url}/repos/{repo.full_name}/issues/{comment.issue_number}",
            author_association=self._association(repo, comment.user),
            reactions={
                "url": f"{self.url}/repos/{repo.full_name}/issues/comments/{comment.id}/reactions",
                "total_count": len(comment.reactions),
                **counts,
            },
        )
        return body

    def _association(self, repo: Repo, user: User) -> str:
        if user.login == repo.owner.login:
            return "OWNER"
        if user.login in repo.collaborators:
            return "COLLABORATOR"
        return "NONE"

    def reaction_json(self, reaction: Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": node_id("Reaction", reaction.id),
            "user": self.user_json(reaction.user),
            "content": reaction.content,
            "created_at": iso(reaction.created_at),
        }

    def review_comment_json(self, repo: Repo, comment: ReviewComment) -> dict[str, Any]:
        body: dict[str, Any] = self._rebased(
            self.description.example("pull-request-review-comment-2"), repo.full_name
        )
        api = f"{self.url}/repos/{repo.full_name}/pulls/comments/{comment.id}"
        html = f"https://github.com/{repo.full_name}/pull/{comment.pull_number}#discussion_r{comment.id}"
        pull_api = f"{self.url}/repos/{repo.full_name}/pulls/{comment.pull_number}"
        body.update(
            url=api,
            pull_request_review_id=comment.review_id,
            id=comment.id,
            node_id=node_id("PullRequestReviewComment", comment.id),
            diff_hunk=comment.diff_hunk,
            path=comment.path,
            position=comment.position,
            original_position=comment.position,
            commit_id=comment.commit_id,
            original_commit_id=comment.original_commit_id,
            user=self.user_json(comment.user),
            body=comment.body,
            created_at=iso(comment.created_at),
            updated_at=iso(comment.updated_at),
            html_url=html,
            pull_request_url=pull_api,
            author_association=self._association(repo, comment.user),
            _links={
                "self": {"href": api},
                "html": {"href": html},
                "pull_request": {"href": pull_api},
            },
            start_line=comment.start_line,
            original_start_line=comment.start_line,
            start_side=comment.start_side,
            line=comment.line,
            original_line=comment.line,
            side=comment.side,
            subject_type=comment.subject_type,
        )
        if comment.position is None:
            del body["position"], body["original_position"]
        if comment.in_reply_to_id is None:
            body.pop("in_reply_to_id", None)
        else:
            body["in_reply_to_id"] = comment.in_reply_to_id
        return body

    def review_json(self, repo: Repo, review: Review) -> dict[str, Any]:
        body: dict[str, Any] = self._rebased(
            self.description.example("pull-request-review"), repo.full_name
        )
        html = f"https://github.com/{repo.full_name}/pull/{review.pull_number}#pullrequestreview-{review.id}"
        pull_api = f"{self.url}/repos/{repo.full_name}/pulls/{review.pull_number}"
        body.update(
            id=review.id,
            node_id=node_id("PullRequestReview", review.id),
            user=self.user_json(review.user),
            body=review.body,
            state=review.state,
            html_url=html,
            pull_request_url=pull_api,
            _links={"html": {"href": html}, "pull_request": {"href": pull_api}},
            commit_id=review.commit_id,
            author_association=self._association(repo, review.user),
        )
        if review.submitted_at is None:
            body.pop("submitted_at", None)
        else:
            body["submitted_at"] = iso(review.submitted_at)
        return body
