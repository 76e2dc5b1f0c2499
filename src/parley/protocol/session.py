"""The connection state machine, as pure objects: bytes in, messages out, no I/O.

The server's :class:`ServerSession` and the client's :class:`ClientSession` are what the asyncio
layers feed with received bytes. They frame, decode and check; they never touch a socket, so they
are tested byte by byte without an event loop.
"""

from __future__ import annotations

import enum

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, FrameTooLarge, PeerError
from parley.protocol.framing import LineFramer
from parley.protocol.messages import (
    Bye,
    Hello,
    Logout,
    Nick,
    Ping,
    Request,
    ServerFrame,
    decode_request,
    decode_server_frame,
)


class State(enum.Enum):
    """Server-side states of one connection (TLS is already established in all of them)."""

    HELLO = "hello"  # waiting for the client's hello
    LOGIN = "login"  # version agreed, waiting for a nickname
    ACTIVE = "active"  # chatting
    CLOSED = "closed"  # closing: nothing more is read


# What each state accepts; anything else is answered with not-allowed-now.
ACCEPTS: dict[State, frozenset[type[Request]]] = {
    State.HELLO: frozenset({Hello}),
    State.LOGIN: frozenset({Nick, Ping, Bye}),
    # Everything but the two that open a session.
    State.ACTIVE: frozenset(set(Request.__args__) - {Hello, Nick}),
    State.CLOSED: frozenset(),
}

# Where a request leads once the server has granted it. Requests not listed keep the state.
ON_GRANTED: dict[tuple[State, type[Request]], State] = {
    (State.HELLO, Hello): State.LOGIN,
    (State.LOGIN, Nick): State.ACTIVE,
    (State.LOGIN, Bye): State.CLOSED,
    (State.ACTIVE, Bye): State.CLOSED,
    (State.ACTIVE, Logout): State.CLOSED,
}

# Requests that break the protocol (unknown types, wrong fields, wrong state) tolerated per
# connection before it is closed: enough for a client slightly newer than the server, too few
# for a peer that is only sending junk.
MAX_PROTOCOL_ERRORS = 20


def choose_version(offered: list[int]) -> int:
    """The highest protocol version both sides speak; raises PeerError(UNSUPPORTED_VERSION)."""
    common = limits.SUPPORTED_VERSIONS.intersection(offered)
    if not common:
        supported = ", ".join(str(v) for v in sorted(limits.SUPPORTED_VERSIONS))
        raise PeerError(ErrorCode.UNSUPPORTED_VERSION, f"This server speaks version {supported}.")
    return max(common)


class ServerSession:
    """One client connection as the server sees it."""

    __slots__ = ("_framer", "protocol_errors", "state")

    def __init__(self, max_frame_bytes: int = limits.MAX_CLIENT_FRAME_BYTES) -> None:
        self.state = State.HELLO
        self.protocol_errors = 0
        self._framer = LineFramer(max_frame_bytes)

    def receive_data(self, data: bytes) -> list[Request | PeerError]:
        """Decode what arrived into requests, and errors for the frames that were not requests.

        A PeerError that closes the connection ends the list and moves the session to CLOSED.
        Each other error counts toward MAX_PROTOCOL_ERRORS; past it, a TOO_MANY_ERRORS error
        ends the list.
        """
        if self.state is State.CLOSED:
            return []
        try:
            lines = self._framer.feed(data)
        except FrameTooLarge as exc:
            self.state = State.CLOSED
            return [exc]
        items: list[Request | PeerError] = []
        for line in lines:
            try:
                items.append(decode_request(line))
            except PeerError as exc:
                items.append(exc)
                if exc.closes_connection:
                    self.state = State.CLOSED
                    break
                too_many = self.count_error()
                if too_many is not None:
                    items.append(too_many)
                    break
        return items

    def check(self, request: Request) -> None:
        """Raise PeerError(NOT_ALLOWED_NOW) if the current state does not accept ``request``."""
        if type(request) not in ACCEPTS[self.state]:
            raise PeerError(
                ErrorCode.NOT_ALLOWED_NOW,
                f"'{type(request).__struct_config__.tag}' is not allowed in state "
                f"'{self.state.value}'.",
                request.id,
            )

    def granted(self, request: Request) -> None:
        """Record that the server granted ``request``: move to the state it leads to."""
        self.state = ON_GRANTED.get((self.state, type(request)), self.state)

    def count_error(self) -> PeerError | None:
        """Count one protocol error; past MAX_PROTOCOL_ERRORS, close the session and return the
        TOO_MANY_ERRORS error to send.
        """
        self.protocol_errors += 1
        if self.protocol_errors > MAX_PROTOCOL_ERRORS:
            self.state = State.CLOSED
            return PeerError(ErrorCode.TOO_MANY_ERRORS)
        return None

    def close(self) -> None:
        self.state = State.CLOSED


class ClientSession:
    """The server connection as a client sees it: request ids and decoding of server frames."""

    __slots__ = ("_framer", "_last_id")

    def __init__(self, max_frame_bytes: int = limits.MAX_SERVER_FRAME_BYTES) -> None:
        self._framer = LineFramer(max_frame_bytes)
        self._last_id = 0

    def next_request_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def receive_data(self, data: bytes) -> list[ServerFrame]:
        """Decode server frames. Raises PeerError if the server sends anything but valid frames:
        a client cannot go on with a server that breaks the protocol.
        """
        return [decode_server_frame(line) for line in self._framer.feed(data)]
