"""Signed webhook deliveries built from GitHub's real payload examples.

Each builder starts from an octokit/webhooks example in `../shared/github/webhooks/` (see its
PROVENANCE.md) and puts the fake's state in: repository and owner, pull request number, head and
base refs and shas, users, `installation.id`. The result keeps the real payload's shape; the
fake's tests validate every builder's output against the octokit JSON schemas of the event.

Builders take the `FakeGitHub` first (they read users and repositories from its state).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.fakegithub import WEBHOOKS_RELATIVE, require_shared_github_dir
from tests.fakegithub.server import (
    CheckRun,
    FakeGitHub,
    Installation,
    IssueComment,
    Pull,
    Repo,
    Review,
    Team,
    User,
    iso,
    node_id,
)

Payload = dict[str, Any]
REVIEW_STATES = {
    "APPROVED": "approved",
    "CHANGES_REQUESTED": "changes_requested",
    "COMMENTED": "commented",
    "DISMISSED": "dismissed",
}


def webhooks_dir() -> Path:
    return require_shared_github_dir() / WEBHOOKS_RELATIVE


def load_example(name: str) -> Payload:
    """`webhooks/<name>.json`, e.g. 'pull_request.opened' or 'ping.with-app_id'."""
    data: Payload = json.loads((webhooks_dir() / f"{name}.json").read_text(encoding="utf-8"))
    return data


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery(
    event: str, payload: Mapping[str, Any], secret: str, *, delivery_id: str | None = None
) -> tuple[dict[str, str], bytes]:
    """The headers and body GitHub sends for one delivery, signed with `secret`."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/fake",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "109948940",
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-Hub-Signature-256": signature(body, secret),
    }
    installation = payload.get("installation")
    if isinstance(installation, Mapping):
        headers["X-GitHub-Hook-Installation-Target-ID"] = str(installation.get("id"))
    return headers, body


# ----- schema validation ------------------------------------------------------------------


@functools.cache
def _schema_registry(schemas_dir: Path) -> Registry:
    resources = []
    for path in sorted(schemas_dir.rglob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append(
            (contents["$id"], Resource.from_contents(contents, default_specification=DRAFT7))
        )
    registry: Registry = Registry().with_resources(resources)
    return registry


def webhook_schema_path(event: str, action: str | None) -> Path | None:
    name = "ping" if event == "ping" else f"{event}.{action}"
    path = webhooks_dir() / "schemas" / f"{name}.schema.json"
    return path if path.is_file() else None


def validate_webhook(event: str, payload: Mapping[str, Any]) -> list[str]:
    """Problems of `payload` against the octokit schema of `event` and its action (draft-07,
    every schema registered under its `$id`; the `tsAdditionalProperties` keyword is ignored)."""
    schemas_dir = webhooks_dir() / "schemas"
    schema_path = webhook_schema_path(event, payload.get("action"))
    if schema_path is None:
        raise LookupError(f"no octokit schema for {event} {payload.get('action')}")
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = Draft7Validator(schema, registry=_schema_registry(schemas_dir))
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message[:300]}"
        for error in validator.iter_errors(payload)
    ]


# ----- adapting example objects to the fake's state ----------------------------------------


def _replace_in_strings(obj: Any, old: str, new: str) -> Any:
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, list):
        return [_replace_in_strings(item, old, new) for item in obj]
    if isinstance(obj, dict):
        return {key: _replace_in_strings(value, old, new) for key, value in obj.items()}
    return obj


def _user(example: Payload, user: User) -> Payload:
    adapted: Payload = _replace_in_strings(example, f"/{example['login']}", f"/{user.login}")
    adapted.update(
        login=user.login, id=user.id, node_id=node_id(user.type, user.id), type=user.type
    )
    return adapted


def _repository(example: Payload, repo: Repo) -> Payload:
    adapted: Payload = _replace_in_strings(example, example["full_name"], repo.full_name)
    adapted.update(
        id=repo.id,
        node_id=node_id("Repository", repo.id),
        name=repo.name,
        full_name=repo.full_name,
        private=repo.private,
        fork=repo.fork_of is not None,
        default_branch=repo.default_branch,
        owner=_user(example["owner"], repo.owner),
    )
    if "master_branch" in adapted:
        adapted["master_branch"] = repo.default_branch
    if "visibility" in adapted:
        adapted["visibility"] = "private" if repo.private else "public"
    return adapted


def _organization(example: Payload, org: User) -> Payload:
    adapted: Payload = _replace_in_strings(example, f"/{example['login']}", f"/{org.login}")
    adapted.update(login=org.login, id=org.id, node_id=node_id("Organization", org.id))
    return adapted


def _envelope(
    fake: FakeGitHub,
    payload: Payload,
    repo: Repo | None,
    sender: User,
    installation_id: int | None,
) -> Payload:
    """Repository, organization, sender and installation of any event."""
    if repo is not None and "repository" in payload:
        payload["repository"] = _repository(payload["repository"], repo)
    if "organization" in payload:
        if repo is not None and repo.owner.type != "Organization":
            del payload["organization"]
        elif repo is not None:
            payload["organization"] = _organization(payload["organization"], repo.owner)
    payload["sender"] = _user(payload["sender"], sender)
    if installation_id is not None:
        payload["installation"] = {
            "id": installation_id,
            "node_id": node_id("Integration::Installation", installation_id),
        }
    return payload


def _pull_request(fake: FakeGitHub, example: Payload, repo: Repo, pull: Pull) -> Payload:
    old_number = example["number"]
    adapted: Payload = _replace_in_strings(example, f"/{old_number}", f"/{pull.number}")
    head_repo = fake.repos[pull.head_repo]
    adapted.update(
        id=pull.id,
        node_id=node_id("PullRequest", pull.id),
        number=pull.number,
        state=pull.state,
        title=pull.title,
        body=pull.body,
        draft=pull.draft,
        user=_user(example["user"], pull.user),
        created_at=iso(pull.created_at),
        updated_at=iso(pull.updated_at),
    )
    if "labels" in adapted:
        adapted["labels"] = [fake.label_json(repo, repo.labels[name]) for name in pull.labels]
    for side, ref, sha, source in (
        ("head", pull.head_ref, pull.head_sha, head_repo),
        ("base", pull.base_ref, pull.base_sha, repo),
    ):
        part = adapted[side]
        part.update(
            label=f"{source.owner.login}:{ref}",
            ref=ref,
            sha=sha,
            user=_user(part["user"], source.owner),
            repo=_repository(part["repo"], source),
        )
    adapted = _replace_in_strings(adapted, example["base"]["repo"]["full_name"], repo.full_name)
    return adapted


# ----- builders ---------------------------------------------------------------------------


def pull_request_event(
    fake: FakeGitHub,
    action: str,
    repo: Repo,
    pr: Pull,
    installation_id: int,
    *,
    sender: User | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Payload:
    """`pull_request` with `action` (opened, synchronize, reopened, closed, labeled from their
    examples; edited, ready_for_review and others from the `opened` example with the action
    changed). For `edited`, pass `changes`, e.g. {"base": {"ref": {"from": "main"},
    "sha": {"from": "<sha>"}}}."""
    known = {"opened", "synchronize", "reopened", "closed", "labeled"}
    payload = load_example(f"pull_request.{action if action in known else 'opened'}")
    payload["action"] = action
    payload["number"] = pr.number
    payload["pull_request"] = _pull_request(fake, payload["pull_request"], repo, pr)
    if action == "closed":
        payload["pull_request"].update(state="closed", closed_at=iso(fake.now()), merged=False)
        payload["pull_request"].update(merged_at=None, merged_by=None)
    if action == "synchronize":
        commits = fake._pull_commits(repo, pr)
        payload["before"] = commits[-2].sha if len(commits) > 1 else pr.base_sha
        payload["after"] = pr.head_sha
    if action == "edited":
        payload["changes"] = dict(changes or {})
    return _envelope(fake, payload, repo, sender or pr.user, installation_id)


def review_event(
    fake: FakeGitHub,
    repo: Repo,
    pr: Pull,
    review: Review,
    installation_id: int,
    *,
    action: str = "submitted",
) -> Payload:
    """`pull_request_review` (submitted, dismissed; edited from the submitted example)."""
    payload = load_example(
        f"pull_request_review.{action if action in ('submitted', 'dismissed') else 'submitted'}"
    )
    payload["action"] = action
    example_review = payload["review"]
    adapted = _replace_in_strings(
        example_review, f"/{payload['pull_request']['number']}", f"/{pr.number}"
    )
    adapted.update(
        id=review.id,
        node_id=node_id("PullRequestReview", review.id),
        user=_user(example_review["user"], review.user),
        body=review.body or None,
        commit_id=review.commit_id,
        state="dismissed"
        if action == "dismissed"
        else REVIEW_STATES.get(review.state, review.state.lower()),
        submitted_at=iso(review.submitted_at or fake.now()),
        author_association=fake._association(repo, review.user),
    )
    payload["review"] = _replace_in_strings(
        adapted, payload["repository"]["full_name"], repo.full_name
    )
    payload["pull_request"] = _pull_request(fake, payload["pull_request"], repo, pr)
    if action == "edited":
        payload["changes"] = {"body": {"from": ""}}
    return _envelope(fake, payload, repo, review.user, installation_id)


def issue_comment_on_pr(
    fake: FakeGitHub,
    repo: Repo,
    pr: Pull,
    comment: IssueComment,
    installation_id: int,
) -> Payload:
    """`issue_comment` created on pull request `pr`. The examples are all comments on plain
    issues, so this adds `issue.pull_request`, which GitHub sets for pull requests."""
    payload = load_example("issue_comment.created.with-installation")
    old_full_name = payload["repository"]["full_name"]
    issue = _replace_in_strings(payload["issue"], f"/{payload['issue']['number']}", f"/{pr.number}")
    issue = _replace_in_strings(issue, old_full_name, repo.full_name)
    issue.update(
        id=pr.id,
        node_id=node_id("PullRequest", pr.id),
        number=pr.number,
        title=pr.title,
        body=pr.body,
        state=pr.state,
        user=_user(payload["issue"]["user"], pr.user),
        labels=[fake.label_json(repo, repo.labels[n]) for n in pr.labels],
        comments=len(fake.comments(repo.full_name, pr.number)),
        pull_request={
            "url": f"{fake.url}/repos/{repo.full_name}/pulls/{pr.number}",
            "html_url": f"https://github.com/{repo.full_name}/pull/{pr.number}",
            "diff_url": f"https://github.com/{repo.full_name}/pull/{pr.number}.diff",
            "patch_url": f"https://github.com/{repo.full_name}/pull/{pr.number}.patch",
            "merged_at": None,
        },
    )
    payload["issue"] = issue
    rendered = fake.issue_comment_json(comment)
    example_comment = payload["comment"]
    example_comment.update(
        {key: rendered[key] for key in ("url", "html_url", "issue_url", "id", "node_id", "body")},
        user=_user(example_comment["user"], comment.user),
        created_at=iso(comment.created_at),
        updated_at=iso(comment.updated_at),
        author_association=rendered["author_association"],
    )
    return _envelope(fake, payload, repo, comment.user, installation_id)


def check_run_event(
    fake: FakeGitHub,
    action: str,
    run: CheckRun,
    installation_id: int,
    *,
    sender: User | None = None,
    requested_action: str | None = None,
) -> Payload:
    """`check_run` (rerequested, requested_action, created, completed) for a run the bot made."""
    name = {
        "rerequested": "check_run.rerequested.with-organization",
        "requested_action": "check_run.requested_action",
        "created": "check_run.created.with-organization",
        "completed": "check_run.completed.with-organization",
    }[action]
    payload = load_example(name)
    repo = fake.repos[run.repo]
    rendered = fake.check_run_json(run)
    check_run = payload["check_run"]
    check_run.update(
        {
            key: rendered[key]
            for key in (
                "id",
                "node_id",
                "head_sha",
                "external_id",
                "url",
                "html_url",
                "status",
                "conclusion",
                "started_at",
                "completed_at",
                "name",
            )
        }
    )
    if "details_url" in check_run:
        check_run["details_url"] = run.details_url or rendered["html_url"]
    check_run["output"].update(
        title=run.output.get("title"),
        summary=run.output.get("summary"),
        text=run.output.get("text"),
        annotations_count=len(run.annotations),
        annotations_url=rendered["output"]["annotations_url"],
    )
    check_run["app"] = _app(fake, check_run["app"])
    check_run["pull_requests"] = rendered["pull_requests"]
    suite = check_run["check_suite"]
    pulls = [p for p in repo.pulls.values() if p.head_sha == run.head_sha]
    suite.update(
        id=run.check_suite_id,
        head_sha=run.head_sha,
        head_branch=pulls[0].head_ref if pulls else None,
        pull_requests=rendered["pull_requests"],
        app=_app(fake, suite["app"]),
        after=run.head_sha,
        before=pulls[0].base_sha if pulls else None,
    )
    if "status" in suite:
        suite["status"] = "completed" if run.status == "completed" else "queued"
        suite["conclusion"] = run.conclusion if run.status == "completed" else None
    if action == "requested_action":
        payload["requested_action"] = {"identifier": requested_action or "rerun"}
    return _envelope(fake, payload, repo, sender or fake.user("octocat"), installation_id)


def _app(fake: FakeGitHub, example: Payload) -> Payload:
    app = dict(example)
    app.update(
        id=fake.app_id,
        slug=fake.app_slug,
        name=fake.app_slug,
        node_id=node_id("Integration", fake.app_id),
    )
    return app


def check_suite_event(
    fake: FakeGitHub,
    action: str,
    repo: Repo,
    head_sha: str,
    installation_id: int,
    *,
    head_branch: str | None = None,
    pulls: Iterable[Pull] = (),
    sender: User | None = None,
) -> Payload:
    """`check_suite` requested or rerequested for `head_sha`."""
    payload = load_example(f"check_suite.{action}")
    suite = payload["check_suite"]
    minimal = [fake.pull_minimal_json(repo, p) for p in pulls]
    suite.update(
        id=fake._next_id(),
        head_sha=head_sha,
        head_branch=head_branch,
        after=head_sha,
        pull_requests=minimal,
        app=_app(fake, suite["app"]),
        url=f"{fake.url}/repos/{repo.full_name}/check-suites/{suite['id']}",
    )
    if "head_commit" in suite:
        commit = repo.commits[head_sha]
        suite["head_commit"].update(id=head_sha, tree_id=head_sha, message=commit.message)
    payload = _replace_in_strings(payload, payload["repository"]["full_name"], repo.full_name)
    return _envelope(fake, payload, repo, sender or fake.user("octocat"), installation_id)


def membership_event(
    fake: FakeGitHub,
    action: str,
    org: str,
    team: Team,
    member: str,
    installation_id: int,
    *,
    sender: User | None = None,
) -> Payload:
    """`membership` added or removed: `member` joined or left `team` of `org`."""
    payload = load_example(
        f"membership.{'added' if action == 'added' else 'removed.with-installation'}"
    )
    payload["action"] = action
    organization = fake.orgs[org].user
    example_team = payload["team"]
    adapted = _replace_in_strings(example_team, f"/{example_team['slug']}", f"/{team.slug}")
    adapted = _replace_in_strings(adapted, f"/{payload['organization']['login']}/", f"/{org}/")
    adapted.update(id=team.id, node_id=node_id("Team", team.id), slug=team.slug, name=team.name)
    payload["team"] = adapted
    payload["member"] = _user(payload["member"], fake.user(member))
    payload["organization"] = _organization(payload["organization"], organization)
    return _envelope(fake, payload, None, sender or fake.user("octocat"), installation_id)


def installation_event(fake: FakeGitHub, action: str, installation: Installation) -> Payload:
    """`installation` created or deleted."""
    payload = load_example(f"installation.{action}")
    payload["installation"] = _installation(fake, payload["installation"], installation)
    payload["repositories"] = [_repo_lite(r) for r in _installed_repos(fake, installation)]
    return _envelope(fake, payload, None, installation.account, None)


def installation_repositories_event(
    fake: FakeGitHub,
    installation: Installation,
    *,
    added: Iterable[Repo] = (),
    removed: Iterable[Repo] = (),
) -> Payload:
    payload = load_example("installation_repositories.added")
    payload["action"] = "added" if added else "removed"
    payload["installation"] = _installation(fake, payload["installation"], installation)
    payload["repositories_added"] = [_repo_lite(r) for r in added]
    payload["repositories_removed"] = [_repo_lite(r) for r in removed]
    payload["repository_selection"] = payload["installation"]["repository_selection"]
    payload["requester"] = None
    return _envelope(fake, payload, None, installation.account, None)


def _installed_repos(fake: FakeGitHub, installation: Installation) -> list[Repo]:
    return [r for r in fake.repos.values() if installation.covers(r.full_name)]


def _repo_lite(repo: Repo) -> Payload:
    return {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
    }


def _installation(fake: FakeGitHub, example: Payload, installation: Installation) -> Payload:
    adapted = copy.deepcopy(example)
    adapted.update(
        id=installation.id,
        account=_user(example["account"], installation.account),
        repository_selection="all" if installation.repositories is None else "selected",
        access_tokens_url=f"{fake.url}/app/installations/{installation.id}/access_tokens",
        html_url=f"https://github.com/settings/installations/{installation.id}",
        app_id=fake.app_id,
        target_id=installation.account.id,
        target_type=installation.account.type,
        created_at=int(installation.created_at),
        updated_at=int(installation.created_at),
    )
    if "app_slug" in adapted:
        adapted["app_slug"] = fake.app_slug
    return adapted


def ping(fake: FakeGitHub) -> Payload:
    """`ping`, as GitHub sends it to an app's webhook when the app is created."""
    payload = load_example("ping.with-app_id")
    payload["hook"]["app_id"] = fake.app_id
    return payload
