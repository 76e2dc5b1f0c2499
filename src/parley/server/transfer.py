"""The file connections: TLS on a port of their own, one file per connection, the bytes
streamed in chunks (never a whole file in memory). They are served by an event loop in a
thread of its own: decrypting, hashing and writing a large file is heavy, and on the chat
loop it would hold up every chat frame behind it. OpenSSL, hashlib and file writes release
the GIL for large buffers, so the two loops really run side by side. What the transfers need
of the chat side (storage, the hub) is run on the chat loop and awaited.

An upload is checked as it arrives (the rules are server/file_streams.py's, which the web
port's HTTPS transfers share): a byte past the declared size cuts the connection and
deletes what came; at the end the SHA-256 must match, else the same. A connection that stops
sending for ``upload_stall_seconds`` is closed, its bytes kept so the client can resume, until
the upload's record expires and the purge frees them.

The thread boundary: this thread owns its loop, its listener and its connections; the
FileService (tokens, claims on files, storage, the hub) belongs to the chat loop and is only
ever called through :meth:`TransferServer._on_chat_loop`. What both threads touch is the file
system under the blob store, and a claim (taken on the chat loop) keeps an upload's partial
file from the purge while this thread writes it. The file port has the chat port's listener:
every socket counted from accept per address group, within ``max_file_connections_per_address``
and ``max_file_connections``, and dropped if its TLS handshake is not done within
``tls_handshake_timeout_seconds``. Transfers over HTTPS count against the same limits
(:meth:`TransferServer.admit`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from parley.config import ServerConfig
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.transfer import (
    MAX_START_LINE_BYTES,
    Done,
    Ready,
    TransferError,
    decode_start,
    encode,
)
from parley.server.file_streams import FileStreams, Refused
from parley.server.files import FileService
from parley.server.metrics import ServerMetrics
from parley.server.proxy_protocol import trusted_proxies
from parley.server.tls_transport import TlsServer, start_tls_server
from parley.server.tracker import ConnectionTracker
from parley.storage import FileRecord

log = logging.getLogger("parley.transfer")

# What a connection may have received and not yet consumed before its reading pauses (the
# stream pauses past twice this). With a small limit an upload pauses after every TLS record
# (16 KiB), and two system calls and a task switch per record cut uploads to a third of their
# speed; this one lets 8 records through per pause and bounds a connection's buffer at 128 KiB.
READ_LIMIT_BYTES = 64 * 1024
T = TypeVar("T")


async def _start_line(reader: asyncio.StreamReader) -> bytes:
    """The connection's first line. Read byte by byte (a line is about 80 bytes): nothing after
    its end is consumed, and a line longer than MAX_START_LINE_BYTES is refused (ValueError)
    as soon as that many bytes have come, whatever the stream's buffer limit.
    """
    line = bytearray()
    while len(line) < MAX_START_LINE_BYTES:
        byte = await reader.read(1)
        if not byte:
            raise asyncio.IncompleteReadError(bytes(line), None)
        line += byte
        if byte == b"\n":
            return bytes(line)
    raise ValueError("the first line is too long")


class TransferServer:
    def __init__(self, files: FileService, config: ServerConfig, metrics: ServerMetrics) -> None:
        self.files = files
        self.config = config
        # Counted from this server's thread: the library's metrics take a lock of their own.
        self._metrics = metrics
        self.port = 0
        # Changed on this server's thread only (a scrape on the chat loop reads its counts).
        self.tracker = ConnectionTracker(
            config.max_file_connections_per_address,
            config.max_file_connections,
            port_name="file",
            settings=("max_file_connections_per_address", "max_file_connections"),
        )
        self._server: TlsServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._chat_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._streams = FileStreams(files, config, metrics, self._on_chat_loop, offload=False)

    async def start(self, context: ssl.SSLContext, port: int) -> None:
        """Listen on ``port`` from a thread of its own. Raises OSError (address in use)."""
        self._chat_loop = asyncio.get_running_loop()
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(context, port, started), name="parley-files", daemon=True
        )
        self._thread.start()
        self.port = await asyncio.wrap_future(started)

    def _run(
        self, context: ssl.SSLContext, port: int, started: concurrent.futures.Future[int]
    ) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                start_tls_server(
                    self._new_connection,
                    self.config.host,
                    port,
                    context,
                    handshake_timeout=self.config.tls_handshake_timeout_seconds,
                    tracker=self.tracker,
                    refusal=encode(
                        TransferError(
                            code=ErrorCode.TOO_MANY_CONNECTIONS,
                            message="The file port has too many connections; try again later.",
                        )
                    ),
                    nodelay=True,
                    proxies=trusted_proxies(self.config),
                    port_name="file",
                    reuse_port=self.config.workers > 1,
                )
            )
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(self._server.sockets[0].getsockname()[1])
        try:
            loop.run_forever()
        finally:
            loop.close()

    def reconfigure(self, context: ssl.SSLContext) -> None:
        """From the chat loop: new handshakes on the file port use ``context``, and its
        connection limits are those of ``config`` now (a reload). Transfers go on untouched.
        """
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return
        limits = (self.config.max_file_connections_per_address, self.config.max_file_connections)
        loop.call_soon_threadsafe(server.replace_context, context)
        loop.call_soon_threadsafe(self.tracker.set_limits, *limits)

    async def stop(self) -> None:
        """Close the port and cut transfers short (an upload cut short resumes later)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def admit(self, group: str) -> bool:
        """From the chat loop: count one file transfer over HTTPS from the address ``group``
        against the file port's limits, with its own connections (False: over a limit, nothing
        counted). Each True must be matched by one :meth:`release`.
        """
        loop = self._loop
        if loop is None:
            return False

        async def admit() -> bool:
            return self.tracker.admit(group)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(admit(), loop))

    def release(self, group: str) -> None:
        """From the chat loop: a transfer counted by :meth:`admit` has ended."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # this server's loop is closed: none left
                loop.call_soon_threadsafe(self.tracker.release, group)

    def _new_connection(self) -> asyncio.Protocol:
        return asyncio.StreamReaderProtocol(
            asyncio.StreamReader(limit=READ_LIMIT_BYTES), self._serve
        )

    async def _on_chat_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` (storage, the hub) on the chat loop, and wait for it here."""
        assert self._chat_loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._chat_loop))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._one_transfer(reader, writer)
        except Refused as refused:
            writer.write(encode(TransferError(code=refused.code, message=refused.message)))
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: nothing to tell it
        finally:
            self._connections.discard(task)
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.drain(), 5.0)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 5.0)

    async def _one_transfer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            line = await asyncio.wait_for(_start_line(reader), self.config.hello_timeout_seconds)
            start = decode_start(line.rstrip(b"\n"))
        except ValueError:
            raise Refused(ErrorCode.BAD_FRAME, "The first line must be a 'start'.") from None
        except PeerError as exc:
            raise Refused(exc.code, exc.detail) from None
        try:
            ticket, record = await self._on_chat_loop(self.files.open_transfer(start.token))
        except PeerError as exc:
            raise Refused(exc.code, exc.detail) from None
        if not ticket.upload:
            await self._send(writer, record, start.offset)
            return
        try:
            await self._receive(reader, writer, record)
        finally:
            self._end_upload(record.file_id)

    def _end_upload(self, file_id: str) -> None:
        """Release the upload's claim, on the chat loop; not awaited, so that it also runs
        when this connection is being cancelled.
        """
        assert self._chat_loop is not None
        with contextlib.suppress(RuntimeError):  # the chat loop is closed: nothing to release
            self._chat_loop.call_soon_threadsafe(self.files.end_upload, file_id)

    async def _receive(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: FileRecord
    ) -> None:
        """Receive an upload's bytes; ``record``'s file is claimed by this connection."""

        def ready(offset: int) -> None:
            writer.write(encode(Ready(offset=offset, size=record.size)))

        if await self._streams.receive(record, reader.read, ready):
            writer.write(encode(Done(file_id=record.file_id, sha256=record.sha256)))

    async def _send(self, writer: asyncio.StreamWriter, record: FileRecord, offset: int) -> None:
        offset = min(offset, record.size)

        async def write(chunk: bytes) -> None:
            writer.write(chunk)
            await writer.drain()

        with self._streams.open_blob(record) as file:
            writer.write(encode(Ready(offset=offset, size=record.size)))
            await self._streams.send(file, offset, record.size, write)
