"""Errors that are the user's to fix: reported as one clear line, exit status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a missing project, an unreadable config, an unknown revision.

    The message names the file (or option) and what is wrong with it; the CLI
    prints it without a traceback.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)
