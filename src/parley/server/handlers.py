"""One handler per request type: adding a request means adding one function here.

A handler runs on the event loop with the connection it came from. It replies with
``connection.reply`` or raises PeerError (the connection turns that into an error reply). A
handler that needs storage is a coroutine: the connection runs it before reading on, so one
client's requests always take effect in the order they were sent. The session has already
checked that the request is allowed in the current state.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from parley import __version__
from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.messages import (
    Away,
    Ban,
    Bye,
    DeleteFile,
    GetFile,
    GetUnread,
    Hello,
    History,
    Join,
    Kick,
    ListFiles,
    ListRooms,
    ListUsers,
    Logout,
    Mute,
    Nick,
    Notice,
    Ok,
    Op,
    Part,
    Passwd,
    Ping,
    Pong,
    Read,
    Register,
    Request,
    Send,
    ShareFile,
    Topic,
    Unban,
    Unmute,
    Unread,
    Users,
    Welcome,
    Who,
    Whois,
)
from parley.protocol.session import choose_version
from parley.server.moderation import appoint, moderate
from parley.server.name_pages import after_key

if TYPE_CHECKING:
    from parley.server.connection import Connection

log = logging.getLogger("parley.server")

R = TypeVar("R", bound=Request)
Handler = Callable[["Connection", Any], Awaitable[None] | None]
HANDLERS: dict[type[Any], Handler] = {}


def handles(
    kind: type[R],
) -> Callable[[Callable[[Connection, R], Awaitable[None] | None]], Handler]:
    """Register the decorated function as the handler of requests of type ``kind``."""

    def register(handler: Callable[[Connection, R], Awaitable[None] | None]) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return register


# --- connection and login --------------------------------------------------------------------


@handles(Hello)
def hello(connection: Connection, request: Hello) -> None:
    version = choose_version(request.versions)
    log.debug("%s speaks version %d with %r", connection.address, version, request.client)
    connection.session.granted(request)
    connection.set_timer(connection.context.config.login_timeout_seconds)
    connection.reply(
        Welcome(
            id=request.id,
            version=version,
            server=f"parley/{__version__}",
            max_frame_bytes=limits.MAX_CLIENT_FRAME_BYTES,
            max_text_chars=limits.MAX_TEXT_CHARS,
            history_epoch=connection.context.history_epoch,
        )
    )


@handles(Nick)
async def nick(connection: Connection, request: Nick) -> None:
    context = connection.context
    identity = await context.auth.identify(
        request.nick, request.password, request.token, connection.host, connection.session_cookie
    )
    if identity.account and (left := context.limits.account_penalty_left(identity.principal)):
        # A guest id is new at every login: only an account can be held back by name.
        raise PeerError(
            ErrorCode.FLOOD_PENALTY,
            f"A connection of {identity.nick} was cut off for sending too fast; log in again "
            f"in {math.ceil(round(left, 3))} s.",
        )
    connection.nick, connection.nick_key = identity.nick, identity.nick_key
    connection.principal = identity.principal
    connection.role, connection.account = identity.role, identity.account
    connection.token_hash = identity.token_hash
    connection.rooms = ()
    connection.since_ms = context.hub.clock.now_ms()
    # An account without a password came in on a saved session: a token or a browser's cookie.
    method = "password" if request.password else "token" if identity.account else "guest"

    def welcome(rooms: list[str]) -> None:
        # Online: the reply and the motd go out before anything the rooms bring.
        context.metrics.logins.labels(method=method).inc()
        connection.session.granted(request)
        connection.set_timer(None)
        role = identity.role.value if identity.account else ""
        connection.reply(
            Ok(
                id=request.id,
                nick=identity.nick,
                role=role,
                token=connection.shown_token(identity.token),
                rooms=rooms,
            )
        )
        for line in context.config.motd.splitlines():
            connection.reply(Notice(text=line))

    try:
        await context.hub.login(connection, welcome)
    except PeerError:
        connection.forget_identity()
        raise
    log.info(
        "%s is %s%s",
        connection.address,
        identity.nick,
        " (account)" * bool(identity.account),
        extra=connection.log_fields(event="login"),
    )


@handles(Register)
async def register(connection: Connection, request: Register) -> None:
    identity = await connection.context.auth.register(connection, request.password)
    connection.account, connection.token_hash = identity.account, identity.token_hash
    await connection.context.hub.remember_rooms(connection)
    connection.reply(
        Ok(id=request.id, role=identity.role.value, token=connection.shown_token(identity.token))
    )


@handles(Passwd)
async def passwd(connection: Connection, request: Passwd) -> None:
    token = await connection.context.auth.change_password(connection, request.old, request.new)
    connection.reply(Ok(id=request.id, token=connection.shown_token(token)))


@handles(Logout)
async def logout(connection: Connection, request: Logout) -> None:
    await connection.context.auth.logout(connection)
    connection.token_hash = ""
    connection.session.granted(request)
    connection.reply(Ok(id=request.id))
    connection.close()


@handles(Ping)
def ping(connection: Connection, request: Ping) -> None:
    connection.reply(Pong(id=request.id))


@handles(Bye)
def bye(connection: Connection, request: Bye) -> None:
    connection.session.granted(request)
    connection.reply(Ok(id=request.id))
    connection.close()


# --- chat ------------------------------------------------------------------------------------


@handles(Send)
def send(connection: Connection, request: Send) -> Awaitable[None] | None:
    # The reply ('sent') comes from the hub once the message is stored.
    return connection.context.hub.submit(connection, request)


@handles(ListUsers)
async def list_users(connection: Connection, request: ListUsers) -> None:
    after = after_key(request.after)
    users, following, total = await connection.context.hub.online(after, request.limit)
    connection.reply(Users(id=request.id, users=users, total=total, next=following))


@handles(History)
async def history(connection: Connection, request: History) -> None:
    page = await connection.context.hub.history(
        connection,
        request.to,
        request.id,
        after=request.after,
        before=request.before,
        limit=request.limit,
    )
    connection.reply(page)


@handles(Read)
async def read(connection: Connection, request: Read) -> None:
    if not connection.account:
        raise PeerError(ErrorCode.ACCOUNT_REQUIRED, "Read markers are kept for accounts.")
    await connection.context.hub.mark_read(connection, request.to, request.seq)
    connection.reply(Ok(id=request.id))


@handles(GetUnread)
async def unread(connection: Connection, request: GetUnread) -> None:
    if not connection.account:
        raise PeerError(ErrorCode.ACCOUNT_REQUIRED, "Read markers are kept for accounts.")
    counts, following = await connection.context.hub.unread(connection, request.after)
    connection.reply(
        Unread(id=request.id, conversations=counts, more=bool(following), next=following)
    )


# --- presence --------------------------------------------------------------------------------


@handles(Away)
def away(connection: Connection, request: Away) -> None:
    connection.context.hub.set_away(connection, request.text)
    connection.reply(Ok(id=request.id))


@handles(Whois)
async def whois(connection: Connection, request: Whois) -> None:
    connection.reply(await connection.context.hub.whois(connection, request.nick, request.id))


# --- rooms -----------------------------------------------------------------------------------


@handles(Join)
async def join(connection: Connection, request: Join) -> None:
    # The hub replies ('room'), then sends the room's latest messages.
    await connection.context.hub.join(connection, request.room, request.id)


@handles(Part)
async def part(connection: Connection, request: Part) -> None:
    await connection.context.hub.part(connection, request.room)
    connection.reply(Ok(id=request.id))


@handles(ListRooms)
async def list_rooms(connection: Connection, request: ListRooms) -> None:
    connection.reply(
        await connection.context.hub.list_rooms(request.id, request.after, request.limit)
    )


@handles(Topic)
async def topic(connection: Connection, request: Topic) -> None:
    hub = connection.context.hub
    if request.text is None:
        await hub.room_info(connection, request.room, request.id)
        return
    await hub.set_topic(connection, request.room, request.text)
    connection.reply(Ok(id=request.id))


@handles(Who)
async def who(connection: Connection, request: Who) -> None:
    after = after_key(request.after)
    hub = connection.context.hub
    members, following, total = await hub.who(request.room, after, request.limit)
    connection.reply(Users(id=request.id, users=members, total=total, next=following))


# --- moderation ------------------------------------------------------------------------------


@handles(Kick)
async def kick(connection: Connection, request: Kick) -> None:
    await moderate(
        connection.context.hub,
        connection,
        "kick",
        request.room,
        request.nick,
        reason=request.reason,
    )
    connection.reply(Ok(id=request.id))


@handles(Ban)
async def ban(connection: Connection, request: Ban) -> None:
    await moderate(
        connection.context.hub,
        connection,
        "ban",
        request.room,
        request.nick,
        seconds=request.seconds,
        reason=request.reason,
    )
    connection.reply(Ok(id=request.id))


@handles(Unban)
async def unban(connection: Connection, request: Unban) -> None:
    await moderate(connection.context.hub, connection, "unban", request.room, request.nick)
    connection.reply(Ok(id=request.id))


@handles(Mute)
async def mute(connection: Connection, request: Mute) -> None:
    await moderate(
        connection.context.hub,
        connection,
        "mute",
        request.room,
        request.nick,
        seconds=request.seconds,
        reason=request.reason,
    )
    connection.reply(Ok(id=request.id))


@handles(Unmute)
async def unmute(connection: Connection, request: Unmute) -> None:
    await moderate(connection.context.hub, connection, "unmute", request.room, request.nick)
    connection.reply(Ok(id=request.id))


@handles(Op)
async def op(connection: Connection, request: Op) -> None:
    await appoint(connection.context.hub, connection, request.room, request.nick)
    connection.reply(Ok(id=request.id))


# --- files (the bytes go over file connections: server/transfer.py) ------------------------


@handles(ShareFile)
def share_file(connection: Connection, request: ShareFile) -> Awaitable[None]:
    files = connection.context.files
    files.refuse_known_hoarder(connection)
    return _reply_when_done(connection, lambda: files.share(connection, request))


@handles(GetFile)
def get_file(connection: Connection, request: GetFile) -> Awaitable[None]:
    files = connection.context.files
    files.refuse_known_hoarder(connection)
    return _reply_when_done(connection, lambda: files.get(connection, request))


async def _reply_when_done(connection: Connection, start: Callable[[], Awaitable[Any]]) -> None:
    # Started here, not by the caller: a task cancelled before it runs leaves no coroutine
    # that was never awaited.
    connection.reply(await start())


@handles(ListFiles)
async def list_files(connection: Connection, request: ListFiles) -> None:
    connection.reply(await connection.context.files.list(connection, request))


@handles(DeleteFile)
async def delete_file(connection: Connection, request: DeleteFile) -> None:
    await connection.context.files.delete(connection, request)
    connection.reply(Ok(id=request.id))
