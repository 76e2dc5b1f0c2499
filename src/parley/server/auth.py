"""Who a connection is: guest or account, checked by password or session token.

Every failure a stranger could use to learn about an account reads the same (auth-failed), and
takes as long; attempts are throttled per address, per account from each address, and slowed
down per account (parley.accounts.throttle), with the counts in storage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from parley.accounts import throttle
from parley.accounts.passwords import PasswordHasher, check_password
from parley.accounts.tokens import new_token, token_hash
from parley.clock import SYSTEM_CLOCK, Clock
from parley.config import ServerConfig
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.names import nick_key, normalize_nick
from parley.server.address_group import address_group
from parley.server.rooms import Peer
from parley.storage import Account, Role, Storage, new_principal

log = logging.getLogger("parley.server")


def _too_many(wait: float) -> PeerError:
    return PeerError(
        ErrorCode.TOO_MANY_ATTEMPTS,
        f"Too many failed attempts; try again in {int(wait) + 1} seconds.",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who a login turned out to be. ``token`` is new (to give the client) or empty;
    ``principal`` is the account's id, or a guest id minted for this login alone.
    """

    nick: str
    nick_key: str
    principal: str
    role: Role
    account: str
    token_hash: str = ""
    token: str = ""


class Authenticator:
    def __init__(self, storage: Storage, config: ServerConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self._storage = storage
        self._clock = clock
        self._config = config
        self._hasher = PasswordHasher(
            config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism
        )
        self._known_waits = throttle.KnownWaits()

    @property
    def hasher(self) -> PasswordHasher:
        return self._hasher

    async def _count_registration(self, address: str) -> None:
        """Count a registration from ``address`` in storage, shared by every node. Raises
        PeerError(RATE_LIMITED) past registrations_per_address_per_hour.
        """
        now = self._clock.now_ms()
        limit = (
            throttle.registration_key(address_group(address)),
            self._config.registrations_per_address_per_hour,
        )
        if not await self._storage.take_window_slots([limit], now, now - throttle.LIMIT_WINDOW_MS):
            raise PeerError(
                ErrorCode.RATE_LIMITED, "Too many registrations from your address; try later."
            )

    async def identify(
        self, raw_nick: str, password: str, token: str, address: str, cookie: str = ""
    ) -> Identity:
        """Check a ``nick`` request. ``cookie`` is a browser's session cookie (web port): it
        logs in the account it belongs to when the nick is that account's and the request has
        neither password nor token. Raises PeerError: INVALID_NICK, PASSWORD_REQUIRED,
        AUTH_FAILED, SESSION_EXPIRED, TOO_MANY_ATTEMPTS, ACCOUNT_REQUIRED.
        """
        nick = normalize_nick(raw_nick)
        key = nick_key(nick)
        account = await self._storage.account(key)
        if token:
            return await self._resume(account, token)
        if (
            cookie
            and not password
            and account is not None
            and await self.session_owner(cookie) == account.key
        ):
            return Identity(
                account.name,
                account.key,
                account.id,
                account.role,
                account.key,
                token_hash(cookie),
            )
        if password:
            account = await self._verify(account, key, password, address)
            token, hashed = await self._new_session(account.key)
            return Identity(
                account.name, account.key, account.id, account.role, account.key, hashed, token
            )
        if account is not None:
            raise PeerError(ErrorCode.PASSWORD_REQUIRED)
        if not self._config.allow_guests:
            raise PeerError(ErrorCode.ACCOUNT_REQUIRED)
        registered = await self._storage.account_like(nick)
        if registered is not None:
            raise PeerError(
                ErrorCode.NICK_TAKEN,
                f"The nickname {nick} looks like {registered.name}, which is registered.",
            )
        return Identity(nick, key, new_principal(), Role.USER, "")

    async def session_owner(self, token: str) -> str:
        """The key of the account whose unexpired session ``token`` is, or "". One read."""
        return await self._storage.session_account(token_hash(token), self._clock.now_ms()) or ""

    async def password_login(self, raw_nick: str, password: str, address: str) -> Identity:
        """Check an account's password (throttled as any login) and start a session: the web
        port's login form. Raises PeerError: INVALID_NICK, AUTH_FAILED, TOO_MANY_ATTEMPTS.
        """
        key = nick_key(normalize_nick(raw_nick))
        account = await self._verify(await self._storage.account(key), key, password, address)
        token, hashed = await self._new_session(account.key)
        return Identity(
            account.name, account.key, account.id, account.role, account.key, hashed, token
        )

    async def register_name(
        self, raw_nick: str, password: str, address: str, online: Callable[[str], bool]
    ) -> Identity:
        """Make a nickname nobody holds an account with a new principal, and start a session:
        the web port's "create an account" (a guest already chatting uses ``register``, which
        keeps its principal). ``online(nick_key)`` says whether someone online has the name.
        Raises PeerError: INVALID_NICK, INVALID_PASSWORD, RATE_LIMITED, ALREADY_REGISTERED,
        NICK_TAKEN.
        """
        nick = normalize_nick(raw_nick)
        key = nick_key(nick)
        check_password(password)
        await self._count_registration(address)
        if await self._storage.account(key) is not None:
            raise PeerError(
                ErrorCode.ALREADY_REGISTERED, f"{nick} is registered: log in with its password."
            )
        registered = await self._storage.account_like(nick)
        if registered is not None:
            raise PeerError(
                ErrorCode.NICK_TAKEN,
                f"The nickname {nick} looks like {registered.name}, which is registered.",
            )
        if online(key):
            raise PeerError(
                ErrorCode.NICK_TAKEN,
                f"Someone online is called {nick}; if it is you, use /register in the chat.",
            )
        account = Account(
            key,
            nick,
            await self._hasher.hash(password),
            Role.USER,
            self._clock.now_ms(),
            new_principal(),
        )
        if not await self._storage.create_account(account):
            raise PeerError(ErrorCode.ALREADY_REGISTERED)
        await self._storage.record_audit(ts=self._clock.now_ms(), actor=nick, action="register")
        log.info("%s registered", nick, extra={"nick_key": key, "event": "register"})
        token, hashed = await self._new_session(key)
        return Identity(nick, key, account.id, Role.USER, key, hashed, token)

    async def end_session(self, token: str) -> None:
        """Revoke the session of ``token`` (a browser logging out); harmless if none."""
        await self._storage.revoke_session(token_hash(token))

    async def _resume(self, account: Account | None, token: str) -> Identity:
        hashed = token_hash(token)
        owner = await self._storage.session_account(hashed, self._clock.now_ms())
        if account is None or owner != account.key:
            raise PeerError(ErrorCode.SESSION_EXPIRED)
        return Identity(account.name, account.key, account.id, account.role, account.key, hashed)

    async def _verify(
        self, account: Account | None, key: str, password: str, address: str
    ) -> Account:
        # Counted before the check: however many arrive at once, each sees its own count, so
        # at most FREE_ATTEMPTS of them are ever checked.
        keys = throttle.attempt_keys(key, address_group(address))
        clock = self._clock.monotonic()
        wait = self._known_waits.wait(keys[:2], clock)
        if wait > 0:
            raise _too_many(wait)
        now = self._clock.now_ms()
        counts = await self._storage.count_attempts(
            keys, now, now - int(throttle.FORGET_AFTER_SECONDS * 1000)
        )
        # Each key this attempt came too early for, and how long from now until its next one
        # may be checked (the refused attempt counted too, so the wait grew with it).
        retry_after = {
            limited: throttle.retry_after_seconds(count)
            for limited, (count, previous) in zip(keys, counts[:2], strict=False)
            if throttle.wait_seconds(count, previous, now) > 0
        }
        if retry_after:
            log.info(
                "Throttled login for %s from %s",
                key,
                address,
                extra={"peer": address, "nick_key": key, "event": "login_throttled"},
            )
            for limited, seconds in retry_after.items():
                self._known_waits.learn(limited, clock + seconds)
            raise _too_many(max(retry_after.values()))
        slow_down = throttle.slow_down_seconds(counts[2][0])
        if slow_down:
            await asyncio.sleep(slow_down)
        if account is None:
            await self._hasher.verify_nothing(password)
            ok, rehashed = False, None
        else:
            ok, rehashed = await self._hasher.verify(account.password_hash, password)
        if not ok or account is None:
            log.info(
                "Failed login for %s from %s",
                key,
                address,
                extra={"peer": address, "nick_key": key, "event": "login_failed"},
            )
            raise PeerError(ErrorCode.AUTH_FAILED)
        # This attempt only, on its own keys: no other account's count changes.
        await self._storage.refund_attempts(keys)
        if rehashed is not None:
            await self._storage.update_account(account.key, password_hash=rehashed)
        return account

    async def _new_session(self, account_key: str) -> tuple[str, str]:
        token = new_token()
        hashed = token_hash(token)
        expires = self._clock.now_ms() + int(self._config.session_days * 86_400_000)
        await self._storage.create_session(hashed, account_key, expires)
        return token, hashed

    async def register(self, peer: Peer, password: str) -> Identity:
        """Make the guest ``peer``'s nickname an account. Raises PeerError: INVALID_PASSWORD,
        ALREADY_REGISTERED, RATE_LIMITED.
        """
        if peer.account:
            raise PeerError(ErrorCode.ALREADY_REGISTERED, "You are already logged in to it.")
        check_password(password)
        await self._count_registration(peer.host)
        password_hash = await self._hasher.hash(password)
        # The guest's own id becomes the account's: what it did in this login (rooms it made,
        # files, private messages) stays its own, and the id was never anyone else's.
        account = Account(
            peer.nick_key, peer.nick, password_hash, Role.USER, self._clock.now_ms(), peer.principal
        )
        if not await self._storage.create_account(account):
            raise PeerError(ErrorCode.ALREADY_REGISTERED)
        await self._storage.record_audit(
            ts=self._clock.now_ms(), actor=peer.nick, action="register"
        )
        log.info("%s registered", peer.nick, extra={"nick_key": peer.nick_key, "event": "register"})
        token, hashed = await self._new_session(account.key)
        return Identity(
            peer.nick, peer.nick_key, peer.principal, Role.USER, account.key, hashed, token
        )

    async def change_password(self, peer: Peer, old: str, new: str) -> str:
        """Check ``old``, store ``new``, revoke every other session; returns a fresh token,
        already this connection's (``peer.token_hash``). Raises PeerError: ACCOUNT_REQUIRED,
        AUTH_FAILED, TOO_MANY_ATTEMPTS, INVALID_PASSWORD.
        """
        if not peer.account:
            raise PeerError(ErrorCode.ACCOUNT_REQUIRED, "Only registered nicknames have one.")
        account = await self._storage.account(peer.account)
        await self._verify(account, peer.account, old, peer.host)
        check_password(new)
        await self._storage.update_account(peer.account, password_hash=await self._hasher.hash(new))
        # The new session first, and this connection on it, before the others are revoked:
        # the revocation watch then finds this one valid and cuts only the others.
        token, hashed = await self._new_session(peer.account)
        peer.token_hash = hashed
        await self._storage.revoke_sessions(peer.account, keep=hashed)
        await self._storage.record_audit(ts=self._clock.now_ms(), actor=peer.nick, action="passwd")
        return token

    async def logout(self, peer: Peer) -> None:
        if peer.token_hash:
            await self._storage.revoke_session(peer.token_hash)
