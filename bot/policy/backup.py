"""The backup status source: when the last backup and the last tested restore happened.

The operator, not the repository, configures it (a repository must not be able to vouch
for its own backups) in the bot's environment:

- `MIGSAFE_BACKUP_STATUS_COMMAND`: a command printing JSON (run without a shell), or
- `MIGSAFE_BACKUP_STATUS_URL`: an HTTP(S) URL answering a GET with JSON;
- `MIGSAFE_BACKUP_FORMAT`: `pgbackrest` (`pgbackrest info --output=json`), `walg`
  (`wal-g backup-list --json [--detail]`), `migsafe` (`{"last_backup": ISO 8601,
  "last_restore_test": ISO 8601}`) or `auto` (the default: recognised by shape).

The parsers are pure; `fetch_backup_status` does the I/O and never raises for a broken
source: it answers `BackupUnavailable` with a reason the gate shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args
from urllib.parse import urlsplit

from bot.errors import UserError

BackupFormat = Literal["auto", "pgbackrest", "walg", "migsafe"]
BACKUP_FORMATS: tuple[BackupFormat, ...] = get_args(BackupFormat)

COMMAND_VAR = "MIGSAFE_BACKUP_STATUS_COMMAND"
URL_VAR = "MIGSAFE_BACKUP_STATUS_URL"
FORMAT_VAR = "MIGSAFE_BACKUP_FORMAT"
MAX_OUTPUT_BYTES = 16 * 1024 * 1024  # pgBackRest's info for years of backups stays far below
NOT_CONFIGURED = "no backup status source configured"


@dataclass(frozen=True)
class BackupStatus:
    """What the source reports; None where it does not know."""

    last_backup: datetime | None  # when the newest usable backup finished (aware, UTC)
    last_restore_test: datetime | None
    source: str  # for people: which tool, through which command or host


@dataclass(frozen=True)
class BackupUnavailable:
    """The source is not configured or did not answer usably.

    `reason` is shown on the pull request; `log_detail` (e.g. the command's stderr, which
    may name hosts and paths of the backup system) is for the operator's logs only.
    """

    reason: str
    log_detail: str = ""


@dataclass(frozen=True)
class BackupSourceSettings:
    """The operator's backup status source: a command or a URL, and its output format."""

    command: str | None = None
    url: str | None = None
    format: BackupFormat = "auto"

    @property
    def configured(self) -> bool:
        return bool(self.command or self.url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BackupSourceSettings:
        """Read the `MIGSAFE_BACKUP_*` variables; UserError names a bad one."""
        env = os.environ if environ is None else environ
        command = env.get(COMMAND_VAR, "").strip() or None
        url = env.get(URL_VAR, "").strip() or None
        if command and url:
            raise UserError(f"set either {COMMAND_VAR} or {URL_VAR}, not both")
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise UserError(f"{URL_VAR} must be an http:// or https:// URL")
        if command:
            _split_command(command)
        return cls(command=command, url=url, format=_check_format(env.get(FORMAT_VAR, "auto")))


# --- parsers (pure) ---


def parse_backup_status(data: object, fmt: BackupFormat, source: str) -> BackupStatus:
    """Parse decoded JSON in `fmt`; ValueError says what is wrong with it."""
    if fmt == "auto":
        fmt = detect_format(data)
    parser: Callable[[object, str], BackupStatus] = _PARSERS[fmt]
    return parser(data, source)


def detect_format(data: object) -> BackupFormat:
    """Recognise the format by shape: migsafe's object, pgBackRest's stanza list, WAL-G's
    backup list."""
    if isinstance(data, dict) and "last_backup" in data:
        return "migsafe"
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        if all("backup_name" in item for item in data):
            return "walg"
        if all("name" in item and ("backup" in item or "status" in item) for item in data):
            return "pgbackrest"
    if data == [] or data is None:  # WAL-G prints [] (or null) when there is no backup
        return "walg"
    raise ValueError(
        "the output is neither pgBackRest's `info --output=json`, WAL-G's "
        '`backup-list --json` nor {"last_backup": ...}: set ' + FORMAT_VAR
    )


def parse_pgbackrest(data: object, source: str) -> BackupStatus:
    """`pgbackrest info --output=json`: a list of stanzas, each with a `backup` list whose
    entries have `timestamp.stop` (Unix seconds), `type` and, since 2.36, `error` (page
    checksum errors). Backups with errors are not counted. With several stanzas the
    oldest stanza's newest backup counts: every database must be covered (restrict the
    command to one stanza with `--stanza`). pgBackRest records no restore tests."""
    if not isinstance(data, list):
        raise ValueError("pgBackRest info output must be a list of stanzas")
    latest_per_stanza: list[datetime | None] = []
    for stanza in data:
        if not isinstance(stanza, dict):
            raise ValueError("pgBackRest info output: each stanza must be an object")
        backups = stanza.get("backup") or []
        if not isinstance(backups, list):
            raise ValueError(f"pgBackRest stanza {stanza.get('name')!r}: `backup` is not a list")
        stops = [_unix_time(b) for b in backups if isinstance(b, dict) and not b.get("error")]
        latest_per_stanza.append(max((s for s in stops if s is not None), default=None))
    last_backup = (
        None
        if not latest_per_stanza or None in latest_per_stanza
        else min(t for t in latest_per_stanza if t is not None)
    )
    return BackupStatus(last_backup=last_backup, last_restore_test=None, source=source)


def parse_walg(data: object, source: str) -> BackupStatus:
    """`wal-g backup-list --json` (objects with `backup_name`, `time`: when the storage
    object was last modified) or with `--detail` (also `start_time`, `finish_time`).
    `finish_time` is preferred: storage tiering can change `time` long after the backup.
    WAL-G records no restore tests."""
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ValueError("WAL-G backup-list output must be a list of backups")
    times: list[datetime] = []
    for backup in data:
        if not isinstance(backup, dict):
            raise ValueError("WAL-G backup-list output: each backup must be an object")
        finished = _first_time(backup, ("finish_time", "time", "modification_time"))
        if finished is not None:
            times.append(finished)
    return BackupStatus(last_backup=max(times, default=None), last_restore_test=None, source=source)


def parse_migsafe(data: object, source: str) -> BackupStatus:
    """`{"last_backup": "2026-11-25T03:00:00Z", "last_restore_test": ...}`; either may
    be null. A time without a zone is taken as UTC."""
    if not isinstance(data, dict):
        raise ValueError('expected an object {"last_backup": ..., "last_restore_test": ...}')
    return BackupStatus(
        last_backup=_iso_field(data, "last_backup"),
        last_restore_test=_iso_field(data, "last_restore_test"),
        source=source,
    )


_PARSERS: dict[str, Callable[[object, str], BackupStatus]] = {
    "pgbackrest": parse_pgbackrest,
    "walg": parse_walg,
    "migsafe": parse_migsafe,
}


# --- fetching (I/O) ---


async def fetch_backup_status(
    settings: BackupSourceSettings | None, *, timeout_s: float = 10
) -> BackupStatus | BackupUnavailable:
    """Ask the configured source. Failures (not configured, exit status, timeout, HTTP
    error, unreadable JSON) come back as BackupUnavailable with the reason."""
    if settings is None or not settings.configured:
        return BackupUnavailable(NOT_CONFIGURED)
    if settings.command:
        label = f"command `{_split_command(settings.command)[0]}`"
        raw = await _run_command(settings.command, timeout_s)
    else:
        assert settings.url is not None  # configured: one of the two
        label = _safe_url(settings.url)
        raw = await _http_get(settings.url, timeout_s)
    if isinstance(raw, BackupUnavailable):
        return raw
    return _decode(raw, settings.format, label)


def _decode(raw: bytes, fmt: BackupFormat, label: str) -> BackupStatus | BackupUnavailable:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return BackupUnavailable(f"the backup status source ({label}) did not print JSON: {exc}")
    try:
        resolved = detect_format(data) if fmt == "auto" else fmt
        return parse_backup_status(data, resolved, f"{_FORMAT_NAMES[resolved]} via {label}")
    except ValueError as exc:
        return BackupUnavailable(f"the backup status source ({label}): {exc}")


async def _run_command(command: str, timeout_s: float) -> bytes | BackupUnavailable:
    argv = _split_command(command)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return BackupUnavailable(f"cannot run the backup status command `{argv[0]}`: {exc}")
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return BackupUnavailable(
            f"the backup status command `{argv[0]}` did not finish within {timeout_s:g} s"
        )
    if process.returncode != 0:
        return BackupUnavailable(
            f"the backup status command `{argv[0]}` exited with status {process.returncode}",
            log_detail=stderr.decode("utf-8", "replace").strip()[-2000:],
        )
    if len(stdout) > MAX_OUTPUT_BYTES:
        return BackupUnavailable(f"the backup status command `{argv[0]}` printed too much")
    return stdout


async def _http_get(url: str, timeout_s: float) -> bytes | BackupUnavailable:
    import aiohttp  # here: `migsafe check` reads this module, and only a gate asks over HTTP

    label = _safe_url(url)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status != 200:
                return BackupUnavailable(
                    f"the backup status endpoint {label} answered HTTP {response.status}"
                )
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_OUTPUT_BYTES:
                    break
    except TimeoutError:
        return BackupUnavailable(
            f"the backup status endpoint {label} did not answer within {timeout_s:g} s"
        )
    except aiohttp.ClientError as exc:
        message = str(exc).replace(url, label)  # the query may hold a token
        return BackupUnavailable(f"cannot reach the backup status endpoint {label}: {message}")
    if len(body) > MAX_OUTPUT_BYTES:
        return BackupUnavailable(f"the backup status endpoint {label} answered too much")
    return bytes(body)


# --- helpers ---

_FORMAT_NAMES = {"pgbackrest": "pgBackRest", "walg": "WAL-G", "migsafe": "backup status"}


def _check_format(value: str) -> BackupFormat:
    name = value.strip().lower() or "auto"
    for fmt in BACKUP_FORMATS:
        if fmt == name:
            return fmt
    raise UserError(f"{FORMAT_VAR} must be one of {', '.join(BACKUP_FORMATS)} (got {value!r})")


def _split_command(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UserError(f"{COMMAND_VAR} is not a valid command line: {exc}") from None
    if not argv:
        raise UserError(f"{COMMAND_VAR} is empty")
    return argv


def _safe_url(url: str) -> str:
    """The URL without credentials or query (which may hold a token), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _unix_time(backup: Mapping[str, object]) -> datetime | None:
    timestamp = backup.get("timestamp")
    stop = timestamp.get("stop") if isinstance(timestamp, dict) else None
    if isinstance(stop, int | float) and not isinstance(stop, bool):
        return datetime.fromtimestamp(stop, tz=UTC)
    return None


def _first_time(record: Mapping[str, object], keys: tuple[str, ...]) -> datetime | None:
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value:
            parsed = _parse_iso(value)
            if parsed is not None and parsed.year > 1970:  # Go's zero time means unset
                return parsed
    return None


def _iso_field(data: Mapping[str, object], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    parsed = _parse_iso(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError(f"{key} must be an ISO 8601 time or null (got {value!r})")
    return parsed


def _parse_iso(text: str) -> datetime | None:
    """ISO 8601 / RFC 3339 as the tools print it, Go's nanoseconds included; aware, UTC."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python takes at most 6 fractional digits; Go prints up to 9
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
