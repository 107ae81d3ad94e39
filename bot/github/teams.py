"""Team memberships for the merge gate, cached briefly and forgotten on `membership` events."""

from __future__ import annotations

import time
from collections.abc import Callable
from http import HTTPStatus

import gidgethub
import gidgethub.abc
from cachetools import TTLCache

MembershipKey = tuple[str, str, str]  # (org, team_slug, username), lower-cased


class TeamMemberships:
    """`is_active_member` answers from a TTL cache (both yes and no) per (org, team, user).

    Only `state: active` is a member; `pending` (invited, not accepted) and 404 are not.
    """

    def __init__(
        self,
        ttl_s: float = 300,
        *,
        maxsize: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: TTLCache[MembershipKey, bool] = TTLCache(maxsize, ttl_s, timer=timer)

    async def is_active_member(
        self,
        api: gidgethub.abc.GitHubAPI,
        org: str,
        team_slug: str,
        username: str,
        *,
        refresh: bool = False,
    ) -> bool:
        """`refresh`: ask GitHub even when cached (the answer then refreshes the cache)."""
        key = _key(org, team_slug, username)
        cached = None if refresh else self._cache.get(key)
        if cached is not None:
            return cached
        active = await _fetch_active(api, org, team_slug, username)
        self._cache[key] = active
        return active

    def forget(self, org: str, team_slug: str, username: str | None = None) -> None:
        """Drop one user's entry, or the whole team's when `username` is None."""
        if username is not None:
            self._cache.pop(_key(org, team_slug, username), None)
            return
        team = _key(org, team_slug, "")[:2]
        for key in [key for key in list(self._cache.keys()) if key[:2] == team]:
            self._cache.pop(key, None)


def _key(org: str, team_slug: str, username: str) -> MembershipKey:
    # GitHub logins, org names and team slugs are case-insensitive.
    return org.lower(), team_slug.lower(), username.lower()


async def _fetch_active(
    api: gidgethub.abc.GitHubAPI, org: str, team_slug: str, username: str
) -> bool:
    try:
        data = await api.getitem(
            "/orgs/{org}/teams/{team_slug}/memberships/{username}",
            {"org": org, "team_slug": team_slug, "username": username},
        )
    except gidgethub.BadRequest as error:
        if error.status_code == HTTPStatus.NOT_FOUND:
            return False
        raise
    return isinstance(data, dict) and data.get("state") == "active"
