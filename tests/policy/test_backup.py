"""The backup status source: parsers on the tools' documented JSON, and the two fetchers
(a real command, a real HTTP server)."""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.errors import UserError
from bot.policy.backup import (
    NOT_CONFIGURED,
    BackupFormat,
    BackupSourceSettings,
    BackupStatus,
    BackupUnavailable,
    detect_format,
    fetch_backup_status,
    parse_backup_status,
    parse_migsafe,
    parse_pgbackrest,
    parse_walg,
)

# `pgbackrest info --output=json` (format 5, pgBackRest 2.5x): one stanza, a full backup, an
# incremental on top, and a newer incremental that finished with page checksum errors.
PGBACKREST_INFO: list[dict[str, Any]] = [
    {
        "archive": [
            {
                "database": {"id": 1, "repo-key": 1},
                "id": "16-1",
                "max": "00000001000000000000000C",
                "min": "000000010000000000000001",
            }
        ],
        "backup": [
            {
                "archive": {
                    "start": "000000010000000000000002",
                    "stop": "000000010000000000000002",
                },
                "backrest": {"format": 5, "version": "2.54.0"},
                "database": {"id": 1, "repo-key": 1},
                "error": False,
                "info": {
                    "delta": 31588354,
                    "repository": {"delta": 3961213, "size": 3961213},
                    "size": 31588354,
                },
                "label": "20261124-010001F",
                "lsn": {"start": "0/2000028", "stop": "0/2000100"},
                "prior": None,
                "reference": None,
                "timestamp": {"start": 1795482001, "stop": 1795482061},
                "type": "full",
            },
            {
                "archive": {
                    "start": "000000010000000000000008",
                    "stop": "000000010000000000000008",
                },
                "backrest": {"format": 5, "version": "2.54.0"},
                "database": {"id": 1, "repo-key": 1},
                "error": False,
                "info": {
                    "delta": 16657,
                    "repository": {"delta": 518, "size": 3961731},
                    "size": 31588354,
                },
                "label": "20261124-010001F_20261125-030002I",
                "lsn": {"start": "0/8000028", "stop": "0/8000100"},
                "prior": "20261124-010001F",
                "reference": ["20261124-010001F"],
                "timestamp": {"start": 1795575602, "stop": 1795575610},
                "type": "incr",
            },
            {
                "backrest": {"format": 5, "version": "2.54.0"},
                "database": {"id": 1, "repo-key": 1},
                "error": True,
                "error-list": ["base/16384/16402"],
                "label": "20261124-010001F_20261125-090001I",
                "prior": "20261124-010001F_20261125-030002I",
                "timestamp": {"start": 1795597201, "stop": 1795597209},
                "type": "incr",
            },
        ],
        "cipher": "none",
        "db": [{"id": 1, "repo-key": 1, "system-id": 7311717398212345678, "version": "16"}],
        "name": "main",
        "repo": [{"cipher": "none", "key": 1, "status": {"code": 0, "message": "ok"}}],
        "status": {"code": 0, "lock": {"backup": {"held": False}}, "message": "ok"},
    }
]
PGBACKREST_LAST = datetime.fromtimestamp(1795575610, tz=UTC)  # the incr without errors
PGBACKREST_EMPTY_STANZA = {
    "archive": [],
    "backup": [],
    "cipher": "none",
    "db": [{"id": 1, "repo-key": 1, "system-id": 7311717398212345999, "version": "16"}],
    "name": "reports",
    "repo": [{"cipher": "none", "key": 1, "status": {"code": 2, "message": "no valid backups"}}],
    "status": {"code": 2, "lock": {"backup": {"held": False}}, "message": "no valid backups"},
}

# `wal-g backup-list --json`: `time` is the storage object's modification time (Go RFC 3339
# with nanoseconds).
WALG_LIST = [
    {
        "backup_name": "base_000000010000000000000002",
        "time": "2026-11-24T01:00:31.846213057Z",
        "wal_file_name": "000000010000000000000002",
        "storage_name": "default",
    },
    {
        "backup_name": "base_000000010000000000000008",
        "time": "2026-11-25T03:00:12.105309419Z",
        "wal_file_name": "000000010000000000000008",
        "storage_name": "default",
    },
]
# `wal-g backup-list --json --detail`: the older backup's object was moved to cold storage
# today, so its `time` is newer than the real newest backup; `finish_time` is not.
WALG_DETAIL = [
    {
        "backup_name": "base_000000010000000000000002",
        "time": "2026-11-25T11:30:00Z",
        "wal_file_name": "000000010000000000000002",
        "storage_name": "default",
        "start_time": "2026-11-20T01:00:01.000000Z",
        "finish_time": "2026-11-20T01:00:30.000000Z",
        "date_fmt": "%Y-%m-%dT%H:%M:%S.%fZ",
        "hostname": "db-1",
        "data_dir": "/var/lib/postgresql/16/main",
        "pg_version": 160004,
        "start_lsn": 33554472,
        "finish_lsn": 33554688,
        "is_permanent": False,
        "system_identifier": 7311717398212345678,
        "uncompressed_size": 31588354,
        "compressed_size": 3961213,
    },
    {
        "backup_name": "base_000000010000000000000008",
        "time": "2026-11-25T03:00:12Z",
        "wal_file_name": "000000010000000000000008",
        "storage_name": "default",
        "start_time": "2026-11-25T03:00:01.000000Z",
        "finish_time": "2026-11-25T03:00:11.500000Z",
        "date_fmt": "%Y-%m-%dT%H:%M:%S.%fZ",
        "hostname": "db-1",
        "data_dir": "/var/lib/postgresql/16/main",
        "pg_version": 160004,
        "start_lsn": 134217768,
        "finish_lsn": 134217984,
        "is_permanent": False,
        "system_identifier": 7311717398212345678,
        "uncompressed_size": 31605011,
        "compressed_size": 3962001,
    },
]
MIGSAFE_STATUS = {
    "last_backup": "2026-11-25T03:00:11Z",
    "last_restore_test": "2026-11-19T14:00:00+01:00",
}


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- parsers ---


def test_pgbackrest_newest_backup_without_errors() -> None:
    status = parse_pgbackrest(PGBACKREST_INFO, "pgBackRest")
    assert status == BackupStatus(PGBACKREST_LAST, None, "pgBackRest")


def test_pgbackrest_every_stanza_must_have_a_backup() -> None:
    assert parse_pgbackrest([*PGBACKREST_INFO, PGBACKREST_EMPTY_STANZA], "s").last_backup is None
    older = json.loads(json.dumps(PGBACKREST_INFO[0]))
    older["name"] = "reports"
    older["backup"] = older["backup"][:1]  # only the full backup of the day before
    status = parse_pgbackrest([*PGBACKREST_INFO, older], "s")
    assert status.last_backup == datetime.fromtimestamp(1795482061, tz=UTC)
    assert parse_pgbackrest([], "s").last_backup is None


def test_walg_list_uses_time() -> None:
    status = parse_walg(WALG_LIST, "WAL-G")
    assert status.last_backup == datetime(2026, 11, 25, 3, 0, 12, 105309, tzinfo=UTC)
    assert status.last_restore_test is None


def test_walg_detail_prefers_finish_time_over_storage_modification() -> None:
    status = parse_walg(WALG_DETAIL, "WAL-G")
    assert status.last_backup == datetime(2026, 11, 25, 3, 0, 11, 500000, tzinfo=UTC)


@pytest.mark.parametrize("empty", [[], None])
def test_walg_without_backups(empty: object) -> None:
    assert parse_walg(empty, "WAL-G").last_backup is None


def test_migsafe_format() -> None:
    status = parse_migsafe(MIGSAFE_STATUS, "status")
    assert status.last_backup == utc(2026, 11, 25, 3, 0, 11)
    assert status.last_restore_test == utc(2026, 11, 19, 13, 0, 0)
    unknown = parse_migsafe({"last_backup": "2026-11-25T03:00:11", "last_restore_test": None}, "s")
    assert (unknown.last_backup, unknown.last_restore_test) == (utc(2026, 11, 25, 3, 0, 11), None)
    with pytest.raises(ValueError, match="last_backup must be an ISO 8601 time"):
        parse_migsafe({"last_backup": "yesterday"}, "s")


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (PGBACKREST_INFO, "pgbackrest"),
        ([PGBACKREST_EMPTY_STANZA], "pgbackrest"),
        (WALG_LIST, "walg"),
        (WALG_DETAIL, "walg"),
        ([], "walg"),
        (MIGSAFE_STATUS, "migsafe"),
    ],
)
def test_detect_format(data: object, fmt: BackupFormat) -> None:
    assert detect_format(data) == fmt
    assert parse_backup_status(data, "auto", "s") == parse_backup_status(data, fmt, "s")


def test_unknown_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match="MIGSAFE_BACKUP_FORMAT"):
        detect_format({"backups": []})
    with pytest.raises(ValueError, match="list of stanzas"):
        parse_pgbackrest({"name": "main"}, "s")


# --- settings ---


def test_settings_from_env() -> None:
    settings = BackupSourceSettings.from_env(
        {
            "MIGSAFE_BACKUP_STATUS_COMMAND": "pgbackrest info --output=json",
            "MIGSAFE_BACKUP_FORMAT": "pgBackRest",
        }
    )
    assert settings == BackupSourceSettings("pgbackrest info --output=json", None, "pgbackrest")
    assert not BackupSourceSettings.from_env({}).configured
    assert BackupSourceSettings.from_env({}).format == "auto"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MIGSAFE_BACKUP_STATUS_COMMAND": "x", "MIGSAFE_BACKUP_STATUS_URL": "http://h/"},
            "not both",
        ),
        ({"MIGSAFE_BACKUP_STATUS_URL": "file:///etc/passwd"}, "http:// or https://"),
        ({"MIGSAFE_BACKUP_STATUS_COMMAND": "wal-g 'backup-list"}, "not a valid command line"),
        ({"MIGSAFE_BACKUP_FORMAT": "barman"}, "must be one of auto, pgbackrest, walg, migsafe"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        BackupSourceSettings.from_env(env)


# --- fetching: a real command ---


def script(tmp_path: Path, body: str) -> str:
    """A command line running a tiny Python script from a directory with a space in it."""
    folder = tmp_path / "backup tools"
    folder.mkdir(exist_ok=True)
    path = folder / "status.py"
    path.write_text(body)
    return shlex.join([sys.executable, str(path)])


def printing(data: object) -> str:
    return f"import sys\nsys.stdout.write({json.dumps(json.dumps(data))})\n"


@pytest.mark.asyncio
async def test_not_configured() -> None:
    assert await fetch_backup_status(None) == BackupUnavailable(NOT_CONFIGURED)
    assert await fetch_backup_status(BackupSourceSettings()) == BackupUnavailable(NOT_CONFIGURED)


@pytest.mark.asyncio
async def test_command_printing_pgbackrest_info(tmp_path: Path) -> None:
    command = script(tmp_path, printing(PGBACKREST_INFO))
    status = await fetch_backup_status(BackupSourceSettings(command=command, format="pgbackrest"))
    assert isinstance(status, BackupStatus)
    assert status.last_backup == PGBACKREST_LAST
    assert status.source == f"pgBackRest via command `{sys.executable}`"


@pytest.mark.asyncio
async def test_command_output_format_detected(tmp_path: Path) -> None:
    command = script(tmp_path, printing(WALG_DETAIL))
    status = await fetch_backup_status(BackupSourceSettings(command=command))
    assert isinstance(status, BackupStatus)
    assert status.source.startswith("WAL-G via command")
    assert status.last_backup == datetime(2026, 11, 25, 3, 0, 11, 500000, tzinfo=UTC)


@pytest.mark.asyncio
async def test_failing_command_keeps_stderr_out_of_the_reason(tmp_path: Path) -> None:
    body = (
        "import sys\n"
        "sys.stderr.write('repo1: host backup.internal:8432 unreachable')\n"
        "sys.exit(3)\n"
    )
    result = await fetch_backup_status(BackupSourceSettings(command=script(tmp_path, body)))
    assert isinstance(result, BackupUnavailable)
    assert result.reason == f"the backup status command `{sys.executable}` exited with status 3"
    assert "backup.internal" in result.log_detail


@pytest.mark.asyncio
async def test_slow_command_times_out(tmp_path: Path) -> None:
    command = script(tmp_path, "import time\ntime.sleep(30)\n")
    started = asyncio.get_running_loop().time()
    result = await fetch_backup_status(BackupSourceSettings(command=command), timeout_s=0.5)
    assert isinstance(result, BackupUnavailable)
    assert "did not finish within 0.5 s" in result.reason
    assert asyncio.get_running_loop().time() - started < 10


@pytest.mark.asyncio
async def test_missing_program_and_non_json_output(tmp_path: Path) -> None:
    missing = await fetch_backup_status(BackupSourceSettings(command=str(tmp_path / "nope")))
    assert isinstance(missing, BackupUnavailable)
    assert "cannot run the backup status command" in missing.reason
    text = await fetch_backup_status(
        BackupSourceSettings(command=script(tmp_path, "print('stanza: main status: ok')\n"))
    )
    assert isinstance(text, BackupUnavailable)
    assert "did not print JSON" in text.reason


# --- fetching: a real HTTP server ---


async def serve(aiohttp_server: Any) -> str:
    async def status(request: web.Request) -> web.Response:
        if request.query.get("token") != "s3cret":
            return web.json_response({"error": "forbidden"}, status=403)
        return web.json_response(MIGSAFE_STATUS)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response(MIGSAFE_STATUS)

    app = web.Application()
    app.router.add_get("/backup/status", status)
    app.router.add_get("/slow", slow)
    server = await aiohttp_server(app)
    return f"http://{server.host}:{server.port}"


@pytest.mark.asyncio
async def test_http_endpoint(aiohttp_server: Any) -> None:
    base = await serve(aiohttp_server)
    settings = BackupSourceSettings(url=f"{base}/backup/status?token=s3cret", format="migsafe")
    status = await fetch_backup_status(settings)
    assert isinstance(status, BackupStatus)
    assert status.last_backup == utc(2026, 11, 25, 3, 0, 11)
    assert status.source == f"backup status via {base}/backup/status"  # no token shown


@pytest.mark.asyncio
async def test_http_errors_are_reasons(aiohttp_server: Any) -> None:
    base = await serve(aiohttp_server)
    denied = await fetch_backup_status(BackupSourceSettings(url=f"{base}/backup/status?token=x"))
    assert denied == BackupUnavailable(
        f"the backup status endpoint {base}/backup/status answered HTTP 403"
    )
    slow = await fetch_backup_status(BackupSourceSettings(url=f"{base}/slow"), timeout_s=0.5)
    assert isinstance(slow, BackupUnavailable)
    assert "did not answer within 0.5 s" in slow.reason


@pytest.mark.asyncio
async def test_unreachable_endpoint() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await fetch_backup_status(BackupSourceSettings(url=f"http://127.0.0.1:{port}/s"))
    assert isinstance(result, BackupUnavailable)
    assert result.reason.startswith(
        f"cannot reach the backup status endpoint http://127.0.0.1:{port}/s"
    )
