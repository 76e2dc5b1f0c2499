"""``parley admin``: accounts, roles, room retention, the audit log and backups, from the shell.

It opens the same database as the server (the data dir's SQLite file, or ``--database``), and
works while the server runs: SQLite's WAL lets both use the file, and storage records every
change to an account, which a running server reads within revocation_poll_seconds (a reset or
deleted account's login is cut, a new role applies at once). Every change is written to the
audit log as ``admin-cli``. ``backup`` and ``restore`` are in :mod:`parley.backup`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from parley import backup as backups
from parley import config_sources
from parley.accounts.passwords import PasswordHasher, check_password
from parley.clock import SYSTEM_CLOCK
from parley.config import ServerConfig
from parley.protocol.errors import PeerError
from parley.protocol.files import human_size
from parley.protocol.names import nick_key, normalize_nick, normalize_room, room_key
from parley.protocol.text import for_terminal
from parley.server.preflight import keep_files_private
from parley.storage import Account, Role, Storage, StorageUnavailable
from parley.storage.factory import open_storage, sqlite_path

ACTOR = "admin-cli"


class AdminError(Exception):
    """Something the operator asked cannot be done; the message says why."""


def _where(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config", type=Path, default=default, help="the server's TOML settings file"
    )
    parser.add_argument(
        "--data-dir", type=Path, dest="data_dir", default=default, help="the server's data dir"
    )
    parser.add_argument(
        "--database", default=default, help="postgresql://... or sqlite:///PATH, as the server"
    )


def add_parser(parser: argparse.ArgumentParser) -> None:
    _where(parser, None)
    # The same options after the action too ("parley admin users --data-dir X"); SUPPRESS keeps
    # an option given before the action when it is not repeated after it.
    where = argparse.ArgumentParser(add_help=False)
    _where(where, argparse.SUPPRESS)
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help, parents=[where])

    action("users", help="list accounts")
    create = action("create", help="create an account")
    create.add_argument("name")
    create.add_argument("--role", choices=[role.value for role in Role], default=Role.USER.value)
    create.add_argument(
        "--random-password", action="store_true", help="make a password and print it once"
    )
    reset = action("reset", help="set a new password; revokes saved logins")
    reset.add_argument("name")
    reset.add_argument("--random-password", action="store_true")
    delete = action("delete", help="delete an account")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    role = action("role", help="set an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=[role.value for role in Role])
    retention = action("retention", help="keep a room's messages N days")
    retention.add_argument("room")
    retention.add_argument("days", help="a number of days, or 'default' for the server's")
    audit = action("audit", help="the audit log, newest first")
    audit.add_argument("--limit", type=int, default=50)
    backup = action("backup", help="copy the data (database, files, key) into a new directory")
    backup.add_argument("dest", type=Path, help="a new (or empty) directory")
    backup.add_argument(
        "--files-only",
        action="store_true",
        help="with PostgreSQL: the shared files, certificate and key (pg_dump does the rest)",
    )
    restore = action("restore", help="restore a backup into a new data dir")
    restore.add_argument("source", type=Path, help="the directory 'parley admin backup' made")
    restore.add_argument(
        "--force", action="store_true", help="move the data dir's current data aside first"
    )


def run(args: argparse.Namespace) -> int:
    """Run one admin action; returns the exit status (1 with a message on stderr if refused)."""
    try:
        config = _config(args)
        if args.action in ("backup", "restore"):
            return _backup_or_restore(args, config)
        return asyncio.run(_run(args, config))
    except (AdminError, backups.BackupError, ValueError, OSError, StorageUnavailable) as exc:
        print(f"parley admin: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _config(args: argparse.Namespace) -> ServerConfig:
    given = {
        name: getattr(args, name)
        for name in ("data_dir", "database")
        if getattr(args, name) is not None
    }
    flags = {"data_dir": "--data-dir", "database": "--database"}
    # The server's own sources (PARLEY_* too): admin acts on the database the server uses.
    return config_sources.load(args.config, given, flags).require_valid()


def _backup_or_restore(args: argparse.Namespace, config: ServerConfig) -> int:
    keep_files_private()
    if args.action == "backup":
        manifest = backups.backup(config, args.dest, files_only=args.files_only, say=print)
        counts = manifest.counts
        size = human_size(counts["blob_bytes"])
        held = f"{counts['blobs']} shared file(s) ({size})"
        if manifest.schema_version is not None:
            held = (
                f"{counts['messages']} message(s), {counts['accounts']} account(s), "
                f"{counts['rooms']} room(s), {held}"
            )
        print(f"Backup written to {args.dest}: {held}.")
        print("It holds the server's private key and every message: keep it private.")
        return 0
    if args.data_dir is None and args.config is None:
        raise AdminError("restore needs --data-dir NEWDIR (or a --config that sets data_dir).")
    manifest = backups.restore(args.source, config, force=args.force, say=print)
    print(f"Restored the backup of {manifest.created} into {config.data_dir}.")
    if manifest.schema_version is None:
        print("Restore the PostgreSQL database with pg_restore before starting the server.")
    print(f"Start the server with --data-dir {config.data_dir} (and your other options).")
    return 0


async def _run(args: argparse.Namespace, config: ServerConfig) -> int:
    keep_files_private()
    path = sqlite_path(config.database, config.data_dir)
    if args.action != "create" and isinstance(path, Path) and not path.exists():
        # A mistyped --data-dir must not look like an empty server (and leave a database there).
        raise AdminError(
            f"There is no Parley database at {path}: check --data-dir (or data_dir or database "
            "in the settings). The server makes it on its first start; so does 'parley admin "
            "create'."
        )
    storage = await open_storage(
        config.database, config.data_dir, sqlite_synchronous=config.sqlite_synchronous
    )
    hasher = PasswordHasher(
        config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism
    )
    try:
        action: Callable[[argparse.Namespace, Storage, PasswordHasher], Awaitable[None]]
        action = ACTIONS[args.action]
        await action(args, storage, hasher)
    finally:
        await storage.close()
    return 0


def _name(raw: str) -> tuple[str, str]:
    try:
        name = normalize_nick(raw)
    except PeerError as exc:
        raise AdminError(f"{raw!r} is not a valid nickname: {exc.detail}") from None
    return name, nick_key(name)


async def _existing(storage: Storage, raw: str) -> Account:
    _, key = _name(raw)
    account = await storage.account(key)
    if account is None:
        raise AdminError(f"There is no account {raw!r}.")
    return account


def _new_password(args: argparse.Namespace, name: str) -> str:
    """A password from a hidden prompt (asked twice) on a terminal, the first line of stdin
    otherwise, or made up with --random-password (and printed once).
    """
    if args.random_password:
        password = secrets.token_urlsafe(18)
        print(f"Password for {name}: {password}")
        return password
    if sys.stdin.isatty():
        password = getpass.getpass(f"New password for {name}: ")
        if getpass.getpass("Again: ") != password:
            raise AdminError("The two passwords differ.")
    else:
        line = sys.stdin.readline()
        if not line:
            raise AdminError(
                f"No password given for {name}: standard input was empty. Run this on a "
                "terminal to be asked, pipe the password in as one line, or use "
                "--random-password."
            )
        password = line.rstrip("\r\n")
    try:
        check_password(password)
    except PeerError as exc:
        raise AdminError(exc.detail) from None
    return password


async def users(args: argparse.Namespace, storage: Storage, hasher: PasswordHasher) -> None:
    accounts = await storage.accounts()
    width = max([len(account.name) for account in accounts] + [4])
    print(f"{'name':<{width}}  {'role':<9}  created (UTC)")
    for account in accounts:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(account.created_ms / 1000))
        print(f"{account.name:<{width}}  {account.role.value:<9}  {created}")
    print(f"{len(accounts)} account(s)")


async def create(args: argparse.Namespace, storage: Storage, hasher: PasswordHasher) -> None:
    name, key = _name(args.name)
    if await storage.account(key) is not None:
        raise AdminError(f"The account {name} exists already.")
    like = await storage.account_like(name)
    if like is not None:
        raise AdminError(f"{name} looks like the account {like.name}: choose another name.")
    password = _new_password(args, name)
    account = Account(
        key, name, await hasher.hash(password), Role(args.role), SYSTEM_CLOCK.now_ms()
    )
    if not await storage.create_account(account):
        raise AdminError(f"The account {name}, or one that looks like it, exists already.")
    await storage.record_audit(ts=SYSTEM_CLOCK.now_ms(), actor=ACTOR, action="create-account",
                               target=name, detail=args.role)  # fmt: skip
    print(f"Created {name} ({args.role}).")


async def reset(args: argparse.Namespace, storage: Storage, hasher: PasswordHasher) -> None:
    account = await _existing(storage, args.name)
    password = _new_password(args, account.name)
    await storage.update_account(account.key, password_hash=await hasher.hash(password))
    revoked = await storage.revoke_sessions(account.key)
    await storage.record_audit(ts=SYSTEM_CLOCK.now_ms(), actor=ACTOR, action="reset-password",
                               target=account.name)  # fmt: skip
    print(
        f"New password set for {account.name}; {revoked} saved login(s) revoked "
        "(a running server cuts any of them that is online)."
    )


async def delete(args: argparse.Namespace, storage: Storage, hasher: PasswordHasher) -> None:
    account = await _existing(storage, args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise AdminError("Deleting needs --yes when not asked on a terminal.")
        answer = await asyncio.to_thread(
            input, f"Delete the account {account.name} for good? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            raise AdminError("Not deleted.")
    await storage.delete_account(account.key)  # a running server cuts its login, if online
    await storage.record_audit(ts=SYSTEM_CLOCK.now_ms(), actor=ACTOR, action="delete-account",
                               target=account.name)  # fmt: skip
    print(f"Deleted {account.name}.")


async def set_role(args: argparse.Namespace, storage: Storage, hasher: PasswordHasher) -> None:
    account = await _existing(storage, args.name)
    await storage.update_account(account.key, role=Role(args.role))
    await storage.record_audit(ts=SYSTEM_CLOCK.now_ms(), actor=ACTOR, action="set-role",
                               target=account.name, detail=args.role)  # fmt: skip
    print(f"{account.name} is now {args.role} (at once, if online).")


async def retention(args: argparse.Namespace, storage: Storage, hasher: PasswordHasher) -> None:
    try:
        key = room_key(normalize_room(args.room))
    except PeerError as exc:
        raise AdminError(f"{args.room!r} is not a valid room name: {exc.detail}") from None
    if args.days == "default":
        days = None
    elif args.days.isdigit() and int(args.days) <= 100_000:
        days = int(args.days)
    else:
        raise AdminError("Days must be a whole number (0-100000) or 'default'.")
    if not await storage.set_retention(key, days):
        raise AdminError(f"There is no room {args.room}.")
    shown = "the server's setting" if days is None else f"{days} days"
    await storage.record_audit(ts=SYSTEM_CLOCK.now_ms(), actor=ACTOR, action="set-retention",
                               room=args.room, detail=shown)  # fmt: skip
    print(f"{args.room} keeps messages for {shown}.")


async def audit(args: argparse.Namespace, storage: Storage, hasher: PasswordHasher) -> None:
    for entry in await storage.audit_log(max(1, args.limit)):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.ts / 1000))
        where = f" in {entry.room}" if entry.room else ""
        whom = f" {entry.target}" if entry.target else ""
        detail = f": {entry.detail}" if entry.detail else ""
        # Names and reasons came from users: printed inertly.
        print(for_terminal(f"{when}  {entry.actor}  {entry.action}{whom}{where}{detail}"))


ACTIONS: dict[str, Callable[[argparse.Namespace, Storage, PasswordHasher], Awaitable[None]]] = {
    "users": users,
    "create": create,
    "reset": reset,
    "delete": delete,
    "role": set_role,
    "retention": retention,
    "audit": audit,
}
