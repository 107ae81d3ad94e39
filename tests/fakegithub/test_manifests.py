"""The fake's App manifest flow: GitHub's new-App page redirects with a code and the state,
the code converts once into the App's credentials (validated against GitHub's description),
and the fake then is that App. A manifest GitHub's page would refuse is a violation."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from gidgethub import BadRequest
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_jwt

from tests.fakegithub.manifests import CODE_LIFETIME_SECONDS
from tests.fakegithub.server import FakeGitHub

pytestmark = pytest.mark.asyncio

MANIFEST: dict[str, Any] = {
    "name": "migsafe-acme",
    "url": "https://github.com/migsafe/migsafe",
    "hook_attributes": {"url": "https://migsafe.example.com/webhook", "active": True},
    "redirect_url": "http://127.0.0.1:5000/callback",
    "public": False,
    "default_permissions": {"checks": "write", "metadata": "read"},
    "default_events": ["pull_request"],
}
NO_MANIFEST_FLOW = (
    "GitHub's description of POST /app-manifests/{code}/conversions is not in ../shared's cut "
    "and the pinned npm packages cannot be fetched"
)


@pytest.fixture(autouse=True)
def _described(fake: FakeGitHub) -> None:
    if not fake.description.has_operation("apps/create-from-manifest"):
        pytest.skip(NO_MANIFEST_FLOW)


async def post_manifest(
    session: aiohttp.ClientSession, url: str, manifest: Any, state: str = "s1"
) -> aiohttp.ClientResponse:
    form = {"manifest": json.dumps(manifest)}
    async with session.post(f"{url}?state={state}", data=form, allow_redirects=False) as answer:
        await answer.read()
        return answer


async def code_for(session: aiohttp.ClientSession, fake: FakeGitHub) -> str:
    answer = await post_manifest(
        session, f"{fake.url}/organizations/acme/settings/apps/new", MANIFEST
    )
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


async def test_the_page_redirects_with_a_code_and_the_state(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    answer = await post_manifest(
        session, f"{fake.url}/organizations/acme/settings/apps/new", MANIFEST, state="xyz"
    )
    assert answer.status == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == MANIFEST["redirect_url"]
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"] and len(query["code"][0]) >= 16


async def test_a_code_converts_once_into_the_apps_credentials(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    code = await code_for(session, fake)
    api = GitHubAPI(session, "migsafe-tests", base_url=fake.url)
    app = await api.post(f"/app-manifests/{code}/conversions", data=b"")
    assert app["name"] == "migsafe-acme" and app["slug"] == "migsafe-acme"
    assert app["owner"]["login"] == "acme" and app["owner"]["type"] == "Organization"
    assert app["permissions"] == MANIFEST["default_permissions"]
    assert app["events"] == ["pull_request"]
    assert app["pem"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert app["webhook_secret"] and app["client_secret"] and app["client_id"]
    assert fake.created_apps[-1].id == app["id"]
    # The fake is now that App: a JWT from the returned id and key is accepted.
    jwt = get_jwt(app_id=str(app["id"]), private_key=app["pem"])
    assert (await api.getitem("/app", jwt=jwt))["slug"] == "migsafe-acme"
    assert await refused_status(api, code) == 404  # once only


async def refused_status(api: GitHubAPI, code: str) -> int:
    with pytest.raises(BadRequest) as refused:
        await api.post(f"/app-manifests/{code}/conversions", data=b"")
    return int(refused.value.status_code)


async def test_an_unknown_or_expired_code_is_404(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    api = GitHubAPI(session, "migsafe-tests", base_url=fake.url)
    assert await refused_status(api, "nope") == 404
    code = await code_for(session, fake)
    fake.advance_time(CODE_LIFETIME_SECONDS + 1)
    assert await refused_status(api, code) == 404


async def test_a_personal_account_and_the_enterprise_server_api_prefix(
    fake: FakeGitHub, session: aiohttp.ClientSession
) -> None:
    answer = await post_manifest(session, f"{fake.url}/settings/apps/new", MANIFEST)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    api = GitHubAPI(session, "migsafe-tests", base_url=f"{fake.url}/api/v3")
    app = await api.post(f"/app-manifests/{code}/conversions", data=b"")
    assert app["owner"]["login"] == fake.web_login and app["owner"]["type"] == "User"


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ({**MANIFEST, "url": None}, "`url`"),
        ({**MANIFEST, "hook_attributes": {"active": True}}, "hook_attributes.url"),
        ({**MANIFEST, "permissions": {}}, "unknown manifest key 'permissions'"),
        ({**MANIFEST, "default_permissions": {"checks": "all"}}, "default_permissions"),
    ],
)
async def test_a_manifest_githubs_page_would_refuse_is_a_violation(
    fake: FakeGitHub, session: aiohttp.ClientSession, manifest: dict[str, Any], problem: str
) -> None:
    answer = await post_manifest(session, f"{fake.url}/settings/apps/new", manifest)
    assert answer.status == 422
    [violation] = fake.pop_violations()
    assert problem in violation
