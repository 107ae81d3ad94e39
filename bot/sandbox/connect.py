"""Connecting to the sandbox's server: one clear line, never a password, when it fails."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bot.errors import UserError
from bot.sandbox.database import SandboxServer, shared_server

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def connected_server(url: str | None, named: str) -> SandboxServer:
    """The server at `url` (None: the embedded cluster), connected: UserError naming it as
    `named` (one line, no password) when `url` is not a connection string or the server
    cannot be reached; the embedded cluster's own errors (no initdb) are UserErrors already."""
    try:
        server = shared_server(url)
        server.server_version()  # connects (once; the connection is kept)
    except psycopg.ProgrammingError:  # libpq could not parse it
        # libpq's own message quotes the text it choked on, which may hold the password
        # ("missing = after u:secret@h"): it is not repeated.
        raise UserError(
            f"{named}: not a PostgreSQL URL (postgresql://user@host/db) or key=value "
            "connection string"
        ) from None
    except psycopg.Error as error:
        raise UserError(
            f"{named}: cannot connect to the sandbox server: {redacted(str(error), url)}"
        ) from None
    return server


def redacted(message: str, url: str | None) -> str:
    """libpq's message on one line, without the password it may quote from the URL."""
    text = _URL_PASSWORD.sub(r"\1***@", message)
    text = _KEYWORD_PASSWORD.sub(r"\1***", text)
    password = _password_of(url)
    if password:
        text = text.replace(password, "***")
    return " ".join(text.split())


def _password_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        value = conninfo_to_dict(re.sub(r"^(postgres(?:ql)?)\+\w+://", r"\1://", url)).get(
            "password"
        )
    except psycopg.Error:
        return None
    return str(value) if value else None
