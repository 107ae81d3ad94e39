"""The GitHub App's settings, read once from the environment at start-up.

A missing or bad variable is one `UserError` naming it, so `migsafe serve` stops with a
single clear line instead of failing later on the first webhook. Secrets never appear
in `repr` (they are `field(repr=False)`), so logging a `Settings` is safe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.errors import UserError

DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_PORT = 8000
DEFAULT_WORKER_CONCURRENCY = 4
# A worker without a heartbeat for this long is dead: another worker takes its jobs over.
DEFAULT_STALLED_WORKER_SECONDS = 30
DEFAULT_DATA_DIR = "~/.local/share/migsafe/pg"
# As root the embedded cluster runs as the `postgres` user, which cannot enter /root (0700):
# the state then lives where a system service's does.
ROOT_DATA_DIR = "/var/lib/migsafe/pg"
DEFAULT_REPORT_RETENTION_DAYS = 90
MIN_PAGE_SECRET_CHARS = 32


def default_data_dir() -> Path:
    """Where the embedded cluster keeps the App's state when MIGSAFE_DATA_DIR is unset."""
    return Path(ROOT_DATA_DIR if os.geteuid() == 0 else DEFAULT_DATA_DIR).expanduser()


@dataclass(frozen=True)
class Settings:
    app_id: int
    private_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    github_api_url: str = DEFAULT_GITHUB_API_URL
    # None: the embedded cluster, persistent in `data_dir` (see bot.store.db.open_state_database).
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = field(default_factory=default_data_dir)
    sandbox_url: str | None = field(default=None, repr=False)
    port: int = DEFAULT_PORT
    public_url: str | None = None
    worker_concurrency: int = DEFAULT_WORKER_CONCURRENCY
    stalled_worker_s: int = DEFAULT_STALLED_WORKER_SECONDS
    # The key of the report pages' links (bot.web.tokens); None: derived from the webhook
    # secret (HKDF). Set it on its own so that rotating the webhook secret keeps the links.
    page_secret: str | None = field(default=None, repr=False)
    report_retention_days: int = DEFAULT_REPORT_RETENTION_DAYS


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default: os.environ); UserError names the bad variable."""
    env = os.environ if environ is None else environ
    return Settings(
        app_id=_positive_int(env, "MIGSAFE_APP_ID", required=True),
        private_key=_private_key(env),
        webhook_secret=_required(env, "MIGSAFE_WEBHOOK_SECRET"),
        github_api_url=_http_url(env, "MIGSAFE_GITHUB_API_URL", DEFAULT_GITHUB_API_URL),
        database_url=_database_url(env, "DATABASE_URL"),
        data_dir=_data_dir(env),
        sandbox_url=_database_url(env, "MIGSAFE_SANDBOX_URL"),
        port=_port(env),
        public_url=_optional_http_url(env, "MIGSAFE_PUBLIC_URL"),
        worker_concurrency=_positive_int(
            env, "MIGSAFE_WORKER_CONCURRENCY", default=DEFAULT_WORKER_CONCURRENCY
        ),
        stalled_worker_s=_positive_int(
            env, "MIGSAFE_STALLED_WORKER_SECONDS", default=DEFAULT_STALLED_WORKER_SECONDS
        ),
        page_secret=_page_secret(env),
        report_retention_days=_positive_int(
            env, "MIGSAFE_REPORT_RETENTION_DAYS", default=DEFAULT_REPORT_RETENTION_DAYS
        ),
    )


def _data_dir(env: Mapping[str, str]) -> Path:
    raw = _optional(env, "MIGSAFE_DATA_DIR")
    return default_data_dir() if raw is None else Path(raw).expanduser()


def _database_url(env: Mapping[str, str], name: str) -> str | None:
    """The URL, with PGPASSWORD in it when it has no password of its own: libpq would read
    that variable at each connection, so the service could not remove it from its
    environment (bot.hardening), and every child would inherit it."""
    url = _optional(env, name)
    password = _optional(env, "PGPASSWORD")
    if url is None or password is None:
        return url
    # postgresql+psycopg:// (SQLAlchemy's spelling) -> postgresql://, which libpq parses.
    plain = re.sub(r"^(postgres(?:ql)?)\+\w+://", r"\1://", url)
    try:
        if conninfo_to_dict(plain).get("password"):
            return url
        return make_conninfo(plain, password=password)
    except psycopg.ProgrammingError as error:
        # psycopg's message may quote the URL, and with it a password: not shown.
        raise UserError(f"{name} is not a valid PostgreSQL connection URL") from error


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _required(env: Mapping[str, str], name: str) -> str:
    value = _optional(env, name)
    if value is None:
        raise UserError(f"{name} is not set")
    return value


def _positive_int(
    env: Mapping[str, str], name: str, *, required: bool = False, default: int = 0
) -> int:
    raw = _required(env, name) if required else _optional(env, name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise UserError(f"{name} must be a positive integer, not {raw!r}")
    return int(raw)


def _page_secret(env: Mapping[str, str]) -> str | None:
    """Optional; when set, long enough that its HMAC tokens cannot be guessed offline."""
    secret = _optional(env, "MIGSAFE_PAGE_SECRET")
    if secret is not None and len(secret) < MIN_PAGE_SECRET_CHARS:
        raise UserError(
            f"MIGSAFE_PAGE_SECRET must be at least {MIN_PAGE_SECRET_CHARS} characters "
            "(e.g. the output of `openssl rand -hex 32`), or unset to derive it from "
            "MIGSAFE_WEBHOOK_SECRET"
        )
    return secret


def _port(env: Mapping[str, str]) -> int:
    port = _positive_int(env, "PORT", default=DEFAULT_PORT)
    if port > 65535:
        raise UserError(f"PORT must be at most 65535, not {port}")
    return port


def _http_url(env: Mapping[str, str], name: str, default: str) -> str:
    return _optional_http_url(env, name) or default


def _optional_http_url(env: Mapping[str, str], name: str) -> str | None:
    raw = _optional(env, name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"{name} must be an http(s) URL, not {raw!r}")
    return raw.rstrip("/")


def _private_key(env: Mapping[str, str]) -> str:
    """PEM text from MIGSAFE_PRIVATE_KEY, else read from MIGSAFE_PRIVATE_KEY_FILE."""
    pem, source = _optional(env, "MIGSAFE_PRIVATE_KEY"), "MIGSAFE_PRIVATE_KEY"
    if pem is None:
        path = _optional(env, "MIGSAFE_PRIVATE_KEY_FILE")
        if path is None:
            raise UserError("neither MIGSAFE_PRIVATE_KEY nor MIGSAFE_PRIVATE_KEY_FILE is set")
        source = "MIGSAFE_PRIVATE_KEY_FILE"
        try:
            pem = Path(path).expanduser().read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"{source}: cannot read {path}: {error}") from error
    # Some deployments pass the PEM with literal "\n" in a single-line variable.
    pem = pem.replace("\\n", "\n").strip() + "\n"
    _check_private_key(pem, source)
    return pem


def _check_private_key(pem: str, source: str) -> None:
    try:
        key = load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as error:
        # The library's message never contains the key material.
        raise UserError(f"{source} is not a PEM private key without a passphrase") from error
    if not isinstance(key, RSAPrivateKey):
        raise UserError(f"{source} must be an RSA private key (GitHub Apps sign JWTs with RS256)")
