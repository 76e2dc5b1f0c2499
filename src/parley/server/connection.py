"""One client connection: moves bytes between the TLS transport and its ServerSession.

This is the thin I/O layer. It feeds received bytes to the pure session, hands each request to
its handler (parley.server.handlers), and writes replies. Rules live in the hub and handlers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import logging
import math
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any, cast

from parley.config import ServerConfig
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.messages import Closing, Error, Request, ServerFrame, encode
from parley.protocol.session import ServerSession, State
from parley.server.address_group import address_group
from parley.server.auth import Authenticator
from parley.server.deadlines import Deadline, Deadlines
from parley.server.files import FileService
from parley.server.flood import TokenBucket, Verdict
from parley.server.handlers import HANDLERS
from parley.server.hub import Hub
from parley.server.metrics import ServerMetrics
from parley.server.request_limits import Refusal, RequestLimits, request_cost
from parley.server.tasks import TaskSet
from parley.server.tracker import ConnectionTracker
from parley.storage import Role, StorageUnavailable

log = logging.getLogger("parley.server")

# Errors that mean the peer broke the protocol (as opposed to a refused but valid request):
# these count toward the session's MAX_PROTOCOL_ERRORS.
_PROTOCOL_CODES = frozenset({ErrorCode.INVALID_MESSAGE, ErrorCode.NOT_ALLOWED_NOW})
# A client cut off for not reading gets this long to read its `closing` before the connection
# is reset. Below the transport's 2 s linger, so a graceful close never leaves the bytes it did
# not read to the kernel (megabytes per client, sent on for minutes to a peer that acks them).
_NOT_READING_RESET_SECONDS = 1.0
# A connection from an address under a flood penalty waits this long (at most) before it is
# refused.
_PENALTY_HOLD_SECONDS = 5.0
# SO_LINGER on, with a zero timeout: close() sends a reset and discards what is unsent.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


@dataclasses.dataclass(slots=True)
class ServerContext:
    """What every connection shares."""

    config: ServerConfig
    hub: Hub
    auth: Authenticator
    tracker: ConnectionTracker
    deadlines: Deadlines
    files: FileService
    # The tasks running requests that need storage: cancelled and awaited before it closes.
    requests: TaskSet
    # Request budgets per address group and per principal, and flood penalties.
    limits: RequestLimits
    metrics: ServerMetrics
    # Told to clients at hello: a change means seqs they saw may since have been given out
    # again (see Storage.start_run).
    history_epoch: int = 0


def _discard(frame: bytes) -> None:
    """The write function of a connection that is not open: frames go nowhere."""


class Connection(asyncio.Protocol):
    # Thousands of these stay open at once: no per-instance __dict__.
    __slots__ = (
        "_backlog",
        "_bucket",
        "_busy",
        "_closed",
        "_timer",
        "_transport",
        "account",
        "context",
        "group",
        "host",
        "nick",
        "nick_key",
        "port",
        "principal",
        "role",
        "rooms",
        "session",
        "since_ms",
        "token_hash",
        "write",
    )

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.session = ServerSession()
        self.nick = ""
        self.nick_key = ""
        self.principal = ""
        self.role = Role.USER
        self.account = ""
        self.token_hash = ""
        self.since_ms = 0
        self.rooms: tuple[str, ...] = ()
        self.host = ""
        self.group = ""
        self.port = 0
        self.write: Callable[[bytes], None] = _discard
        self._transport: asyncio.Transport | None = None
        self._timer: Deadline | None = None
        self._closed = False
        # While a request that needs storage runs, later ones wait in the backlog, in order
        # (made when first needed: an empty deque is 600 bytes).
        self._busy: asyncio.Task[None] | None = None
        self._backlog: collections.deque[Request] | None = None
        config = context.config
        self._bucket = TokenBucket(
            config.flood_burst_requests,
            config.flood_rate_per_second,
            config.flood_debt_requests,
            asyncio.get_running_loop().time(),
        )

    # --- asyncio.Protocol callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        peer: Any = transport.get_extra_info("peername")
        if peer is None:  # gone again right after the handshake
            self._closed = True
            transport.abort()
            return
        self.group = address_group(str(peer[0]))
        # An IPv4 address is its own group: one string for both.
        self.host = self.group if self.group == peer[0] else str(peer[0])
        self.port = peer[1]
        # Within the connection limits already: the listener counts from accept.
        self.context.tracker.add(self)
        log.info("Connected with %s", self.address, extra=self.log_fields())
        self.write = transport.write
        transport.set_write_buffer_limits(high=self.context.config.send_buffer_limit_bytes)
        if self.context.limits.penalty_left(self.group) > 0:
            # Held a while before it is told: a client reconnecting in a loop then costs the
            # server a handshake every few seconds, not as many as it can make.
            transport.pause_reading()
            hold = min(self.context.config.flood_penalty_seconds, _PENALTY_HOLD_SECONDS)
            self._timer = self.context.deadlines.after(hold, self._held_for_penalty)
            return
        self.set_timer(self.context.config.hello_timeout_seconds)

    def data_received(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        context = self.context
        for item in self.session.receive_data(data):
            if self._closed:
                return
            if isinstance(item, PeerError):
                self._refuse(item)
                continue
            # Counted on arrival, so a client cannot pile up requests behind a slow one.
            cost = request_cost(item, context.config.expensive_request_cost)
            verdict = self._bucket.take(now, cost)
            if verdict is Verdict.DROP:
                log.info(
                    "Disconnected %s (%s): flooding",
                    self.address,
                    self.nick,
                    extra=self.log_fields(reason="flooding"),
                )
                context.limits.penalize(self.group, self.account and self.principal)
                self.close(ErrorCode.FLOODING)
                return
            if verdict is Verdict.REFUSE:
                self._refuse(PeerError(ErrorCode.RATE_LIMITED, request_id=item.id))
            elif refused_by := context.limits.charge(
                self.group, self.principal, cost, guest=bool(self.principal and not self.account)
            ):
                self._refuse(_shared_limit(refused_by, item.id))
            elif self._busy is not None:
                if self._backlog is None:
                    self._backlog = collections.deque()
                self._backlog.append(item)
            else:
                self._dispatch(item)

    def pause_writing(self) -> None:
        # Its send buffer passed send_buffer_limit_bytes: the client is not reading. Cut it off
        # now rather than hold memory or slow the fan-out for everyone else.
        log.info(
            "Disconnected %s (%s): not reading, %d bytes queued",
            self.address,
            self.nick,
            self._transport.get_write_buffer_size() if self._transport else 0,
            extra=self.log_fields(reason="not_reading"),
        )
        self.context.metrics.slow_readers_cut.inc()
        transport = self._transport
        self.close(ErrorCode.NOT_READING)
        if transport is not None:
            asyncio.get_running_loop().call_later(_NOT_READING_RESET_SECONDS, _reset, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed:
            self._shut(abort=False)
        if self in self.context.tracker.live:
            log.info(
                "Disconnected %s%s",
                self.address,
                f" ({self.nick})" if self.nick else "",
                extra=self.log_fields(),
            )
        self.context.tracker.discard(self)
        self.write = _discard

    # --- used by handlers ----------------------------------------------------------------

    def log_fields(self, **more: str) -> dict[str, str]:
        """This connection's structured log fields (see parley.logs): its peer address and,
        once logged in, its nick key. Never what it sent.
        """
        fields = {"peer": self.address}
        if self.nick_key:
            fields["nick_key"] = self.nick_key
        return fields | more

    @property
    def address(self) -> str:
        """The peer as the log names it: "('127.0.0.1', 54321)" (made when asked: kept, it
        would be one more string on every connection).
        """
        if not self.host:
            return ""
        return str((self.host, self.port))

    @property
    def closed(self) -> bool:
        return self._closed

    def reply(self, frame: ServerFrame) -> None:
        self.write(encode(frame))

    def queued_bytes(self) -> int:
        if self._transport is None or self._closed:
            return 0
        return self._transport.get_write_buffer_size()

    @property
    def session_cookie(self) -> str:
        """The session token of the browser's cookie (a WebSocket on the web port), or ""."""
        if self._transport is None:
            return ""
        cookie: str = self._transport.get_extra_info("session_cookie", "")
        return cookie

    def shown_token(self, token: str) -> str:
        """``token`` as a reply may carry it: a browser's page never sees a session token
        (its session is an HttpOnly cookie, set by the web port's login), so injected script
        could not take one away.
        """
        browser = self._transport is not None and self._transport.get_extra_info("browser", False)
        return "" if browser else token

    def forget_identity(self) -> None:
        """A login failed after the identity was set: back to nobody."""
        self.nick = self.nick_key = self.principal = self.account = self.token_hash = ""
        self.role = Role.USER

    def set_timer(self, seconds: float | None) -> None:
        """(Re)start the login deadline, or cancel it with None."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None:
            self._timer = self.context.deadlines.after(seconds, self._timed_out)

    def stop_reading(self) -> None:
        """Accept no more requests (shutdown has begun); what is queued still goes out."""
        self.session.close()
        if self._transport is not None and not self._closed:
            self._transport.pause_reading()

    def close(self, code: ErrorCode | None = None, detail: str = "") -> None:
        """Leave the chat, tell the client why (if ``code``), flush what is queued, close."""
        if self._closed:
            return
        if code is not None:
            self.write(encode(Closing(code=code, message=detail or code.text)))
        self._shut(abort=False)

    def abort(self) -> None:
        """Drop the connection at once, discarding anything still queued."""
        self._shut(abort=True)

    # --- internals -----------------------------------------------------------------------

    def _dispatch(self, request: Request) -> None:
        try:
            self.session.check(request)
            pending = HANDLERS[type(request)](self, request)
        except Exception as exc:
            self._failed(request, exc)
            return
        if pending is not None:
            self._busy = task = self.context.requests.spawn(
                self._finish(request, pending), name="parley-request"
            )
            if inspect.iscoroutine(pending):
                # Cancelled before it started (shutdown), it would never be awaited.
                task.add_done_callback(lambda _: pending.close())

    async def _finish(self, request: Request, pending: Awaitable[None]) -> None:
        """Await a handler that needs storage, then run the requests that arrived meanwhile."""
        try:
            await pending
        except Exception as exc:
            self._failed(request, exc)
        self._busy = None
        backlog = self._backlog
        while backlog and self._busy is None and not self._closed:
            self._dispatch(backlog.popleft())

    def _failed(self, request: Request, exc: Exception) -> None:
        if isinstance(exc, PeerError):
            if exc.request_id is None:
                exc.request_id = request.id
            self._refuse(exc)
            if exc.code in _PROTOCOL_CODES:
                too_many = self.session.count_error()
                if too_many is not None:
                    self._refuse(too_many)
        elif isinstance(exc, StorageUnavailable):
            self.context.hub.health.failed(exc)
            self._refuse(PeerError(ErrorCode.UNAVAILABLE, request_id=request.id))
        else:
            # The request's type and id only: its fields may hold a password.
            log.error(
                "Bug while handling %s (id %d) from %s",
                type(request).__name__,
                request.id,
                self.address,
                exc_info=exc,
                extra=self.log_fields(request=type(request).__name__),
            )
            self._refuse(PeerError(ErrorCode.INTERNAL_ERROR, request_id=request.id))

    def _refuse(self, error: PeerError) -> None:
        if error.closes_connection:
            self.close(error.code, error.detail)
        else:
            self.reply(Error(id=error.request_id, code=error.code, message=error.detail))

    def _held_for_penalty(self) -> None:
        """Refuse the connection if its address's flood penalty still runs, else let it in."""
        self._timer = None
        left = self.context.limits.penalty_left(self.group)
        if left > 0.0:
            log.info("Refused %s: its address was cut off for flooding", self.address)
            self.close(
                ErrorCode.FLOOD_PENALTY,
                "A connection from your address was cut off for sending too fast; connect "
                f"again in {math.ceil(round(left, 3))} s.",
            )
        elif self._transport is not None and not self._closed:
            self._transport.resume_reading()
            self.set_timer(self.context.config.hello_timeout_seconds)

    def _timed_out(self) -> None:
        self._timer = None
        if self.session.state in (State.HELLO, State.LOGIN):
            log.info(
                "Disconnected %s: no login in time",
                self.address,
                extra=self.log_fields(reason="login_timeout"),
            )
            self.close(ErrorCode.LOGIN_TIMEOUT)

    def _shut(self, *, abort: bool) -> None:
        self._closed = True
        self._backlog = None
        self.session.close()
        self.set_timer(None)
        self.context.hub.logout(self)
        self.write = _discard
        if self._transport is not None:
            if abort:
                _reset(self._transport)
            else:
                self._transport.close()


_WHOSE = {
    Refusal.ADDRESS: "your address",
    Refusal.GUESTS: "the guests at your address (log in to an account for a budget of its own)",
    Refusal.PRINCIPAL: "your account or guest name",
}


def _shared_limit(refused_by: Refusal, request_id: int) -> PeerError:
    """The refusal of a request over a budget shared by several connections."""
    whose = _WHOSE[refused_by]
    return PeerError(
        ErrorCode.RATE_LIMITED,
        f"Too many requests from {whose} on all its connections together; slow down.",
        request_id=request_id,
    )


def _reset(transport: asyncio.Transport) -> None:
    """Drop the connection with a TCP reset, unless it is closed already: whatever is still
    queued, in the process or in the kernel, is discarded rather than sent on for minutes.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.fileno() != -1:
        # Not a TCP socket, or already gone: abort alone will do.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    transport.abort()
