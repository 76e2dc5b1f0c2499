"""The first administrator: made on first start, its password shown once."""

from __future__ import annotations

import secrets

from parley.accounts.passwords import PasswordHasher
from parley.storage import Account, Role, Storage

ADMIN = "admin"


async def ensure_admin(storage: Storage, hasher: PasswordHasher, now_ms: int) -> str | None:
    """Create the account ``admin`` with a random password and return the password, unless it
    exists already (then None: the password is never shown again).
    """
    if await storage.account(ADMIN) is not None:
        return None
    password = secrets.token_urlsafe(18)
    account = Account(ADMIN, ADMIN, await hasher.hash(password), Role.ADMIN, now_ms)
    if not await storage.create_account(account):
        return None  # another process made it first
    await storage.record_audit(ts=now_ms, actor="server", action="create-admin", target=ADMIN)
    return password
