"""Settings: every variable read once, one UserError naming a missing or bad one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from psycopg.conninfo import conninfo_to_dict

from bot.errors import UserError
from bot.settings import DEFAULT_GITHUB_API_URL, ROOT_DATA_DIR, load_settings


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def environ(rsa_pem: str) -> dict[str, str]:
    return {
        "MIGSAFE_APP_ID": "12345",
        "MIGSAFE_PRIVATE_KEY": rsa_pem,
        "MIGSAFE_WEBHOOK_SECRET": "s3cret-value",
    }


def test_minimal_environment_gets_the_defaults(environ: dict[str, str]) -> None:
    settings = load_settings(environ)
    assert settings.app_id == 12345
    assert settings.github_api_url == DEFAULT_GITHUB_API_URL
    assert settings.port == 8000
    assert settings.database_url is None
    assert settings.stalled_worker_s == 30
    home_default = Path("~/.local/share/migsafe/pg").expanduser()
    # As root PostgreSQL runs as `postgres`, which cannot enter /root: a system directory.
    assert settings.data_dir == (Path(ROOT_DATA_DIR) if os.geteuid() == 0 else home_default)


def test_every_variable_is_read(environ: dict[str, str]) -> None:
    environ |= {
        "MIGSAFE_GITHUB_API_URL": "http://127.0.0.1:9000/api/v3/",
        "DATABASE_URL": "postgresql://bot@db/migsafe",
        "MIGSAFE_DATA_DIR": "/var/lib/migsafe",
        "MIGSAFE_SANDBOX_URL": "postgresql://admin@sandbox/postgres",
        "PORT": "9001",
        "MIGSAFE_PUBLIC_URL": "https://migsafe.example.com",
        "MIGSAFE_WORKER_CONCURRENCY": "3",
        "MIGSAFE_STALLED_WORKER_SECONDS": "12",
    }
    settings = load_settings(environ)
    assert (settings.worker_concurrency, settings.stalled_worker_s) == (3, 12)
    assert settings.github_api_url == "http://127.0.0.1:9000/api/v3"
    assert settings.database_url == "postgresql://bot@db/migsafe"
    assert settings.data_dir == Path("/var/lib/migsafe")
    assert settings.sandbox_url == "postgresql://admin@sandbox/postgres"
    assert settings.port == 9001
    assert settings.public_url == "https://migsafe.example.com"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MIGSAFE_APP_ID", "", "MIGSAFE_APP_ID is not set"),
        ("MIGSAFE_APP_ID", "abc", "MIGSAFE_APP_ID must be a positive integer"),
        ("MIGSAFE_WEBHOOK_SECRET", " ", "MIGSAFE_WEBHOOK_SECRET is not set"),
        ("MIGSAFE_GITHUB_API_URL", "api.github.com", "MIGSAFE_GITHUB_API_URL must be an http(s)"),
        ("PORT", "70000", "PORT must be at most 65535"),
        ("PORT", "-1", "PORT must be a positive integer"),
        ("MIGSAFE_PUBLIC_URL", "ftp://x", "MIGSAFE_PUBLIC_URL must be an http(s) URL"),
        ("MIGSAFE_STALLED_WORKER_SECONDS", "0", "MIGSAFE_STALLED_WORKER_SECONDS must be a posi"),
    ],
)
def test_a_bad_variable_is_named(
    environ: dict[str, str], name: str, value: str, message: str
) -> None:
    environ[name] = value
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ)


def test_a_missing_key_names_both_variables(environ: dict[str, str]) -> None:
    del environ["MIGSAFE_PRIVATE_KEY"]
    with pytest.raises(UserError, match="MIGSAFE_PRIVATE_KEY nor MIGSAFE_PRIVATE_KEY_FILE"):
        load_settings(environ)


def test_the_key_can_come_from_a_file(
    environ: dict[str, str], rsa_pem: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(rsa_pem)
    del environ["MIGSAFE_PRIVATE_KEY"]
    environ["MIGSAFE_PRIVATE_KEY_FILE"] = str(key_file)
    assert load_settings(environ).private_key == rsa_pem


def test_an_unreadable_key_file_is_named(environ: dict[str, str], tmp_path: Path) -> None:
    del environ["MIGSAFE_PRIVATE_KEY"]
    environ["MIGSAFE_PRIVATE_KEY_FILE"] = str(tmp_path / "missing.pem")
    with pytest.raises(UserError, match="MIGSAFE_PRIVATE_KEY_FILE: cannot read"):
        load_settings(environ)


def test_a_key_with_escaped_newlines_is_accepted(environ: dict[str, str], rsa_pem: str) -> None:
    environ["MIGSAFE_PRIVATE_KEY"] = rsa_pem.strip().replace("\n", "\\n")
    assert load_settings(environ).private_key == rsa_pem


def test_text_that_is_not_a_key_is_refused(environ: dict[str, str]) -> None:
    environ["MIGSAFE_PRIVATE_KEY"] = (
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----"
    )
    with pytest.raises(UserError, match="MIGSAFE_PRIVATE_KEY is not a PEM private key"):
        load_settings(environ)


def test_a_key_that_is_not_rsa_is_refused(environ: dict[str, str]) -> None:
    environ["MIGSAFE_PRIVATE_KEY"] = _pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(UserError, match="must be an RSA private key"):
        load_settings(environ)


def test_pgpassword_goes_into_the_urls_without_a_password(environ: dict[str, str]) -> None:
    """So that the service can remove it from its environment (libpq reads it there)."""
    environ |= {
        "PGPASSWORD": "from-pgpassword",
        "DATABASE_URL": "postgresql+psycopg://bot@db/migsafe",
        "MIGSAFE_SANDBOX_URL": "postgresql://admin:own-password@sandbox/postgres",
    }
    settings = load_settings(environ)
    assert settings.database_url is not None
    assert conninfo_to_dict(settings.database_url) == {
        "user": "bot",
        "host": "db",
        "dbname": "migsafe",
        "password": "from-pgpassword",
    }
    assert settings.sandbox_url == "postgresql://admin:own-password@sandbox/postgres"


def test_a_url_libpq_cannot_parse_is_named_without_the_password(
    environ: dict[str, str],
) -> None:
    environ |= {"PGPASSWORD": "hunter2", "DATABASE_URL": "postgresql://bot@db/migsafe?bogus=1"}
    with pytest.raises(UserError) as raised:
        load_settings(environ)
    assert str(raised.value) == "DATABASE_URL is not a valid PostgreSQL connection URL"


def test_repr_shows_no_secret(environ: dict[str, str]) -> None:
    environ["DATABASE_URL"] = "postgresql://bot:db-password@db/migsafe"
    text = repr(load_settings(environ))
    assert "12345" in text
    for secret in ("s3cret-value", "PRIVATE KEY", "db-password"):
        assert secret not in text


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_bad_backup_source_stops_start_up(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    from bot import service_cli

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MIGSAFE_BACKUP_STATUS_COMMAND", "pgbackrest info --output=json")
    monkeypatch.setenv("MIGSAFE_BACKUP_STATUS_URL", "https://backups.example.test/status")
    with pytest.raises(UserError, match="MIGSAFE_BACKUP_STATUS_COMMAND"):
        service_cli.serve() if command == "serve" else service_cli.worker()
