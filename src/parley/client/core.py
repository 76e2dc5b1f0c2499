"""The client core every front end shares: connect over TLS, verify the server, make requests,
receive events. No printing, no input: front ends (terminal, desktop, web) decide how to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from parley import __version__
from parley.client.pins import PinStatus, PinStore, server_name
from parley.protocol import limits
from parley.protocol.errors import ErrorCode, ParleyError, PeerError, RequestRefused
from parley.protocol.messages import (
    Bye,
    Closing,
    Error,
    Event,
    Hello,
    HistoryPage,
    ListUsers,
    Nick,
    Ok,
    Ping,
    Pong,
    Reply,
    Request,
    RoomInfo,
    Rooms,
    Send,
    Sent,
    Unread,
    Users,
    Welcome,
    encode,
)
from parley.protocol.session import ClientSession
from parley.tls import client_context, fingerprint

ReplyT = TypeVar("ReplyT", bound=Reply)

# A script piping many lines can outrun the server's flood control; the client then paces itself.
_RATE_LIMIT_RETRIES = 8
_RATE_LIMIT_PAUSE_SECONDS = 0.25

# Bytes read per call: a few frames at a time, bounded.
_READ_CHUNK_BYTES = 64 * 1024


class ConnectionLost(ParleyError):
    """The connection ended; ``reason`` says why in words a user can read."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnected:
    """The last event of a connection: the server closed it or it broke."""

    reason: str
    code: str | None = None


# An error reply with no request id (the server could not read the request) is an event too.
ClientEvent = Event | Error | Disconnected
_REPLY_TYPES = (Welcome, Ok, Sent, Users, Pong, RoomInfo, Rooms, HistoryPage, Unread, Error)


@dataclasses.dataclass(frozen=True, slots=True)
class ServerIdentity:
    """Who we are talking to. ``pin_status`` is None when a CA verified the server, or when
    verification was switched off (``verified`` False).
    """

    server: str
    fingerprint: str
    verified: bool
    pin_status: PinStatus | None


class ChatClient:
    """One connection to a Parley server. Create with :meth:`connect`.

    Replies are matched to requests by id; events arrive in order through :meth:`next_event`,
    ending with one :class:`Disconnected`.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        identity: ServerIdentity,
    ) -> None:
        self.identity = identity
        self.nick = ""
        self.welcome: Welcome | None = None
        self._reader = reader
        self._writer = writer
        self._session = ClientSession()
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._events: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self._lost: ConnectionLost | None = None
        self._read_task = asyncio.create_task(self._read_loop(), name="parley-client-reader")

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        pins: PinStore | None,
        cafile: Path | None = None,
        timeout_seconds: float = 15.0,
    ) -> ChatClient:
        """Open TLS, verify the server, and say hello.

        Verification: with ``cafile``, the CA chain and host name; else, with ``pins``, the
        certificate's fingerprint (trust on first use); with neither, none at all. Raises
        CertificateChanged (nothing was sent), OSError / ssl.SSLError / TimeoutError when the
        server cannot be reached, RequestRefused or ConnectionLost when it refuses the hello.
        """
        context: ssl.SSLContext = client_context(cafile)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if cafile is not None else None
            ),
            timeout_seconds,
        )
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        name = server_name(host, port)
        presented = fingerprint(der) if der else ""
        status: PinStatus | None = None
        try:
            if cafile is None and pins is not None:
                status = pins.check(name, presented)
        except BaseException:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            raise
        identity = ServerIdentity(name, presented, cafile is not None or pins is not None, status)
        client = cls(reader, writer, identity)
        try:
            client.welcome = await asyncio.wait_for(client._hello(), timeout_seconds)
        except BaseException:
            await client.close()
            raise
        return client

    # --- requests ------------------------------------------------------------------------

    async def _hello(self) -> Welcome:
        return await self._request(
            lambda id: Hello(
                id=id, versions=[limits.PROTOCOL_VERSION], client=f"parley/{__version__}"
            ),
            Welcome,
        )

    async def login(self, nick: str) -> str:
        """Take ``nick``; returns it as the server normalised it. Raises RequestRefused."""
        ok = await self._request(lambda id: Nick(id=id, nick=nick), Ok)
        self.nick = ok.nick
        return ok.nick

    async def send(self, to: str, text: str, msg_id: str | None = None) -> Sent:
        """Send ``text`` to a room or a user; returns once the server has stored it.

        ``msg_id`` identifies the message across retries; a new one is made when omitted.
        """
        message_id = msg_id or uuid.uuid4().hex
        for attempt in range(1, _RATE_LIMIT_RETRIES + 1):
            try:
                return await self._request(
                    lambda id: Send(id=id, to=to, text=text, msg_id=message_id), Sent
                )
            except RequestRefused as refusal:
                if refusal.code != ErrorCode.RATE_LIMITED or attempt == _RATE_LIMIT_RETRIES:
                    raise
            # Told to slow down: wait and send the same message again (same msg_id, so it is
            # stored once even if an earlier try got through).
            await asyncio.sleep(_RATE_LIMIT_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")

    async def list_users(self) -> Users:
        return await self._request(lambda id: ListUsers(id=id), Users)

    async def ping(self) -> None:
        await self._request(lambda id: Ping(id=id), Pong)

    async def bye(self) -> None:
        """Leave the chat politely, then close."""
        with contextlib.suppress(ConnectionLost, RequestRefused):
            await asyncio.wait_for(self._request(lambda id: Bye(id=id), Ok), 5.0)
        await self.close()

    async def _request(self, make: Callable[[int], Request], expect: type[ReplyT]) -> ReplyT:
        if self._lost is not None:
            raise self._lost
        request_id = self._session.next_request_id()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(encode(make(request_id)))
            reply = await future
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, Error):
            raise RequestRefused(reply.code, reply.message)
        if not isinstance(reply, expect):
            raise ConnectionLost(
                f"The server answered with an unexpected '{type(reply).__name__}'."
            )
        return reply

    # --- events --------------------------------------------------------------------------

    async def next_event(self) -> ClientEvent:
        """The next event; after a Disconnected, Disconnected again forever."""
        if self._lost is not None and self._events.empty():
            return Disconnected(self._lost.reason, self._lost.code)
        return await self._events.get()

    async def _read_loop(self) -> None:
        reason, code = "The connection to the server was lost.", None
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK_BYTES)
                if not data:
                    break
                for frame in self._session.receive_data(data):
                    if isinstance(frame, Closing):
                        reason, code = frame.message, frame.code
                    if isinstance(frame, _REPLY_TYPES) and frame.id is not None:
                        future = self._pending.get(frame.id)
                        if future is not None and not future.done():
                            future.set_result(frame)
                    else:
                        self._events.put_nowait(frame)
        except PeerError as exc:
            reason, code = f"The server broke the protocol: {exc.detail}", str(exc.code)
        except (OSError, ssl.SSLError) as exc:
            reason = f"The connection to the server was lost: {exc}"
        finally:
            self._lost = ConnectionLost(reason, code)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self._lost)
            self._events.put_nowait(Disconnected(reason, code))
            self._writer.close()

    async def close(self) -> None:
        """Close the connection and stop reading. Idempotent."""
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
            await self._writer.wait_closed()
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
