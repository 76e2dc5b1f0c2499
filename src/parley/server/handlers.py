"""One handler per request type: adding a request means adding one function here.

A handler runs synchronously on the event loop with the connection it came from. It replies
with ``connection.reply`` or raises PeerError (the connection turns that into an error reply).
The session has already checked that the request is allowed in the current state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from parley import __version__
from parley.protocol import limits
from parley.protocol.messages import (
    Bye,
    Hello,
    ListUsers,
    Nick,
    Notice,
    Ok,
    Ping,
    Pong,
    Request,
    Send,
    Users,
    Welcome,
)
from parley.protocol.names import normalize_nick
from parley.protocol.session import choose_version

if TYPE_CHECKING:
    from parley.server.connection import Connection

log = logging.getLogger("parley.server")

R = TypeVar("R", bound=Request)
Handler = Callable[["Connection", Any], None]
HANDLERS: dict[type[Any], Handler] = {}


def handles(kind: type[R]) -> Callable[[Callable[[Connection, R], None]], Handler]:
    """Register the decorated function as the handler of requests of type ``kind``."""

    def register(handler: Callable[[Connection, R], None]) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return register


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
        )
    )


@handles(Nick)
def nick(connection: Connection, request: Nick) -> None:
    name = normalize_nick(request.nick)
    connection.context.hub.login(connection, name)
    connection.session.granted(request)
    connection.set_timer(None)
    log.info("%s is %s", connection.address, name)
    connection.reply(Ok(id=request.id, nick=name))
    for line in connection.context.config.motd.splitlines():
        connection.reply(Notice(text=line))


@handles(Send)
def send(connection: Connection, request: Send) -> None:
    # The reply ('sent') comes from the hub once the message is stored.
    connection.context.hub.submit(connection, request)


@handles(ListUsers)
def list_users(connection: Connection, request: ListUsers) -> None:
    users = connection.context.hub.online()
    connection.reply(Users(id=request.id, users=users[: limits.MAX_LISTED_USERS], total=len(users)))


@handles(Ping)
def ping(connection: Connection, request: Ping) -> None:
    connection.reply(Pong(id=request.id))


@handles(Bye)
def bye(connection: Connection, request: Bye) -> None:
    connection.session.granted(request)
    connection.reply(Ok(id=request.id))
    connection.close()
