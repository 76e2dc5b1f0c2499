"""Logging in from a browser without its page ever holding the session token.

    POST /login     {"nick":…,"password":…}  an account's password; sets the session cookie
    POST /register  {"nick":…,"password":…}  a new account for a free nickname; sets it too
    POST /logout                              revokes the cookie's session and clears it
    GET  /session                             {"nick":…} of the cookie's account, or 401

The cookie (SESSION_COOKIE) is ``HttpOnly; Secure; SameSite=Strict; Path=/``: script on the
page cannot read it, other sites' requests do not carry it, and the WebSocket upgrade at /ws
hands it to the connection, where a ``nick`` with neither password nor token logs in the
account it belongs to. Password checks go through the same Authenticator as the TLS port's
``nick``, so failures count in the same throttle (in storage: per account, per address group).

Cross-site requests: a POST is refused unless its ``Origin`` is the public address, and
SameSite=Strict keeps the cookie off any request another site starts. Bodies are JSON of at
most MAX_BODY_BYTES; errors are JSON, ``{"type":"error","code":…,"message":…}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec
from aiohttp import web

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError
from parley.server.address_group import address_group
from parley.server.auth import Authenticator, Identity
from parley.server.http_errors import HttpError
from parley.server.hub import Hub
from parley.server.request_limits import RequestLimits
from parley.storage import StorageUnavailable

log = logging.getLogger("parley.server")

# "__Host-": the browser keeps it only if Secure, for this host alone (no Domain), Path=/.
SESSION_COOKIE = "__Host-parley-session"
# A nickname and a password, as JSON, with room to spare.
MAX_BODY_BYTES = 4096
# What an attempt costs in the address's request budget (the chat's "expensive" requests
# cost about as much): a password check is the dearest thing a stranger can ask for.
_ATTEMPT_COST = 5


class Credentials(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    nick: Annotated[str, msgspec.Meta(min_length=1, max_length=4 * limits.MAX_NICK_CHARS)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=limits.MAX_PASSWORD_CHARS)]


_decoder = msgspec.json.Decoder(Credentials)


class WebLogin:
    """The /login, /register, /logout and /session routes (see the module's docstring)."""

    def __init__(
        self,
        auth: Authenticator,
        hub: Hub,
        limits: RequestLimits,
        session_days: float,
        origin: Callable[[], str],
    ) -> None:
        self._auth = auth
        self._hub = hub
        self._limits = limits
        self._max_age = int(session_days * 86400)
        self._origin = origin

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/login", self._login)
        app.router.add_post("/register", self._register)
        app.router.add_post("/logout", self._logout)
        app.router.add_get("/session", self._session)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        async def check(credentials: Credentials, address: str) -> Identity:
            return await self._auth.password_login(credentials.nick, credentials.password, address)

        return await self._with_credentials(request, check)

    async def _register(self, request: web.Request) -> web.StreamResponse:
        async def create(credentials: Credentials, address: str) -> Identity:
            return await self._auth.register_name(
                credentials.nick, credentials.password, address, self._hub.is_online
            )

        return await self._with_credentials(request, create)

    async def _with_credentials(self, request: web.Request, check: _Check) -> web.StreamResponse:
        try:
            address = self._admit(request)
            credentials = await _credentials(request)
            identity = await check(credentials, address)
        except HttpError as exc:
            return exc.response(_NO_STORE)
        except PeerError as exc:
            return _peer_error(exc)
        except StorageUnavailable:
            return HttpError.of(ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE.text).response()
        response = web.json_response(
            {"nick": identity.nick, "role": identity.role.value}, headers=_NO_STORE
        )
        response.set_cookie(
            SESSION_COOKIE,
            identity.token,
            max_age=self._max_age,
            path="/",
            secure=True,
            httponly=True,
            samesite="Strict",
        )
        return response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        try:
            self._admit(request)
        except HttpError as exc:
            return exc.response(_NO_STORE)
        token = request.cookies.get(SESSION_COOKIE, "")
        if token:
            try:
                await self._auth.end_session(token)
            except StorageUnavailable:
                return HttpError.of(ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE.text).response()
        response = web.json_response({"nick": ""}, headers=_NO_STORE)
        response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return response

    async def _session(self, request: web.Request) -> web.StreamResponse:
        now = asyncio.get_running_loop().time()
        if self._limits.charge(address_group(request.remote or ""), "", 1, now) is not None:
            return HttpError.of(
                ErrorCode.RATE_LIMITED, "Too many requests from your address; slow down."
            ).response(_NO_STORE)
        token = request.cookies.get(SESSION_COOKIE, "")
        owner = ""
        if token and len(token) <= limits.MAX_TOKEN_CHARS:
            try:
                owner = await self._auth.session_owner(token)
            except StorageUnavailable:
                return HttpError.of(ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE.text).response()
        account = await self._hub.storage.account(owner) if owner else None
        if account is None:
            return HttpError(
                401, ErrorCode.SESSION_EXPIRED, "Not logged in in this browser."
            ).response(_NO_STORE)
        return web.json_response({"nick": account.name}, headers=_NO_STORE)

    def _admit(self, request: web.Request) -> str:
        """The client's address, once its POST is from this server's page and within its
        address's request budget. Raises HttpError.
        """
        origin = request.headers.get("Origin", "")
        if origin.lower() != self._origin().lower():
            log.info(
                "Refused a POST to %s from %s: Origin %r", request.path, request.remote, origin
            )
            raise HttpError(
                403,
                ErrorCode.NOT_PERMITTED,
                "Log in from this server's own page (web_public_url); "
                "requests from other sites are refused.",
            )
        address = request.remote or ""
        now = asyncio.get_running_loop().time()
        if self._limits.charge(address_group(address), "", _ATTEMPT_COST, now) is not None:
            raise HttpError.of(
                ErrorCode.RATE_LIMITED, "Too many requests from your address; slow down."
            )
        return address


_Check = Callable[[Credentials, str], Awaitable[Identity]]
_NO_STORE = {"Cache-Control": "no-store"}


async def _credentials(request: web.Request) -> Credentials:
    """The JSON body's nickname and password. Raises HttpError (too long, not JSON, fields
    missing or of the wrong kind).
    """
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise HttpError(413, ErrorCode.INVALID_MESSAGE, f"At most {MAX_BODY_BYTES} bytes.")
    body = bytearray()
    while len(body) <= MAX_BODY_BYTES:
        chunk = await request.content.read(MAX_BODY_BYTES + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > MAX_BODY_BYTES:
        raise HttpError(413, ErrorCode.INVALID_MESSAGE, f"At most {MAX_BODY_BYTES} bytes.")
    try:
        return _decoder.decode(bytes(body))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HttpError(
            400,
            ErrorCode.INVALID_MESSAGE,
            f'Send JSON: {{"nick": "…", "password": "…"}} ({exc}).',
        ) from None


def _peer_error(exc: PeerError) -> web.Response:
    return HttpError.of(exc.code, exc.detail).response(_NO_STORE)
