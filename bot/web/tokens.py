"""The report page's link token: an HMAC of the analysis id with a server key.

`/runs/{id}?token=<hmac>`: the token is HMAC-SHA256 over `migsafe-run:<id>`, base64url
without padding (43 characters, 256 bits), checked in constant time. Anyone holding the
link can read the page, nobody can derive the link of another run from it.

The key is `MIGSAFE_PAGE_SECRET` when the operator sets one (at least 32 characters).
Otherwise it is derived from `MIGSAFE_WEBHOOK_SECRET` with HKDF-SHA256 and a label of its
own: every deployment gets working links with no extra setting, and a page token can never
serve as a webhook signature (different key, different message). The cost of the default:
rotating the webhook secret invalidates every link already posted in check runs, so set
`MIGSAFE_PAGE_SECRET` separately where links must outlive a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.settings import Settings

KEY_BYTES = 32
_HKDF_INFO = b"migsafe report page token v1"
_MESSAGE_PREFIX = b"migsafe-run:"
RUN_PATH = "/runs/{id}"


def page_key(settings: Settings) -> bytes:
    """The key of the page tokens: MIGSAFE_PAGE_SECRET, else derived from the webhook secret."""
    if settings.page_secret:
        return settings.page_secret.encode("utf-8")
    return derive_key(settings.webhook_secret)


def derive_key(webhook_secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_HKDF_INFO)
    return hkdf.derive(webhook_secret.encode("utf-8"))


def run_token(key: bytes, analysis_id: int) -> str:
    digest = hmac.new(key, _MESSAGE_PREFIX + str(analysis_id).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_matches(key: bytes, analysis_id: int, token: str | None) -> bool:
    """Constant-time comparison; a missing or non-ASCII token never matches."""
    if not token or not token.isascii():
        return False
    return hmac.compare_digest(run_token(key, analysis_id).encode(), token.encode("ascii"))


def run_path(key: bytes, analysis_id: int) -> str:
    """`/runs/<id>?token=<hmac>`: the page's path with its token."""
    path = RUN_PATH.format(id=analysis_id)
    return f"{path}?token={quote(run_token(key, analysis_id), safe='')}"


def page_url(settings: Settings, analysis_id: int) -> str | None:
    """The page's absolute URL for a check run's `details_url`, or None when the operator
    set no MIGSAFE_PUBLIC_URL (the service cannot know its own address then)."""
    if not settings.public_url:
        return None
    return settings.public_url.rstrip("/") + run_path(page_key(settings), analysis_id)
