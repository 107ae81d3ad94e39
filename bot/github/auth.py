"""GitHub App authentication: the app's JWT and a cache of installation tokens.

Secrets never appear in a repr, a str or a log line: the key and the tokens are fields
excluded from `repr`, and nothing here logs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import jwt
from cachetools import TLRUCache

JWT_BACKDATE_S = 60  # GitHub's advice for clock drift
JWT_LIFETIME_S = 9 * 60  # GitHub refuses an `exp` more than 10 minutes ahead
TOKEN_REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    private_key: str = field(repr=False)  # PEM text

    def app_jwt(self, now: float | None = None) -> str:
        """An RS256 JWT authenticating as the app, valid from a minute ago for 9 minutes."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iat": issued - JWT_BACKDATE_S,
            "exp": issued + JWT_LIFETIME_S,
            "iss": self.app_id,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256")


@dataclass(frozen=True)
class InstallationToken:
    token: str = field(repr=False)
    expires_at: datetime  # timezone-aware, as GitHub's `expires_at`

    @classmethod
    def from_response(cls, data: dict[str, object]) -> InstallationToken:
        """From the body of `POST /app/installations/{id}/access_tokens`."""
        token, expires_at = data["token"], data["expires_at"]
        if not isinstance(token, str) or not isinstance(expires_at, str):
            raise ValueError("installation token response lacks token or expires_at")
        return cls(token, datetime.fromisoformat(expires_at.replace("Z", "+00:00")))


TokenFetcher = Callable[[int], Awaitable[InstallationToken]]


class InstallationTokens:
    """Installation tokens by installation id, each kept until 5 minutes before it expires.

    A token lives an hour, so an installation costs one token request per ~55 minutes, not
    one per event. A lock per installation makes concurrent jobs wait for one request
    instead of each asking for a token.
    """

    def __init__(
        self,
        *,
        maxsize: int = 10_000,
        refresh_margin: timedelta = TOKEN_REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._margin = refresh_margin.total_seconds()
        self._clock = clock
        self._cache: TLRUCache[int, InstallationToken] = TLRUCache(
            maxsize, ttu=self._use_until, timer=clock
        )
        self._locks: dict[int, asyncio.Lock] = {}

    def _use_until(self, _key: int, value: InstallationToken, _now: float) -> float:
        return value.expires_at.timestamp() - self._margin

    async def get(self, installation_id: int, fetch: TokenFetcher) -> str:
        """The cached token, or a fresh one from `fetch` (at most one fetch at a time)."""
        cached = self._cache.get(installation_id)
        if cached is not None:
            return cached.token
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(installation_id)
            if cached is not None:
                return cached.token
            fresh = await fetch(installation_id)
            if self._use_until(installation_id, fresh, 0) > self._clock():
                self._cache[installation_id] = fresh
            return fresh.token

    def cached(self, installation_id: int) -> bool:
        return installation_id in self._cache

    def drop(self, installation_id: int, token: str | None = None) -> None:
        """Forget a token GitHub refused (401), so the next call fetches a new one.

        With `token`, only that token is dropped: a concurrent call may have cached a
        fresh one already.
        """
        cached = self._cache.get(installation_id)
        if cached is not None and (token is None or cached.token == token):
            self._cache.pop(installation_id, None)
