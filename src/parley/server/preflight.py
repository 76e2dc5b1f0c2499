"""What is checked before the server touches its data: the data dir (a directory, private to
the server's user) and the SQLite file (a database, not an empty file). Each refusal is one
line naming the file, what is wrong and what to do.

The data is private from the first start: the process creates files with mode 0600 and
directories with 0700 (:func:`keep_files_private`), and every start checks that nothing in the
data dir has become readable by other users since.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from parley.storage.factory import sqlite_path


class StartupRefused(Exception):
    """The server will not start; the message says why and what to do."""


def keep_files_private() -> None:
    """Everything this process creates (database, WAL and SHM files, key, uploads) is for its
    own user only, whatever the login's umask.
    """
    os.umask(0o077)


def check_data_dir(data_dir: Path) -> None:
    """Make the data dir (mode 0700) if it is missing. Raises StartupRefused when it is not a
    directory, or when it or anything directly in it can be read by other users.
    """
    if data_dir.exists() and not data_dir.is_dir():
        raise StartupRefused(
            f"--data-dir {data_dir} is a file, not a directory: give a directory (it is made "
            "if missing), or move that file away."
        )
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = exposure(data_dir)
    except OSError as exc:
        raise StartupRefused(
            f"--data-dir {data_dir}: cannot be used ({exc.strerror}): check that the server's "
            "user owns it."
        ) from None
    if problem is not None:
        raise StartupRefused(problem)


def exposure(data_dir: Path) -> str | None:
    """What in ``data_dir`` (itself, or anything directly in it) other users can read, and
    the command that fixes it; None when it is private. Raises OSError.
    """
    exposed = [path for path in [data_dir, *data_dir.iterdir()] if path.lstat().st_mode & 0o077]
    if not exposed:
        return None
    mode = stat.S_IMODE(exposed[0].lstat().st_mode)
    return (
        f"{exposed[0]} can be read by other users (mode {mode:04o}), and the data dir holds "
        f"the server's private key and every message. Run: chmod -R go-rwx {data_dir}"
    )


def check_database_file(database: str | None, data_dir: Path) -> None:
    """Raises StartupRefused when the SQLite file exists but is empty: SQLite would take it
    as a new database, and the server would start afresh (with a new administrator) in place of
    what that file once held.
    """
    path = sqlite_path(database, data_dir)
    if isinstance(path, Path) and path.is_file() and path.stat().st_size == 0:
        raise StartupRefused(
            f"{path} is empty (0 bytes), so it holds no accounts or rooms. If it was meant to "
            "be a new server, delete it; otherwise restore it from a backup."
        )
