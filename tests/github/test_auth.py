"""App JWTs and the installation token cache (pure: no HTTP here)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import cache

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.github.auth import AppCredentials, InstallationToken, InstallationTokens


@cache
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_key_pem() -> str:
    key = serialization.load_pem_private_key(private_key_pem().encode(), None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_app_jwt_is_backdated_a_minute_and_expires_within_nine() -> None:
    credentials = AppCredentials("12345", private_key_pem())
    now = 1_800_000_000
    token = credentials.app_jwt(now=now)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token,
        public_key_pem(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {"iat": now - 60, "exp": now + 540, "iss": "12345"}


def test_credentials_never_show_the_key() -> None:
    credentials = AppCredentials("12345", private_key_pem())
    body = private_key_pem().splitlines()[1]
    assert body not in repr(credentials)
    assert body not in str(credentials)
    assert "PRIVATE KEY" not in repr(credentials)


def test_token_repr_hides_the_token() -> None:
    token = InstallationToken("ghs_secret", datetime.now(UTC))
    assert "ghs_secret" not in repr(token)


def test_token_from_github_response() -> None:
    token = InstallationToken.from_response(
        {"token": "ghs_x", "expires_at": "2026-11-25T12:00:00Z"}
    )
    assert token.expires_at == datetime(2026, 11, 25, 12, tzinfo=UTC)


class Fetcher:
    """Issues numbered tokens that expire `lifetime` after the fake clock's now."""

    def __init__(self, clock: list[float], lifetime: timedelta = timedelta(hours=1)) -> None:
        self.calls: list[int] = []
        self.clock = clock
        self.lifetime = lifetime

    async def __call__(self, installation_id: int) -> InstallationToken:
        self.calls.append(installation_id)
        await asyncio.sleep(0.01)  # let concurrent callers pile up on the lock
        expires = datetime.fromtimestamp(self.clock[0], UTC) + self.lifetime
        return InstallationToken(f"token-{installation_id}-{len(self.calls)}", expires)


@pytest.mark.asyncio
async def test_concurrent_callers_share_one_token_request() -> None:
    clock = [1_800_000_000.0]
    tokens = InstallationTokens(clock=lambda: clock[0])
    fetch = Fetcher(clock)
    got = await asyncio.gather(*(tokens.get(7, fetch) for _ in range(10)))
    assert fetch.calls == [7]
    assert set(got) == {"token-7-1"}


@pytest.mark.asyncio
async def test_token_kept_until_five_minutes_before_expiry() -> None:
    clock = [1_800_000_000.0]
    tokens = InstallationTokens(clock=lambda: clock[0])
    fetch = Fetcher(clock)
    assert await tokens.get(7, fetch) == "token-7-1"
    clock[0] += 54 * 60
    assert await tokens.get(7, fetch) == "token-7-1"
    clock[0] += 2 * 60  # 56 minutes: inside the 5-minute margin
    assert await tokens.get(7, fetch) == "token-7-2"
    assert fetch.calls == [7, 7]


@pytest.mark.asyncio
async def test_installations_have_their_own_tokens() -> None:
    clock = [1_800_000_000.0]
    tokens = InstallationTokens(clock=lambda: clock[0])
    fetch = Fetcher(clock)
    assert await tokens.get(1, fetch) != await tokens.get(2, fetch)
    assert sorted(fetch.calls) == [1, 2]


@pytest.mark.asyncio
async def test_drop_forgets_a_refused_token_only() -> None:
    clock = [1_800_000_000.0]
    tokens = InstallationTokens(clock=lambda: clock[0])
    fetch = Fetcher(clock)
    first = await tokens.get(7, fetch)
    tokens.drop(7, "some-other-token")  # a concurrent refresh already replaced it
    assert tokens.cached(7)
    tokens.drop(7, first)
    assert not tokens.cached(7)
    assert await tokens.get(7, fetch) == "token-7-2"


@pytest.mark.asyncio
async def test_a_token_too_close_to_expiry_is_used_but_not_cached() -> None:
    clock = [1_800_000_000.0]
    tokens = InstallationTokens(clock=lambda: clock[0])
    fetch = Fetcher(clock, lifetime=timedelta(minutes=2))
    assert await tokens.get(7, fetch) == "token-7-1"
    assert not tokens.cached(7)
