"""The server's TLS connections: non-blocking sockets that OpenSSL reads and writes directly.

Why not ``loop.create_server(ssl=...)``: asyncio's SSL transport runs TLS through memory BIOs,
so every write is copied into a BIO and out again, and each connection carries its own buffers
(about 25 KB per idle connection on uvloop, about 290 KB with Python's own loop). Here OpenSSL
reads and writes the socket directly: one ``SSL_write`` (one system call) per connection per
loop iteration, and the only read buffer is one shared by every connection.

Writes are coalesced: :meth:`TlsTransport.write` only queues bytes, and a callback after the
loop iteration flushes the connections that have something queued (a hundred at a time, see
:class:`WriteFlusher`). A burst of frames to
the same client (a batch of room messages, a join storm) costs one encryption and one system
call instead of one per frame.

Every accepted socket is counted against the port's limits (per address group and in all)
from ``accept`` to ``close``, handshake included: see :mod:`parley.server.tracker`. A socket from
a trusted load balancer is counted once its PROXY header has named the client, as that client:
see :mod:`parley.server.proxy_protocol`.

The transports follow asyncio's Transport/Protocol contract (``connection_made`` after the
handshake, ``data_received``, ``pause_writing`` above the high-water mark, ``connection_lost``
once), so :class:`parley.server.connection.Connection` does not know which transport it runs on.

What an idle connection costs is what the server's size at ten thousand connections is made of,
so a connection keeps only its plain socket and OpenSSL's connection object (the object an
``ssl.SSLSocket`` keeps inside, without the SSLSocket and its attribute dict around it), and
its readiness is watched by the server's :class:`parley.server.fd_poller.FdPoller` rather than
by a registration of its own in the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from parley.server.address_group import address_group
from parley.server.deadlines import Deadline, DeadlineQueue
from parley.server.fd_poller import Poller, fd_poller
from parley.server.proxy_protocol import HeaderReader, Peer, TrustedProxies
from parley.server.tracker import ConnectionTracker

log = logging.getLogger("parley.server")

# Shared by every connection of a server: received bytes are copied out of it at once.
_READ_BUFFER_BYTES = 256 * 1024
# How many reads one connection gets per readiness callback before others get a turn.
_READS_PER_CALLBACK = 8
# How many connections one loop iteration flushes before the loop polls and runs other work.
_FLUSHES_PER_CALLBACK = 100
# How many connections one readiness callback of the listener accepts.
_ACCEPTS_PER_CALLBACK = 128
# After closing our side, how long to keep reading (and discarding) before dropping the socket:
# closing with unread bytes in the receive buffer sends a reset, which can destroy the last
# frames (a `closing` event) before the client reads them.
_LINGER_SECONDS = 2.0
# How long close() waits for queued bytes to leave before dropping the connection.
_CLOSE_FLUSH_SECONDS = 10.0
# When out of file descriptors, wait this long before accepting again.
_ACCEPT_BACKOFF_SECONDS = 0.1

# A socket over the limits is still told why (the refusal, after a TLS handshake) while fewer
# than this many refusals are under way; past it, it is closed at once. Bounds what a flood of
# refused sockets can cost, and a stalled refusal ends at the handshake deadline like any other.
_MAX_REFUSALS_IN_FLIGHT = 64

_FD_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# The base class's per-transport dict of extra info; never written to.
_NO_EXTRA: dict[str, Any] = {}


class TlsConnection(Protocol):
    """OpenSSL's object for one connection (``ssl._ssl._SSLSocket``), as made by
    ``SSLContext._wrap_socket``: what ``ssl.SSLSocket`` calls underneath.
    """

    def do_handshake(self) -> None: ...

    def read(self, size: int, buffer: memoryview) -> int: ...

    def write(self, data: bytes) -> int: ...

    def pending(self) -> int: ...

    def shutdown(self) -> socket.socket: ...

    def cipher(self) -> tuple[str, str, int] | None: ...

    def getpeercert(self, binary_form: bool = False) -> Any: ...


def wrap_server_side(context: ssl.SSLContext, sock: socket.socket) -> TlsConnection:
    """OpenSSL's server-side connection object on ``sock``, without an ``ssl.SSLSocket``
    around it. It holds ``sock`` only weakly: the caller keeps the socket.
    """
    wrap: Callable[..., TlsConnection] = context._wrap_socket  # type: ignore[attr-defined]
    return wrap(sock, server_side=True, server_hostname=None)


class Release:
    """Gives a connection's place back to its address group's count: a callable of one slot,
    smaller than a functools.partial of a bound method, on every connection.
    """

    __slots__ = ("group", "tracker")

    def __init__(self, tracker: ConnectionTracker, group: str) -> None:
        self.tracker = tracker
        self.group = group

    def __call__(self) -> None:
        self.tracker.release(self.group)


class _State(enum.Enum):
    HANDSHAKING = enum.auto()
    OPEN = enum.auto()
    CLOSING = enum.auto()  # flushing what is queued, then closing
    LINGERING = enum.auto()  # our side closed; draining the peer's last bytes
    CLOSED = enum.auto()


class WriteFlusher:
    """Flushes every transport that queued bytes, in the order they queued them, at most
    ``_FLUSHES_PER_CALLBACK`` per loop iteration.

    Sending to a room of thousands takes milliseconds (a system call each). In slices, the loop
    reads and finishes other work between them: a batch of messages committed meanwhile is
    published at once, and joins the sends still to come, instead of waiting for the last one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: collections.deque[TlsTransport] = collections.deque()

    def mark(self, transport: TlsTransport) -> None:
        if not self._dirty:
            self._loop.call_soon(self._flush_some)
        self._dirty.append(transport)

    def _flush_some(self) -> None:
        dirty = self._dirty
        for _ in range(min(len(dirty), _FLUSHES_PER_CALLBACK)):
            dirty.popleft()._flush()
        if dirty:
            self._loop.call_soon(self._flush_some)


class TlsTransport(asyncio.Transport):
    """One TLS connection on a non-blocking socket."""

    __slots__ = (
        "_connected",
        "_dirty",
        "_fd",
        "_flusher",
        "_high_water",
        "_loop",
        "_low_water",
        "_on_drop",
        "_peer",
        "_plain_http_answer",
        "_poller",
        "_protocol",
        "_queued",
        "_queued_bytes",
        "_read_buffer",
        "_read_paused",
        "_reading",
        "_sock",
        "_state",
        "_timer",
        "_tls",
        "_unfinished",
        "_write_paused",
        "_writer_registered",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        poller: Poller,
        sock: socket.socket,
        tls: TlsConnection,
        protocol: asyncio.Protocol,
        flusher: WriteFlusher,
        read_buffer: memoryview,
        handshake_deadlines: DeadlineQueue,
        on_drop: Callable[[], None] | None = None,
        peer: Peer | None = None,
        plain_http_answer: bytes | None = None,
    ) -> None:
        """``on_drop`` is called once, when the socket is closed (handshake failed or not).
        ``peer`` is the client a PROXY header named (None: the socket's own peer).
        ``plain_http_answer``: sent unencrypted to a client that began with a plain-HTTP
        request instead of a TLS handshake (None: it is closed without a word).
        """
        # get_extra_info below answers without it: one shared empty dict, not one each.
        super().__init__(extra=_NO_EXTRA)
        self._on_drop = on_drop
        self._peer = peer
        self._plain_http_answer = plain_http_answer
        self._loop = loop
        self._poller = poller
        self._sock = sock
        self._tls = tls
        self._fd = sock.fileno()
        self._protocol = protocol
        self._flusher = flusher
        self._read_buffer = read_buffer
        self._state = _State.HANDSHAKING
        self._connected = False  # connection_made was called: connection_lost is owed
        self._queued: list[bytes] = []
        self._queued_bytes = 0
        self._dirty = False
        # Bytes an SSL_write could not finish: OpenSSL requires the retry to pass the same bytes.
        self._unfinished: bytes | None = None
        self._writer_registered = False
        self._reading = False
        self._read_paused = False
        self._write_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        self._timer: Deadline | asyncio.TimerHandle | None = handshake_deadlines.add(
            self._handshake_timed_out
        )
        self._handshake()

    # --- handshake -----------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._wait_for_handshake(readable=True)
            return
        except ssl.SSLWantWriteError:
            self._wait_for_handshake(readable=False)
            return
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.debug("TLS handshake failed: %s", exc)
            self._connected = False
            if self._plain_http_answer and getattr(exc, "reason", "") == "HTTP_REQUEST":
                self._answer_plain_http(self._plain_http_answer)
            self._linger()
            return
        self._cancel_timer()
        self._poller.remove_reader(self._fd)
        self._poller.remove_writer(self._fd)
        self._state = _State.OPEN
        self._connected = True
        self._protocol.connection_made(self)
        if self._state is _State.OPEN and not self._read_paused:
            self._start_reading()

    def _answer_plain_http(self, answer: bytes) -> None:
        """Below TLS, as the request came: a browser or curl shown http:// gets a readable
        answer rather than an empty reply. A few hundred bytes fit the socket's send buffer;
        if they do not, the answer is dropped with the connection.
        """
        with contextlib.suppress(OSError):
            self._sock.send(answer)

    def _handshake_timed_out(self) -> None:
        self._timer = None
        log.debug("TLS handshake timed out")
        self._drop(None)

    def _wait_for_handshake(self, *, readable: bool) -> None:
        poller, fd = self._poller, self._fd
        if readable:
            poller.remove_writer(fd)
            poller.add_reader(fd, self)
        else:
            poller.remove_reader(fd)
            poller.add_writer(fd, self)

    # --- readiness (told by the poller) --------------------------------------------------

    def read_ready(self) -> None:
        # What the socket was registered for follows from the state: a handshake, reading
        # (or not: paused), or the drain after our close.
        state = self._state
        if state is _State.HANDSHAKING:
            self._handshake()
        elif state is _State.LINGERING:
            self._drain()
        elif state is not _State.CLOSED:
            self._on_readable()

    def write_ready(self) -> None:
        if self._state is _State.HANDSHAKING:
            self._handshake()
        else:
            self._on_writable()

    # --- reading -------------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading:
            self._reading = True
            self._poller.add_reader(self._fd, self)
        # Bytes OpenSSL already decrypted do not make the socket readable again.
        if self._tls.pending():
            self._loop.call_soon(self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._poller.remove_reader(self._fd)

    def _on_readable(self) -> None:
        if not self._reading:
            return
        if self._unfinished is not None and not self._writer_registered:
            # An SSL_write waits for the peer (SSLWantReadError): retry it now.
            self._on_writable()
            if self._state is _State.CLOSED:
                return
        buffer = self._read_buffer
        size = len(buffer)
        for _ in range(_READS_PER_CALLBACK):
            try:
                count = self._tls.read(size, buffer)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                # Rare (TLS 1.3 key update): let the writer callback drive the socket.
                self._ensure_writer()
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # SSLEOFError: the peer closed TCP without close_notify, which SSLSocket
                # (suppress_ragged_eofs) reports as an ordinary end of file too.
                count = 0
            except (OSError, ValueError) as exc:
                self._drop(exc)
                return
            if count == 0:
                self._eof()
                return
            self._protocol.data_received(bytes(buffer[:count]))
            if not self._reading:
                return
        if self._tls.pending():
            self._loop.call_soon(self._on_readable)

    def _eof(self) -> None:
        self._stop_reading()
        keep_open = self._protocol.eof_received()
        if not keep_open and self._state is _State.OPEN:
            self.close()

    # --- writing -------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # The fan-out calls this once per member per message: keep it to a few attribute
        # operations (no method calls on the common path).
        if self._state is not _State.OPEN or not data:
            return
        if not isinstance(data, bytes):
            data = bytes(data)
        self._queued.append(data)
        self._queued_bytes += len(data)
        # While an SSL_write is unfinished, the writer callback sends the queue after it.
        if not self._dirty and self._unfinished is None:
            self._dirty = True
            self._flusher.mark(self)
        if (
            (self._queued_bytes > self._high_water or self._unfinished is not None)
            and not self._write_paused
            and self.get_write_buffer_size() > self._high_water
        ):
            self._write_paused = True
            self._protocol.pause_writing()

    def _flush(self) -> None:
        """Send what is queued (called once per loop iteration by the flusher)."""
        self._dirty = False
        queued = self._queued
        if self._unfinished is not None or self._state is _State.CLOSED or not queued:
            return
        data = queued[0] if len(queued) == 1 else b"".join(queued)
        queued.clear()
        self._queued_bytes = 0
        try:
            self._tls.write(data)
        except (OSError, ValueError) as exc:
            self._send_failed(data, exc)
            return
        if self._write_paused or self._state is _State.CLOSING:
            self._after_send()

    def _send(self, data: bytes) -> None:
        try:
            # All or nothing: without SSL_MODE_ENABLE_PARTIAL_WRITE (Python never sets it),
            # SSL_write either takes every byte or asks to be retried with the same ones.
            self._tls.write(data)
        except (OSError, ValueError) as exc:
            self._send_failed(data, exc)
            return
        self._unfinished = None
        self._after_send()

    def _send_failed(self, data: bytes, exc: Exception) -> None:
        if isinstance(exc, ssl.SSLWantWriteError):
            self._unfinished = data
            self._ensure_writer()
        elif isinstance(exc, ssl.SSLWantReadError):
            self._unfinished = data  # retried by the reader callback
            self._remove_writer()
        else:
            self._drop(exc)

    def _on_writable(self) -> None:
        while self._state is not _State.CLOSED:
            data = self._unfinished
            if data is None:
                if not self._queued:
                    self._remove_writer()
                    return
                data = b"".join(self._queued)
                self._queued.clear()
                self._queued_bytes = 0
            self._unfinished = None
            self._send(data)
            if self._unfinished is not None:
                return

    def _after_send(self) -> None:
        if self._write_paused and self.get_write_buffer_size() <= self._low_water:
            self._write_paused = False
            self._protocol.resume_writing()
        if self._state is _State.CLOSING and not self._queued and self._unfinished is None:
            self._linger()

    def _ensure_writer(self) -> None:
        if not self._writer_registered:
            self._writer_registered = True
            self._poller.add_writer(self._fd, self)

    def _remove_writer(self) -> None:
        if self._writer_registered:
            self._writer_registered = False
            self._poller.remove_writer(self._fd)

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is queued, close TLS and TCP, then report ``connection_lost``."""
        if self._state is not _State.OPEN:
            return
        self._state = _State.CLOSING
        self._stop_reading()
        # A peer that never reads must not hold the connection open forever.
        self._timer = self._loop.call_later(_CLOSE_FLUSH_SECONDS, self._drop, None)
        if self._queued and self._unfinished is None:
            self._flush()
        elif not self._queued and self._unfinished is None:
            self._linger()

    def abort(self) -> None:
        """Drop the connection now; whatever is queued is lost."""
        self._drop(None)

    def _linger(self) -> None:
        """Our side is done: say so, then read (and discard) until the peer closes too.

        With TLS up, only close_notify is sent, no FIN: a client whose TLS layer is paused
        (its application reads slowly) may treat a TCP end-of-file as the end and drop
        records it has received but not yet decrypted. close_notify arrives in order after
        them, and the client closes the TCP connection when it has read it.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.LINGERING
        self._cancel_timer()
        self._remove_writer()
        self._stop_reading()
        if self._connected:
            # Raises when the peer's close_notify has not come yet, which is the usual case.
            with contextlib.suppress(OSError, ValueError):
                self._tls.shutdown()
        else:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._drop(None)
                return
        self._timer = self._loop.call_later(_LINGER_SECONDS, self._drop, None)
        self._poller.add_reader(self._fd, self)

    def _drain(self) -> None:
        # Raw reads, below TLS: after our close_notify OpenSSL refuses to read application data,
        # and whatever the peer still sends is only read to be thrown away.
        try:
            while self._sock.recv_into(self._read_buffer):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._drop(None)

    def _drop(self, exc: Exception | None) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._cancel_timer()
        # Before the socket is closed: its number is reused by the next one accepted.
        self._poller.remove_reader(self._fd)
        self._poller.remove_writer(self._fd)
        self._reading = self._writer_registered = False
        self._queued.clear()
        self._queued_bytes = 0
        self._unfinished = None
        self._sock.close()
        if self._on_drop is not None:
            on_drop, self._on_drop = self._on_drop, None
            on_drop()
        if self._connected:
            self._loop.call_soon(self._protocol.connection_lost, exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- the rest of asyncio.Transport ---------------------------------------------------

    def is_closing(self) -> bool:
        return self._state is not _State.OPEN

    def pause_reading(self) -> None:
        self._read_paused = True
        if self._state is _State.OPEN:
            self._stop_reading()

    def resume_reading(self) -> None:
        self._read_paused = False
        if self._state is _State.OPEN:
            self._start_reading()

    def is_reading(self) -> bool:
        return self._reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not 0 <= low <= high:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low

    def get_write_buffer_size(self) -> int:
        unfinished = self._unfinished
        return self._queued_bytes + (len(unfinished) if unfinished is not None else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low_water, self._high_water

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "ssl_object":
            return self._tls
        # Asked for once or twice per connection: not worth keeping in memory.
        try:
            if name == "peername":
                return self._peer if self._peer is not None else self._sock.getpeername()
            if name == "sockname":
                return self._sock.getsockname()
        except OSError:
            return default
        if name == "cipher":
            return self._tls.cipher()
        if name == "peercert":
            return self._tls.getpeercert()
        return default


class Refusal(asyncio.Protocol):
    """Says why the connection is refused, then closes it."""

    def __init__(self, message: bytes) -> None:
        self._message = message

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._message)
        transport.close()


class TlsServer:
    """Listening sockets that hand each accepted TLS connection to a new protocol, within the
    limits of ``tracker``; a socket over them gets ``refusal`` after its handshake (or is
    closed at once when many refusals are under way already).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext,
        handshake_timeout: float,
        nodelay: bool,
        tracker: ConnectionTracker,
        refusal: bytes,
        proxies: TrustedProxies | None = None,
        port_name: str = "chat",
    ) -> None:
        self._loop = loop
        self._proxies = proxies or TrustedProxies(())
        self._port_name = port_name
        # Sockets from a balancer whose PROXY header is being read (closed with the listener).
        self._reading_headers: set[HeaderReader] = set()
        self.sockets = sockets
        self.tracker = tracker
        self._refusal = refusal
        self._refusals_in_flight = 0
        # What a plain-HTTP request gets instead of a TLS handshake (see TlsTransport).
        self.plain_http_answer: bytes | None = None
        self._nodelay = nodelay
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._handshake_deadlines = DeadlineQueue(loop, handshake_timeout)
        self._flusher = WriteFlusher(loop)
        # Shared by this server's connections; it outlives the listener (open connections do).
        self._poller = fd_poller(loop)
        self._read_buffer = memoryview(bytearray(_READ_BUFFER_BYTES))
        self._closed = asyncio.Event()
        for sock in sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_CALLBACK):
            try:
                conn, address = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _FD_EXHAUSTED:
                    log.warning("Not accepting for a moment: %s", exc)
                    self._loop.remove_reader(listener.fileno())
                    self._loop.call_later(_ACCEPT_BACKOFF_SECONDS, self._resume_accepting, listener)
                    return
                raise
            if self._proxies and isinstance(address, tuple) and self._proxies.trusts(address[0]):
                reader = HeaderReader(
                    self._loop,
                    conn,
                    address,
                    self._handshake_deadlines,
                    self._port_name,
                    self._header_read,
                    self._reading_headers.discard,
                )
                self._reading_headers.add(reader)
                continue
            self._admit(conn, address, None)

    def _header_read(self, reader: HeaderReader, conn: socket.socket, client: Peer) -> None:
        self._reading_headers.discard(reader)
        self._admit(conn, client, client)

    def _admit(self, conn: socket.socket, address: Any, proxied: Peer | None) -> None:
        """Start ``conn`` if its address group is within the limits, else refuse it.
        ``proxied``: the client a PROXY header named, when it did.
        """
        group = address_group(str(address[0])) if isinstance(address, tuple) else ""
        if self.tracker.admit(group):
            self._start_connection(conn, None, Release(self.tracker, group), proxied)
        elif self._refusals_in_flight < _MAX_REFUSALS_IN_FLIGHT:
            self._refusals_in_flight += 1
            self._start_connection(conn, Refusal(self._refusal), self._refusal_ended, proxied)
        else:
            conn.close()

    def _refusal_ended(self) -> None:
        self._refusals_in_flight -= 1

    def _resume_accepting(self, listener: socket.socket) -> None:
        if not self._closed.is_set():
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _start_connection(
        self,
        conn: socket.socket,
        protocol: asyncio.Protocol | None,
        on_drop: Callable[[], None],
        peer: Peer | None = None,
    ) -> None:
        """Start the handshake of ``conn``, for ``protocol`` (None: a new one from the
        factory). ``on_drop`` runs once, when the socket is closed.
        """
        try:
            conn.setblocking(False)
            if self._nodelay:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            tls = wrap_server_side(self._ssl_context, conn)
        except (OSError, ValueError) as exc:
            log.debug("Dropped a new connection: %s", exc)
            conn.close()
            on_drop()
            return
        TlsTransport(
            self._loop,
            self._poller,
            conn,
            tls,
            protocol if protocol is not None else self._protocol_factory(),
            self._flusher,
            self._read_buffer,
            self._handshake_deadlines,
            on_drop,
            peer,
            self.plain_http_answer,
        )

    def replace_context(self, ssl_context: ssl.SSLContext) -> None:
        """Handshakes from now on use ``ssl_context`` (a reloaded certificate); connections
        already open keep theirs.
        """
        self._ssl_context = ssl_context

    def close(self) -> None:
        """Stop accepting, and drop the sockets still in their TLS handshake or PROXY header
        (no one would serve them). Connections already open are not touched.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        for reader in list(self._reading_headers):
            reader.close()
        self._handshake_deadlines.expire_all()

    async def wait_closed(self) -> None:
        await self._closed.wait()


async def start_tls_server(
    protocol_factory: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    handshake_timeout: float,
    tracker: ConnectionTracker,
    refusal: bytes,
    nodelay: bool = False,
    backlog: int = 4096,
    proxies: TrustedProxies | None = None,
    port_name: str = "chat",
    reuse_port: bool = False,
) -> TlsServer:
    """Listen on every address ``host`` resolves to, admitting connections within the limits
    of ``tracker`` (``refusal``: what one over them is sent). A connection from ``proxies``
    must start with a PROXY header, and is the client's it names. ``port_name`` names the port
    in the log. With ``reuse_port``, other processes of this user may listen on the same port
    (workers: the kernel spreads new connections over them). Raises OSError if none can be
    bound.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[Any, ...]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, *address[:2]) in seen:
                continue
            seen.add((family, *address[:2]))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(f"cannot resolve {host!r}")
    return TlsServer(
        loop,
        sockets,
        protocol_factory,
        ssl_context,
        handshake_timeout,
        nodelay,
        tracker,
        refusal,
        proxies,
        port_name,
    )
