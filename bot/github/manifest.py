"""GitHub's App manifest flow, GitHub's side: the manifest, where to post it, the conversion.

The manifest is bot/app.yml (the one source of the App's permissions and events) with what
only the person creating the App knows: its name, its webhook URL and where GitHub sends
the browser back (`redirect_url`). `convert` exchanges the code GitHub gives that redirect
for the App's credentials (`POST /app-manifests/{code}/conversions`, no authentication: the
code, valid an hour and once, is the credential).

Blocking I/O on purpose (urllib): `migsafe app create` is a one-shot command, and this keeps
the service stack (aiohttp, gidgethub) out of it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from bot.errors import UserError

GITHUB_COM = "https://github.com"
API_VERSION = "2022-11-28"
TIMEOUT_S = 30.0
# What of app.yml goes into the manifest unchanged (the rest is the command's).
MANIFEST_KEYS = ("name", "url", "description", "public", "default_permissions", "default_events")


@dataclass(frozen=True)
class GitHubHost:
    """Where the web pages are (the new-App form) and where the REST API is."""

    web_url: str
    api_url: str

    def new_app_url(self, org: str | None) -> str:
        """The form the manifest is posted to: the organization's, else the signed-in user's."""
        if org is None:
            return f"{self.web_url}/settings/apps/new"
        return f"{self.web_url}/organizations/{quote(org, safe='')}/settings/apps/new"


def github_host(web_url: str) -> GitHubHost:
    """github.com's API is api.github.com, GHE.com's api.<host>, GitHub Enterprise Server's
    <host>/api/v3."""
    parts = urlsplit(web_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"--github-url must be an http(s) URL, not {web_url!r}")
    web = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    host = parts.netloc.lower()
    if host == "github.com":
        return GitHubHost(web, "https://api.github.com")
    if host.endswith(".ghe.com") and not parts.path.strip("/"):
        return GitHubHost(web, f"{parts.scheme}://api.{parts.netloc}")
    return GitHubHost(web, f"{web}/api/v3")


def app_yml() -> dict[str, Any]:
    """bot/app.yml, as the package ships it."""
    text = resources.files("bot").joinpath("app.yml").read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise RuntimeError("bot/app.yml is not a mapping")
    return loaded


def build_manifest(
    base: dict[str, Any], *, name: str | None, webhook_url: str, redirect_url: str
) -> dict[str, Any]:
    """The manifest GitHub's form takes: app.yml's keys, the webhook URL and the redirect."""
    manifest = {key: base[key] for key in MANIFEST_KEYS if key in base}
    if name:
        manifest["name"] = name
    hook = dict(base.get("hook_attributes") or {})
    manifest["hook_attributes"] = {**hook, "url": webhook_url, "active": True}
    manifest["redirect_url"] = redirect_url
    return manifest


@dataclass(frozen=True)
class CreatedApp:
    """What the conversion gives: once, and never again from GitHub."""

    id: int
    slug: str
    name: str
    owner: str
    html_url: str
    pem: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def from_response(cls, data: Any) -> CreatedApp:
        try:
            created = cls(
                id=int(data["id"]),
                slug=str(data["slug"]),
                name=str(data["name"]),
                owner=str((data.get("owner") or {}).get("login", "")),
                html_url=str(data["html_url"]),
                pem=_text(data["pem"]),
                webhook_secret=_text(data["webhook_secret"]),
                client_id=_text(data["client_id"]),
                client_secret=_text(data["client_secret"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            # The message names the field at most; the body holds secrets.
            raise UserError(f"GitHub's answer to the conversion lacks the App's {error}") from error
        return created


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("credentials")
    return value


def convert(api_url: str, code: str, *, user_agent: str = "migsafe") -> CreatedApp:
    """`POST /app-manifests/{code}/conversions`: the App's id, key and secrets."""
    request = urllib.request.Request(
        f"{api_url}/app-manifests/{quote(code, safe='')}/conversions",
        data=b"",
        method="POST",
        headers={
            "accept": "application/vnd.github+json",
            "content-type": "application/json",
            "user-agent": user_agent,
            "x-github-api-version": API_VERSION,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise UserError(
                "GitHub does not know the code it sent back (it is valid one hour, once): "
                "run `migsafe app create` again"
            ) from error
        raise UserError(
            f"GitHub answered {error.code} to POST {api_url}/app-manifests/…/conversions"
        ) from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"cannot reach GitHub's API at {api_url}: {reason}") from error
    try:
        data = json.loads(body)
    except ValueError as error:
        raise UserError(f"{api_url} did not answer the conversion with JSON") from error
    return CreatedApp.from_response(data)
