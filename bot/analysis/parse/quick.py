"""The cheapest statement shapes, read without sqlglot: transaction control, SET / RESET, and
the session statements no rule needs to look into (SAVEPOINT, NOTIFY, ...).

Details the rules and `StreamState` read: a COMMIT `AND CHAIN` opens a new transaction at
once; ROLLBACK is an OTHER "ROLLBACK" (or "ROLLBACK AND CHAIN"), and ROLLBACK TO SAVEPOINT
an OTHER "ROLLBACK TO SAVEPOINT", which ends nothing. RESET ALL (and DISCARD ALL) are a SET
of the setting "all".
"""

from __future__ import annotations

import re

from bot.analysis.model import Action, ActionKind
from bot.analysis.parse.split import code_only, leading_words, other

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
    """Transaction control, settings and harmless session statements, without sqlglot."""
    first = words[0] if words else ""
    if first == "BEGIN" or words[:2] == ["START", "TRANSACTION"]:
        return [Action(ActionKind.BEGIN)]
    if first in _ENDING:
        return _transaction_end(text)
    if first == "RESET":
        return [Action(ActionKind.SET, setting=_setting_name(text[5:].strip()), value=None)]
    if first == "SET":
        return _classify_set(text, words)
    if words[:2] == ["DISCARD", "ALL"]:  # RESET ALL among the rest
        return [Action(ActionKind.SET, setting="all", value=None, detail="DISCARD ALL")]
    if first in _SESSION_STATEMENTS:
        return other(words, first)
    if words[:3] == ["ALTER", "DEFAULT", "PRIVILEGES"]:  # only for objects created later
        return other(words, "ALTER DEFAULT PRIVILEGES")
    return None


# Statements that lock no table and change no schema, which sqlglot cannot parse.
_SESSION_STATEMENTS = frozenset(
    {"SAVEPOINT", "RELEASE", "NOTIFY", "LISTEN", "UNLISTEN", "CHECKPOINT", "DISCARD"}
)
_ENDING = frozenset({"COMMIT", "END", "ROLLBACK", "ABORT"})
_COMMITS = frozenset({"COMMIT", "END"})


def _transaction_end(text: str) -> list[Action] | None:
    """{COMMIT | END | ROLLBACK | ABORT} [WORK | TRANSACTION] [AND [NO] CHAIN], and
    ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name. Anything else (COMMIT PREPARED, or
    an `END IF` cut out of a routine's body) is not the end of the transaction: None."""
    words = leading_words(code_only(text), limit=8)
    verb, rest = words[0], words[1:]
    if rest[:1] in (["WORK"], ["TRANSACTION"]):
        rest = rest[1:]
    commit = verb in _COMMITS
    if not commit and rest[:1] == ["TO"]:
        return [Action(ActionKind.OTHER, detail="ROLLBACK TO SAVEPOINT")]
    if rest == ["AND", "CHAIN"]:
        if commit:
            return [Action(ActionKind.COMMIT, detail="AND CHAIN")]
        return [Action(ActionKind.OTHER, detail="ROLLBACK AND CHAIN")]
    if rest not in ([], ["AND", "NO", "CHAIN"]):
        return None
    return [Action(ActionKind.COMMIT)] if commit else [Action(ActionKind.OTHER, detail="ROLLBACK")]


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
