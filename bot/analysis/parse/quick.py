"""The cheapest statement shapes, read without sqlglot: transaction control and SET / RESET."""

from __future__ import annotations

import re

from bot.analysis.model import Action, ActionKind
from bot.analysis.parse.split import other

_NAME = r"""(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))*"""
_SET = re.compile(
    rf"SET\s+(?:(?:SESSION|LOCAL)\s+)?(?P<name>{_NAME})\s*(?:=|\bTO\b)\s*(?P<value>.*)",
    re.I | re.S,
)
# Settings with their own syntax (no `=` / `TO`), and the parameter each one sets.
_SET_SPECIAL = re.compile(
    r"SET\s+(?:(?:SESSION|LOCAL)\s+)?(?P<name>TIME\s+ZONE|ROLE|SCHEMA|NAMES)\s+(?P<value>.*)",
    re.I | re.S,
)
_SPECIAL_SETTINGS = {
    "TIME ZONE": "timezone",
    "ROLE": "role",
    "SCHEMA": "search_path",
    "NAMES": "client_encoding",
}
_QUOTED_STRING = re.compile(r"'((?:[^']|'')*)'")


def classify_quick(text: str, words: list[str]) -> list[Action] | None:
    """Transaction control and settings, without sqlglot."""
    first = words[0] if words else ""
    if first == "BEGIN" or words[:2] == ["START", "TRANSACTION"]:
        return [Action(ActionKind.BEGIN)]
    if first in {"COMMIT", "END"} and words[1:2] != ["PREPARED"]:
        return [Action(ActionKind.COMMIT)]
    if first in {"ROLLBACK", "ABORT"}:
        return [Action(ActionKind.OTHER, detail="ROLLBACK")]
    if first == "RESET":
        return [Action(ActionKind.SET, setting=_setting_name(text[5:].strip()), value=None)]
    if first == "SET":
        return _classify_set(text, words)
    return None


def _classify_set(text: str, words: list[str]) -> list[Action]:
    """SET [SESSION | LOCAL] name {= | TO} value; other SET forms (TRANSACTION, ...) are OTHER."""
    match = _SET.match(text) or _SET_SPECIAL.match(text)
    if match is None:
        return other(words, " ".join(words[:2]))
    return [
        Action(
            ActionKind.SET,
            setting=_setting_name(match.group("name")),
            value=_setting_value(match.group("value")),
            local=words[1:2] == ["LOCAL"],
        )
    ]


def _setting_name(name: str) -> str:
    special = _SPECIAL_SETTINGS.get(" ".join(name.upper().split()))
    if special is not None:
        return special
    if '"' not in name:
        return name.lower()
    return ".".join(
        part[1:-1].replace('""', '"') if part.startswith('"') else part.lower()
        for part in re.findall(r'"(?:[^"]|"")+"|[^.]+', name)
    )


def _setting_value(value: str) -> str | None:
    value = value.strip()
    if value.upper() in {"DEFAULT", ""}:
        return None
    quoted = _QUOTED_STRING.fullmatch(value)
    return quoted.group(1).replace("''", "'") if quoted else value
