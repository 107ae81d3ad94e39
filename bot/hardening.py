"""Keep migsafe's secrets out of reach of the processes beside it and below it.

migsafe runs code from pull requests. Two doors to its secrets stay open to such code even
when it runs as another process:

- the environment: every child inherits `os.environ` unless told otherwise, so the service
  removes its secret variables once `load_settings` has read them (`remove_secrets`);
- `/proc/<pid>/environ`, `/proc/<pid>/mem` and ptrace, open to every process of the same
  uid. `/proc/<pid>/environ` shows the environment the process was *started* with, whatever
  it later removes, so only making the process non-dumpable (prctl PR_SET_DUMPABLE 0) closes
  it: those files then belong to root and ptrace needs CAP_SYS_PTRACE (`make_non_dumpable`).

A non-dumpable process writes no core dump (a core would hold the secrets too). The flag is
reset by execve, so programs migsafe starts (PostgreSQL, git, the sandbox child) are
unaffected; code that forks *without* exec and then writes its own /proc/self files (a
uid_map after unsharing a user namespace) must set it back to 1 in the child first.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, MutableMapping

# <linux/prctl.h>
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

# Every variable of bot.settings that holds a secret or names where one is: the App's key
# (text or file), the webhook and page secrets, and database URLs (they may carry passwords)
# and libpq's PGPASSWORD (load_settings puts it in those URLs).
SECRET_VARIABLES = (
    "MIGSAFE_PRIVATE_KEY",
    "MIGSAFE_PRIVATE_KEY_FILE",
    "MIGSAFE_WEBHOOK_SECRET",
    "MIGSAFE_PAGE_SECRET",
    "DATABASE_URL",
    "MIGSAFE_SANDBOX_URL",
    "PGPASSWORD",
)


def make_non_dumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0) for this process; False where that is not possible (not
    Linux), so the caller can say the protection is missing instead of pretending."""
    prctl = _prctl()
    if prctl is None:
        return False
    return bool(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 and prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0)


def is_dumpable() -> bool:
    """This process's flag (True where it cannot be read: assume the worse)."""
    prctl = _prctl()
    return prctl is None or bool(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)


def remove_secrets(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove SECRET_VARIABLES from `environ` (default os.environ, which also unsets them in
    the C library's environment that libpq and children see); the names removed."""
    env = os.environ if environ is None else environ
    return [name for name in SECRET_VARIABLES if env.pop(name, None) is not None]


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    return function
