"""The fake GitHub's side of the GitHub App manifest flow (what `migsafe app create` drives).

1. A browser POSTs the form field `manifest` (the App's JSON manifest) to GitHub's web page
   `/settings/apps/new` (a personal account) or `/organizations/{org}/settings/apps/new`, with
   `?state=` in the URL. GitHub shows the person the App to create; they confirm, and GitHub
   redirects the browser to the manifest's `redirect_url` with `?code=...&state=...`. The fake
   redirects at once (the confirmation is the person's step, not the program's) after checking
   the manifest as GitHub's page does; a manifest it would refuse is a violation.
2. `POST /app-manifests/{code}/conversions` (REST, no credentials: the code is one), validated
   against GitHub's description like every operation, answers 201 with the new App, its
   private key (`pem`), `webhook_secret`, `client_id` and `client_secret`: once per code, within
   the hour, else 404. From then on the fake is that App: its id and key sign the App's JWT.

`FakeGitHub` inherits `ManifestFlow`; `owner_login` of the form is the organization, or
`web_login` (the person signed in to the fake's web pages) for a personal account.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:
    from tests.fakegithub.server import Caller, FakeGitHub, RecordedRequest, Reply

CODE_LIFETIME_SECONDS = 3600  # "You must complete all three steps ... within one hour."
# The web pages that take a manifest: a personal account's, an organization's.
NEW_APP_PAGE = re.compile(r"^(?:/organizations/(?P<org>[^/]+))?/settings/apps/new/?$")
MANIFEST_KEYS = frozenset(
    {
        "name",
        "url",
        "description",
        "hook_attributes",
        "redirect_url",
        "callback_urls",
        "setup_url",
        "public",
        "default_permissions",
        "default_events",
        "request_oauth_on_install",
        "setup_on_update",
    }
)
ACCESS_LEVELS = frozenset({"read", "write", "admin"})


@dataclass
class PendingApp:
    """A manifest the browser posted, waiting for its code's conversion."""

    manifest: dict[str, Any]
    owner_login: str
    owner_type: str
    created_at: float
    converted: bool = False


@dataclass(frozen=True)
class CreatedApp:
    id: int
    slug: str
    owner: str
    manifest: dict[str, Any]


def manifest_problems(manifest: Any) -> list[str]:
    """Why GitHub's page would refuse `manifest` (empty: it would not)."""
    if not isinstance(manifest, dict):
        return ["the manifest is not a JSON object"]
    problems = [f"unknown manifest key {key!r}" for key in sorted(set(manifest) - MANIFEST_KEYS)]
    if not _http_url(manifest.get("url")):
        problems.append("`url` (the App's homepage) is required, an http(s) URL")
    hook = manifest.get("hook_attributes")
    if hook is not None and (not isinstance(hook, dict) or not _http_url(hook.get("url"))):
        problems.append("`hook_attributes.url` must be an http(s) URL")
    for key in ("redirect_url", "setup_url"):
        if key in manifest and not _http_url(manifest[key]):
            problems.append(f"`{key}` must be an http(s) URL")
    if not isinstance(manifest.get("name", ""), str):
        problems.append("`name` must be a string")
    if not isinstance(manifest.get("public", False), bool):
        problems.append("`public` must be true or false")
    permissions = manifest.get("default_permissions", {})
    if not isinstance(permissions, dict) or any(
        not isinstance(level, str) or level not in ACCESS_LEVELS for level in permissions.values()
    ):
        problems.append("`default_permissions` must map permissions to read, write or admin")
    events = manifest.get("default_events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        problems.append("`default_events` must be a list of event names")
    return problems


def _http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"


class ManifestFlow:
    """Mixed into FakeGitHub: the new-App web form and the code's conversion."""

    # FakeGitHub provides the rest (url, description, now, user, user_json, _violate, ...).
    web_login = "octocat"  # who is signed in to the fake's web pages

    def __init__(self) -> None:
        self.pending_manifests: dict[str, PendingApp] = {}
        self.created_apps: list[CreatedApp] = []

    def _new_app_form(self: FakeGitHub, record: RecordedRequest, body: bytes) -> Reply | None:
        """The answer to a POST of GitHub's new-App page, or None for any other request."""
        from tests.fakegithub.server import Reply

        match = NEW_APP_PAGE.match(record.path)
        if record.method != "POST" or match is None:
            return None
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        problems = ["no `manifest` form field"] if "manifest" not in form else []
        manifest: Any = None
        if not problems:
            try:
                manifest = json.loads(form["manifest"][0])
            except ValueError:
                problems = ["the `manifest` form field is not JSON"]
            else:
                problems = manifest_problems(manifest)
        if problems:
            self._violate(record, "new App page: " + "; ".join(problems))
            return Reply(422, ("\n".join(problems)).encode(), content_type="text/plain")
        org = match.group("org")
        code = secrets.token_hex(10)
        self.pending_manifests[code] = PendingApp(
            manifest,
            owner_login=org or self.web_login,
            owner_type="Organization" if org else "User",
            created_at=self.now(),
        )
        redirect = manifest.get("redirect_url")
        if redirect is None:  # GitHub then shows the App's page: nothing for a program to see
            return Reply(200, b"App created", content_type="text/html")
        answer = {
            "code": code,
            **({"state": record.query["state"]} if "state" in record.query else {}),
        }
        separator = "&" if urlsplit(redirect).query else "?"
        return Reply(302, None, {"location": f"{redirect}{separator}{urlencode(answer)}"})

    def _op_apps_create_from_manifest(
        self: FakeGitHub, route: Any, record: RecordedRequest, caller: Caller
    ) -> Reply:
        from tests.fakegithub.server import GitHubError, Reply, iso, node_id

        pending = self.pending_manifests.get(route.path_params["code"])
        if (
            pending is None
            or pending.converted
            or pending.created_at + CODE_LIFETIME_SECONDS <= self.now()
        ):
            raise GitHubError(404, "Not Found")
        pending.converted = True
        manifest = pending.manifest
        name = manifest.get("name") or f"{pending.owner_login}-app"
        slug = _slug(name)
        owner = self.user(pending.owner_login, pending.owner_type)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # The fake becomes the new App: its JWTs are now the ones it accepts.
        self.app_id, self.app_slug, self._private_key = self._next_id(), slug, key
        self.app_owner, self.bot_user = owner, self.user(f"{slug}[bot]", "Bot")
        self.created_apps.append(CreatedApp(self.app_id, slug, owner.login, manifest))
        hook = manifest.get("hook_attributes")
        body: dict[str, Any] = self.description.example("integration-from-manifest")
        body.update(
            id=self.app_id,
            slug=slug,
            node_id=node_id("Integration", self.app_id),
            owner=self.user_json(owner),
            name=name,
            description=manifest.get("description", ""),
            external_url=manifest["url"],
            html_url=f"{self.url}/apps/{slug}",
            created_at=iso(self.now()),
            updated_at=iso(self.now()),
            permissions=dict(manifest.get("default_permissions", {})),
            events=list(manifest.get("default_events", [])),
            client_id=f"Iv1.{secrets.token_hex(8)}",
            client_secret=secrets.token_hex(20),
            webhook_secret=secrets.token_hex(20) if hook else None,
            pem=self.private_key_pem,
        )
        return Reply(201, body)
