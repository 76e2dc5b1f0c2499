"""The first administrator: made on a new database's first start, its password shown once."""

from __future__ import annotations

import secrets

from parley.accounts.passwords import PasswordHasher
from parley.storage import Account, Role, Storage

ADMIN = "admin"


class AdminNameTaken(Exception):
    """An administrator was asked for, but 'admin' is another user's account."""


async def ensure_admin(
    storage: Storage, hasher: PasswordHasher, now_ms: int, *, force: bool = False
) -> str | None:
    """On a new database (no account, nothing in the audit log), create the account ``admin``
    with a random password and return the password. With ``force`` (``--init-admin``), do the
    same whenever no administrator exists. Otherwise None: an administrator deleted on purpose
    is not brought back, and a password is never shown twice. Three queries.

    Raises AdminNameTaken when ``force`` finds 'admin' held by an account that is not one.
    """
    accounts = await storage.accounts()
    if force:
        if any(account.role is Role.ADMIN for account in accounts):
            return None
        if any(account.key == ADMIN for account in accounts):
            raise AdminNameTaken(
                "--init-admin: the account 'admin' exists but is not an administrator; make "
                "it one with 'parley admin role admin admin'."
            )
    elif accounts or await storage.audit_log(1):
        return None
    password = secrets.token_urlsafe(18)
    account = Account(ADMIN, ADMIN, await hasher.hash(password), Role.ADMIN, now_ms)
    if not await storage.create_account(account):
        return None  # another process made it first
    await storage.record_audit(ts=now_ms, actor="server", action="create-admin", target=ADMIN)
    return password
