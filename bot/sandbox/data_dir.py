"""Where a persistent embedded cluster keeps its data: reachable by the server, private to it.

As root, PostgreSQL runs as the `postgres` user (initdb refuses root), so every directory
above the data directory must be enterable by that user: `/root/...` (mode 0700) is not.
Rather than loosening a directory we do not own, start-up stops with one line naming the
directory in the way; the directories migsafe creates itself are made enterable (0711:
not listable) whatever the umask. The data directory itself is 0700 and belongs to the
server user, and the admin password file in it is 0600: only that user (and root) reads it.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from bot.errors import UserError
from bot.settings import ROOT_DATA_DIR

PARENT_MODE = 0o711  # enterable, not listable
DATA_MODE = 0o700  # PostgreSQL's own requirement, and the password file lives here


def prepare_location(data_dir: Path, server_user: pwd.struct_passwd | None) -> None:
    """Create the missing directories above `data_dir` (and check it is not a file).

    `server_user`: the OS user PostgreSQL will run as, when that is not this process's user
    (migsafe is root); every directory above `data_dir` must then be enterable by it.
    UserError (path = data_dir) says what is in the way and what to do.
    """
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError("not a directory", path=str(data_dir))
    for parent in data_dir.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{parent} is not a directory", path=str(data_dir))
    missing = [parent for parent in data_dir.parents if not parent.exists()]
    if server_user is not None:
        for parent in reversed(data_dir.parents):  # from / down: name the first one in the way
            if parent.exists() and not _can_enter(parent, server_user):
                raise UserError(_unreachable(parent, server_user), path=str(data_dir))
    for parent in reversed(missing):
        try:
            parent.mkdir()
            if server_user is not None:
                parent.chmod(PARENT_MODE)  # the umask may have taken the x bits away
        except FileExistsError:
            continue  # another process made it meanwhile
        except OSError as error:
            message = f"cannot create {parent}: {error.strerror}"
            raise UserError(message, path=str(data_dir)) from error


def create_private_file(path: Path, text: str) -> None:
    """Write `text` to a new file that is 0600 from the first byte (no window in which the
    umask's mode lets another user open it), replacing any file or link there."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def _can_enter(directory: Path, user: pwd.struct_passwd) -> bool:
    """Search permission for `user` by the mode bits (ACLs aside: PostgreSQL's own error
    would still name the path)."""
    info = directory.stat()
    if user.pw_uid == 0:
        return True
    if info.st_uid == user.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _unreachable(directory: Path, user: pwd.struct_passwd) -> str:
    info = directory.stat()
    owner = user_name(info.st_uid)
    return (
        f"PostgreSQL runs as the OS user {user.pw_name!r} (migsafe is root), which cannot "
        f"enter {directory} (mode {stat.S_IMODE(info.st_mode):04o}, owner {owner}); set "
        f"MIGSAFE_DATA_DIR to a directory it can reach, e.g. {ROOT_DATA_DIR} (the default "
        "for root)"
    )


def user_name(uid: int) -> str:
    """The account name of `uid`, else the number."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
