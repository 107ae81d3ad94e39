"""The HTTP side of talking to GitHub: gidgethub with auth, retries, logging and metrics.

`GitHub` hands out API objects: `app()` authenticated with the app's JWT, and
`installation(id)` with that installation's cached token. Both are gidgethub
`GitHubAPI`s, so the helpers of this package (which accept any `gidgethub.abc.GitHubAPI`)
work with them. What they add:

- retries on 5xx and connection errors (exponential backoff with jitter), on secondary
  rate limits (`retry-after`) and on the primary one (`x-ratelimit-reset`), each wait
  capped; a wait above the cap raises `RateLimited` so the job queue retries later;
- on a 401 with an installation token: drop the cached token and retry once;
- a log line per response (method, path, status, rate limit remaining, delivery id) and a
  metrics callback. Tokens, JWTs, keys and query strings are never logged.

Over 400 lines: the one HTTP client (auth, retries, rate limits, logging, metrics)
every GitHub call goes through.
"""

from __future__ import annotations

import http
import logging
import random
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
import gidgethub.abc
import gidgethub.aiohttp
from gidgethub import GitHubException, HTTPException, sansio

from bot.github.auth import AppCredentials, InstallationToken, InstallationTokens

logger = logging.getLogger("bot.github")

# The webhook delivery being handled, for log lines; set by the webhook/job code.
delivery_id: ContextVar[str | None] = ContextVar("delivery_id", default=None)

PER_PAGE = 100
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class ApiMetrics(Protocol):
    """Receives one call per HTTP response (the service counts them in Prometheus)."""

    def on_response(
        self, method: str, route_template: str, status: int, remaining: int | None
    ) -> None: ...


class RateLimited(GitHubException):
    """GitHub asks to wait longer than we are willing to block: retry the job after `reset_at`."""

    def __init__(self, reset_at: datetime, reason: str) -> None:
        self.reset_at = reset_at
        self.reason = reason
        super().__init__(f"GitHub rate limit ({reason}); retry after {reset_at.isoformat()}")


class ResponseTooLarge(GitHubException):
    """A download went over its byte limit."""


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 4  # attempts per request, the first included
    backoff_base_s: float = 0.5  # 5xx / connection errors: base * 2**(try-1), full jitter
    backoff_cap_s: float = 8.0
    max_wait_s: float = 60.0  # longest rate-limit wait; above it `RateLimited` is raised
    request_timeout_s: float = 30.0
    download_timeout_s: float = 600.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def rate_limit_wait(
    status: int, headers: Mapping[str, str], message: str, now: float
) -> float | None:
    """Seconds GitHub asks us to wait before retrying, or None when it is no rate limit.

    Secondary limits answer 403/429 with `retry-after`, or without it (then a minute is
    GitHub's advice); the primary limit answers with `x-ratelimit-remaining: 0`.
    """
    if status not in (403, 429):
        return None
    retry_after = headers.get("retry-after", "")
    if retry_after.strip().isdigit():
        return float(retry_after)
    reset = headers.get("x-ratelimit-reset", "")
    if headers.get("x-ratelimit-remaining") == "0" and reset.strip().isdigit():
        return max(0.0, int(reset) - now) + 1.0
    if status == 429 or "secondary rate limit" in message.lower():
        return 60.0
    return None


@dataclass
class _Call:
    """One logical request (all its attempts)."""

    route: str
    reauthenticated: bool = False


_call: ContextVar[_Call | None] = ContextVar("migsafe_github_call", default=None)
_route_hint: ContextVar[str | None] = ContextVar("migsafe_github_route", default=None)


def _path(url: str) -> str:
    """The URL's path only: query strings can carry tokens (archive redirects do)."""
    return urlsplit(url).path or "/"


def _remaining(headers: Mapping[str, str]) -> int | None:
    value = headers.get("x-ratelimit-remaining", "")
    return int(value) if value.isdigit() else None


class RetryingAPI(gidgethub.aiohttp.GitHubAPI):
    """gidgethub's aiohttp API with authorization injected per attempt, retries and logs.

    The base of `AppAPI` and `InstallationAPI`; `download` streams archives.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        requester: str,
        base_url: str,
        retry: RetryPolicy,
        metrics: ApiMetrics | None,
    ) -> None:
        super().__init__(session, requester, base_url=base_url)
        self.retry = retry
        self._metrics = metrics

    async def _authorization(self) -> str:
        raise NotImplementedError

    async def _unauthorized(self, call: _Call, authorization: str) -> bool:
        """Whether a 401 is worth one retry (with a new credential)."""
        return False

    async def _make_request(
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> tuple[bytes, str | None, int]:
        absolute = urlsplit(url).scheme != ""
        route = (_route_hint.get() or _path(url)) if absolute else url.split("{?")[0]
        reset = _call.set(_Call(route=route))
        try:
            return await super()._make_request(method, url, *args, **kwargs)
        finally:
            _call.reset(reset)

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = aiohttp.ClientTimeout(total=self.retry.request_timeout_s)
        for attempt in range(1, self.retry.max_tries + 1):
            authorization = await self._authorization()
            try:
                async with self._session.request(
                    method,
                    url,
                    headers={**headers, "authorization": authorization},
                    data=body,
                    timeout=timeout,
                ) as response:
                    content = await response.read()
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                if attempt == self.retry.max_tries:
                    raise
                await self._pause_after_connection_error(method, url, attempt)
                continue
            self._observe(method, url, response.status, response.headers)
            if response.status == 401 and await self._retry_unauthorized(authorization):
                continue
            return response.status, response.headers, content
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _retry_unauthorized(self, authorization: str) -> bool:
        call = _call.get()
        if call is None or call.reauthenticated:
            return False
        call.reauthenticated = True
        return await self._unauthorized(call, authorization)

    async def _pause_after_connection_error(self, method: str, url: str, attempt: int) -> None:
        delay = self.retry.backoff(attempt)
        logger.warning(
            "GitHub %s %s: connection failed (try %d), retrying in %.2fs%s",
            method,
            _path(url),
            attempt,
            delay,
            _delivery_suffix(),
        )
        await self.sleep(delay)

    async def handle_rate_limit_error(
        self, *, method: str, url: str, exception: HTTPException, attempt: int
    ) -> bool:
        status = int(exception.status_code)
        if status >= 500:
            if attempt >= self.retry.max_tries:
                return False
            delay = self.retry.backoff(attempt)
        else:
            now = time.time()
            wait = rate_limit_wait(status, exception.headers, str(exception), now)
            if wait is None:
                return False
            reason = f"{status} on {method} {_path(url)}"
            if wait > self.retry.max_wait_s or attempt >= self.retry.max_tries:
                raise RateLimited(datetime.fromtimestamp(now + wait, UTC), reason) from exception
            delay = wait
        logger.warning(
            "GitHub %s %s answered %d (try %d), retrying in %.2fs%s",
            method,
            _path(url),
            status,
            attempt,
            delay,
            _delivery_suffix(),
        )
        await self.sleep(delay)
        return True

    def _observe(self, method: str, url: str, status: int, headers: Mapping[str, str]) -> None:
        remaining = _remaining(headers)
        call = _call.get()
        route = call.route if call is not None else (_route_hint.get() or _path(url))
        logger.info(
            "GitHub %s %s -> %d (rate limit remaining %s)%s",
            method,
            _path(url),
            status,
            "?" if remaining is None else remaining,
            _delivery_suffix(),
            extra={"github_status": status, "delivery_id": delivery_id.get()},
        )
        if self._metrics is not None:
            self._metrics.on_response(method, route, status, remaining)

    async def download(
        self,
        url: str,
        url_vars: Mapping[str, str],
        dest: Path,
        *,
        max_bytes: int,
    ) -> int:
        """GET `url` (following one redirect, e.g. to codeload) streaming into `dest`.

        Returns the number of bytes written; raises `ResponseTooLarge` over `max_bytes`.
        Retries like any other request.
        """
        filled = sansio.format_url(url, url_vars, base_url=self.base_url)
        reset = _call.set(_Call(route=url))
        try:
            attempt = 0
            while True:
                attempt += 1
                try:
                    return await self._download_once(filled, dest, max_bytes)
                except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                    if attempt >= self.retry.max_tries:
                        raise
                    await self._pause_after_connection_error("GET", filled, attempt)
                except HTTPException as error:
                    retry = await self.handle_rate_limit_error(
                        method="GET", url=filled, exception=error, attempt=attempt
                    )
                    if not retry:
                        raise
        finally:
            _call.reset(reset)

    async def _download_once(self, url: str, dest: Path, max_bytes: int) -> int:
        timeout = aiohttp.ClientTimeout(total=self.retry.download_timeout_s)
        authorization = await self._authorization()
        headers = {"user-agent": self.requester, "authorization": authorization}
        async with self._session.get(
            url, headers=headers, allow_redirects=False, timeout=timeout
        ) as response:
            self._observe("GET", url, response.status, response.headers)
            if response.status == 401 and await self._retry_unauthorized(authorization):
                return await self._download_once(url, dest, max_bytes)
            if response.status == 200:
                return await _stream_to(response, dest, max_bytes)
            if response.status not in REDIRECTS or "location" not in response.headers:
                sansio.decipher_response(response.status, response.headers, await response.read())
                raise HTTPException(http.HTTPStatus(response.status))
            target = urljoin(url, response.headers["location"])
        # The archive host gets the token only when it is the API's own origin; a redirect
        # elsewhere (codeload) carries its own short-lived token in the URL.
        same_origin = urlsplit(target)[:2] == urlsplit(url)[:2]
        target_headers = headers if same_origin else {"user-agent": self.requester}
        async with self._session.get(target, headers=target_headers, timeout=timeout) as archive:
            self._observe("GET", target, archive.status, archive.headers)
            if archive.status != 200:
                sansio.decipher_response(archive.status, archive.headers, await archive.read())
                raise HTTPException(http.HTTPStatus(archive.status))
            return await _stream_to(archive, dest, max_bytes)


async def _stream_to(response: aiohttp.ClientResponse, dest: Path, max_bytes: int) -> int:
    written = 0
    with dest.open("wb") as out:
        async for chunk in response.content.iter_chunked(1 << 16):
            written += len(chunk)
            if written > max_bytes:
                raise ResponseTooLarge(f"download exceeds {max_bytes} bytes")
            out.write(chunk)
    return written


def _delivery_suffix() -> str:
    current = delivery_id.get()
    return f" [delivery {current}]" if current else ""


class AppAPI(RetryingAPI):
    """Authenticated as the GitHub App itself (a fresh JWT per request)."""

    def __init__(
        self, session: aiohttp.ClientSession, credentials: AppCredentials, **kwargs: Any
    ) -> None:
        super().__init__(session, **kwargs)
        self._credentials = credentials

    async def _authorization(self) -> str:
        return f"bearer {self._credentials.app_jwt()}"

    async def installation_token(self, installation_id: int) -> InstallationToken:
        data = await self.post(
            "/app/installations/{installation_id}/access_tokens",
            {"installation_id": str(installation_id)},
            data=b"",
        )
        return InstallationToken.from_response(data)


class InstallationAPI(RetryingAPI):
    """Authenticated as one installation, with its cached token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        installation_id: int,
        app: AppAPI,
        tokens: InstallationTokens,
        **kwargs: Any,
    ) -> None:
        super().__init__(session, **kwargs)
        self.installation_id = installation_id
        self._app = app
        self._tokens = tokens

    async def _authorization(self) -> str:
        token = await self._tokens.get(self.installation_id, self._app.installation_token)
        return f"token {token}"

    async def _unauthorized(self, call: _Call, authorization: str) -> bool:
        logger.warning(
            "GitHub refused the token of installation %d on %s; fetching a new one%s",
            self.installation_id,
            call.route,
            _delivery_suffix(),
        )
        self._tokens.drop(self.installation_id, authorization.removeprefix("token "))
        return True


class GitHub:
    """Hands out API objects sharing one session, the credentials and the token cache."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_url: str,
        credentials: AppCredentials,
        tokens: InstallationTokens,
        user_agent: str = "migsafe",
        metrics: ApiMetrics | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._session = session
        self._credentials = credentials
        self._tokens = tokens
        self._options: dict[str, Any] = {
            "requester": user_agent,
            "base_url": api_url,
            "retry": retry or RetryPolicy(),
            "metrics": metrics,
        }

    def app(self) -> AppAPI:
        return AppAPI(self._session, self._credentials, **self._options)

    def installation(
        self, installation_id: int, *, metrics: ApiMetrics | None = None
    ) -> InstallationAPI:
        """`metrics`: this installation's own hook (e.g. to label its rate limit)."""
        options = {**self._options, "metrics": metrics or self._options["metrics"]}
        return InstallationAPI(self._session, installation_id, self.app(), self._tokens, **options)


def repo_vars(repo: str) -> dict[str, str]:
    """URL variables of "owner/name"."""
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"repository must be 'owner/name', got {repo!r}")
    return {"owner": owner, "repo": name}


async def get_list(
    api: gidgethub.abc.GitHubAPI,
    url: str,
    url_vars: Mapping[str, Any] | None = None,
    *,
    limit: int | None = None,
    iterable_key: str | None = "items",
) -> list[Any]:
    """Every item of a paginated endpoint (100 per page, following `link: rel=next`)."""
    template = url if "{?" in url else url + "{?per_page}"
    variables = {**(url_vars or {}), "per_page": PER_PAGE}
    items: list[Any] = []
    reset = _route_hint.set(url.split("{?")[0])
    try:
        async for item in api.getiter(template, variables, iterable_key=iterable_key):
            items.append(item)
            if limit is not None and len(items) >= limit:
                break
    finally:
        _route_hint.reset(reset)
    return items
