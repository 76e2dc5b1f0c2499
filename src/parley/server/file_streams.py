"""How a file's bytes are received and sent, whatever carries them: a connection on the file
port (server/transfer.py) or an HTTPS request on the web port (server/web_files.py). The rules
are here once: an upload is checked as it arrives (a byte past the declared size deletes it),
its SHA-256 is checked at the end, bytes are written out every SYNC_EVERY_BYTES, and a
download is served from the verified blob only.

A carrier gives a ``read`` (up to n bytes; b"" at the end of its stream) or a ``write``, and a
``chat`` runner: what needs the chat loop (storage, the hub) is run through it. The file port
runs on a thread of its own and hops to the chat loop; the web port is on the chat loop and
runs the work directly, with the blocking file-system calls in a worker thread (``offload``)
so that they do not hold up the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, BinaryIO, Protocol, TypeVar

from parley.config import ServerConfig
from parley.protocol.errors import ErrorCode
from parley.server.files import CLAIM_RENEW_SECONDS, FileService
from parley.server.metrics import ServerMetrics
from parley.storage import FileRecord

log = logging.getLogger("parley.transfer")

CHUNK_BYTES = 256 * 1024
SYNC_EVERY_BYTES = 2 * 1024 * 1024
T = TypeVar("T")


class Refused(Exception):
    """A transfer refused or failed, with the error code and words to tell its client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(message)


class ChatRunner(Protocol):
    """Runs ``work`` where the chat's state lives (the chat loop) and returns its result."""

    def __call__(self, work: Coroutine[Any, Any, T]) -> Awaitable[T]: ...


class FileStreams:
    """Moves one file's bytes in or out under the rules (see the module's docstring)."""

    def __init__(
        self,
        files: FileService,
        config: ServerConfig,
        metrics: ServerMetrics,
        chat: ChatRunner,
        *,
        offload: bool,
    ) -> None:
        self.files = files
        self.config = config
        self._metrics = metrics
        self._chat = chat
        self._offload = offload

    async def _blocking(self, call: Callable[..., T], *args: Any) -> T:
        if self._offload:
            return await asyncio.to_thread(call, *args)
        return call(*args)

    async def receive(
        self,
        record: FileRecord,
        read: Callable[[int], Awaitable[bytes]],
        ready: Callable[[int], None],
    ) -> bool:
        """Receive an upload's bytes; ``record``'s file must be claimed by the caller.

        ``ready`` is told the offset the server holds before any byte is read (it may raise
        Refused: the bytes offered do not start there). Returns True when the file is complete,
        verified and announced; False when ``read`` ended early (the bytes are kept, to
        resume). Raises Refused, the upload deleted when its bytes broke the rules.
        """
        blobs = self.files.blobs
        if record.complete:
            raise Refused(ErrorCode.INVALID_FILE, "That file is already complete.")
        digest = await asyncio.to_thread(blobs.hash_received, record.file_id)
        received = blobs.received(record.file_id)
        if received > record.size:
            await self._discard(record, "More bytes than the file's size were stored.")
        ready(received)
        fd = blobs.open_partial(record.file_id)
        unsynced = 0
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        # At most one write-out in flight, overlapping the next bytes' arrival.
        syncing: asyncio.Future[None] | None = None
        try:
            while received < record.size:
                # Not wait_for: on Python 3.11 it drops a cancellation that comes as a read
                # finishes, and the upload would go on through a shutdown.
                async with asyncio.timeout(self.config.upload_stall_seconds):
                    chunk = await read(CHUNK_BYTES)
                if not chunk:
                    return False  # ended early: kept, to resume
                if received + len(chunk) > record.size:
                    await self._discard(
                        record,
                        f"More bytes than the declared size ({record.size:,}) were sent; "
                        "the upload was deleted.",
                    )
                try:
                    await self._blocking(_append, fd, digest, chunk)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        await self._discard(
                            record,
                            "The server has no room for the file; the upload was deleted.",
                            ErrorCode.UNAVAILABLE,
                        )
                    raise
                received += len(chunk)
                if loop.time() - renewed >= CLAIM_RENEW_SECONDS:
                    # The upload's claim is a lease (parley.server.files): keep it.
                    renewed = loop.time()
                    await self._chat(self.files.renew_upload(record.file_id))
                self._metrics.file_received_bytes.inc(len(chunk))
                unsynced += len(chunk)
                if unsynced >= SYNC_EVERY_BYTES:
                    # Little dirty data at a time: a chat commit's fsync must not wait
                    # for the kernel to write out a whole file first.
                    if syncing is not None:
                        await syncing
                    syncing = asyncio.ensure_future(asyncio.to_thread(os.fdatasync, fd))
                    unsynced = 0
        finally:
            if syncing is not None:
                with contextlib.suppress(OSError):
                    await syncing
            os.close(fd)
        if digest.hexdigest() != record.sha256:
            await self._discard(
                record,
                "The bytes received do not have the SHA-256 declared; the upload was deleted.",
            )
        await asyncio.to_thread(blobs.commit, record.file_id, record.sha256)
        await self._chat(self.files.finished(record))
        return True

    async def _discard(
        self, record: FileRecord, why: str, code: ErrorCode = ErrorCode.INVALID_FILE
    ) -> None:
        """Delete a failed upload, record and bytes, and refuse with ``why``."""
        await self._chat(self.files.forget(record.file_id))
        raise Refused(code, why)

    def open_blob(self, record: FileRecord) -> BinaryIO:
        """The verified content of a complete, unexpired file, open for reading. Raises
        Refused (no-such-file; unavailable when its bytes are missing).
        """
        if not record.complete or record.expires_ms <= self.files.clock.now_ms():
            raise Refused(ErrorCode.NO_SUCH_FILE, ErrorCode.NO_SUCH_FILE.text)
        try:
            return self.files.blobs.open_blob(record.sha256)
        except FileNotFoundError:
            log.error("The bytes of file %s are missing", record.file_id)
            raise Refused(ErrorCode.UNAVAILABLE, "The file's content is missing.") from None

    async def send(
        self, file: BinaryIO, first: int, end: int, write: Callable[[bytes], Awaitable[None]]
    ) -> None:
        """Send bytes ``first`` to ``end`` (exclusive) of ``file`` with ``write``, a chunk at a
        time; a ``write`` that does not finish within ``upload_stall_seconds`` ends it
        (TimeoutError).
        """
        await self._blocking(file.seek, first)
        left = end - first
        while left > 0:
            chunk = await self._blocking(file.read, min(CHUNK_BYTES, left))
            if not chunk:
                raise Refused(ErrorCode.UNAVAILABLE, "The file's content is shorter than its size.")
            async with asyncio.timeout(self.config.upload_stall_seconds):  # see receive
                await write(chunk)
            left -= len(chunk)
            self._metrics.file_sent_bytes.inc(len(chunk))


def _append(fd: int, digest: Any, chunk: bytes) -> None:
    os.write(fd, chunk)
    digest.update(chunk)
