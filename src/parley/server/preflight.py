"""What is checked before the server touches its data: the data dir (a directory, private to
the server's user), the SQLite file (a database, not an empty file), and what a node of a
cluster needs (a shared database and certificate). Each refusal is one line naming the file or
setting, what is wrong and what to do; ``parley config check`` reports the same ones.

The data is private from the first start: the process creates files with mode 0600 and
directories with 0700 (:func:`keep_files_private`), and every start checks that nothing in the
data dir has become readable by other users since.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from parley.storage.factory import sqlite_path

if TYPE_CHECKING:
    from parley.config import ServerConfig


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


def require_shared_database(config: ServerConfig) -> None:
    """Nodes of a cluster share one PostgreSQL database. Raises StartupRefused otherwise."""
    if sqlite_path(config.database, config.data_dir) is not None:
        raise StartupRefused(
            "The bus is set (--bus, PARLEY_BUS or bus in the settings file), but the database "
            "is SQLite, which only one process can serve: set the database (--database, "
            "PARLEY_DATABASE or database in the settings file) to the PostgreSQL database all "
            "the nodes share, postgresql://USER@HOST/DB, or unset the bus to run one process."
        )


def require_shared_certificate(config: ServerConfig) -> None:
    """Nodes of a cluster present one certificate. Raises StartupRefused otherwise. Workers on
    one machine (``workers`` above 1) share their data dir's, made by the first to start.
    """
    if config.cert_file is None and config.workers <= 1:
        raise StartupRefused(
            "The bus is set (--bus, PARLEY_BUS or bus in the settings file), but no certificate "
            "is (cert_file and key_file in the settings file, --cert and --key, or "
            "PARLEY_CERT_FILE and PARLEY_KEY_FILE): each node would make a self-signed one of "
            "its own, and clients that trusted one node's would be told the certificate "
            "changed whenever the load balancer sends them to another. Give every node the "
            "same certificate and key (made with openssl, see docs/admin.md, Certificates; or "
            "from your CA), or unset the bus to run one process."
        )
