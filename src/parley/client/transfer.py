"""Sending and fetching files, for every front end: the bytes go over TLS connections of their
own, beside the chat connection, so chat never waits behind a file (docs/protocol.md, "Files").

Both directions resume: an interrupted upload is offered again and the server says how much it
already holds; an interrupted download continues its ``.part`` file. A partial file never has
the final name, on either side. Progress is reported through a callback (bytes done, total),
which a terminal draws as a bar and the desktop app as a progress widget.

Transfers run beside the chat as tasks owned by a :class:`Transfers`: the front end that started
them waits for them or cancels them on exit, and every outcome is collected (a failure the
transfer did not turn into a message for the user is logged, never left unretrieved).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from parley.client.core import ChatClient, ConnectionLost
from parley.protocol import transfer
from parley.protocol.errors import ParleyError, PeerError
from parley.protocol.filenames import clean_file_name
from parley.tls import client_context, fingerprint

log = logging.getLogger("parley.client")

CHUNK_BYTES = 256 * 1024
# Attempts at a transfer before giving up; each resumes where the last one stopped.
ATTEMPTS = 5
_PAUSE_SECONDS = 0.5


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    file_id: str
    name: str
    done: int
    total: int
    upload: bool


ProgressCallback = Callable[[Progress], None]


class TransferFailed(ParleyError):
    """A transfer could not be completed; ``reason`` is for the user."""

    def __init__(self, reason: str, code: str = "") -> None:
        self.reason, self.code = reason, code
        super().__init__(reason)


class Transfers:
    """The transfers running in the background of one front end; it owns their tasks."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (which reports its own outcome to the user) beside the chat."""
        task = asyncio.create_task(work, name="parley-transfer")
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("A transfer failed: %r", exc, exc_info=exc)

    async def finish(self) -> None:
        """Wait until every transfer has ended, however it ends."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self, grace_seconds: float = 0.0) -> None:
        """Stop every transfer and wait until each has (a cut transfer resumes later: an
        upload from what the server holds, a download from its ``.part`` file). Those that
        end by themselves within ``grace_seconds`` (their request failed with the connection)
        are let end, so that each says why it stopped.
        """
        if self._tasks and grace_seconds > 0:
            await asyncio.wait(list(self._tasks), timeout=grace_seconds)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def upload(
    client: ChatClient, path: Path, to: str, progress: ProgressCallback | None = None
) -> str:
    """Share the file at ``path`` with ``to`` (a room or a user); returns its id once the
    server has it whole and verified. Raises RequestRefused (the offer), TransferFailed,
    OSError (the file cannot be read).
    """
    size, digest = await asyncio.to_thread(_size_and_hash, path)
    last = ""
    for attempt in range(ATTEMPTS):
        # Offered again on each attempt: the server answers with what it already holds.
        slot = await client.share(to, path.name, size, digest)
        report = _Reporter(progress, slot.file_id, slot.name, size, upload=True)
        try:
            await _send_bytes(client, slot.port, slot.token, path, slot.offset, size, report)
            return slot.file_id
        except TransferFailed as failed:
            if failed.code:  # the server refused: trying again would not help
                raise
            last = failed.reason
        await asyncio.sleep(_PAUSE_SECONDS * (attempt + 1))
    raise TransferFailed(f"The upload kept failing: {last}")


async def download(
    client: ChatClient,
    file_id: str,
    folder: Path,
    name: str | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Fetch file ``file_id`` into ``folder`` (made if missing), under ``name`` or the name it
    was shared with (cleaned either way); returns where it was saved. The SHA-256 is checked
    before the file takes its name; an existing file is never overwritten (``name (1).ext``).
    Raises RequestRefused (NO_SUCH_FILE), TransferFailed, OSError.
    """
    ticket = await client.get_file(file_id)
    wanted = await asyncio.to_thread(_prepare, folder, name or ticket.name)
    partial = folder / f".{wanted}.{file_id[:12]}.part"
    report = _Reporter(progress, file_id, ticket.name, ticket.size, upload=False)
    last = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            ticket = await client.get_file(file_id)  # a token is good for one connection
        try:
            await _receive_bytes(client, ticket.port, ticket.token, partial, ticket.size, report)
            break
        except TransferFailed as failed:
            if failed.code:
                raise
            last = failed.reason
        await asyncio.sleep(_PAUSE_SECONDS * (attempt + 1))
    else:
        raise TransferFailed(f"The download kept failing: {last}")
    actual = await asyncio.to_thread(sha256_of, partial)
    if actual != ticket.sha256:
        partial.unlink(missing_ok=True)
        raise TransferFailed("The file arrived damaged (its SHA-256 does not match); removed.")
    return _place(partial, folder, wanted)


def _size_and_hash(path: Path) -> tuple[int, str]:
    return path.stat().st_size, sha256_of(path)


def _prepare(folder: Path, name: str) -> str:
    """Make ``folder``; the name to save under, cleaned."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return clean_file_name(name)
    except PeerError:
        return "download"


def _partial_size(partial: Path, size: int) -> int:
    """Bytes of an earlier attempt to continue from (none if the part file is wrong)."""
    have = partial.stat().st_size if partial.exists() else 0
    if have > size:
        partial.unlink()
        return 0
    return have


def _place(partial: Path, folder: Path, name: str) -> Path:
    """Give ``partial`` its final name, numbered if taken: never over an existing file."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    for number in range(10_000):
        numbered = f"{stem} ({number})" + (f".{extension}" if extension else "")
        target = folder / (numbered if number else name)
        try:
            os.link(partial, target)  # fails if the name is taken, atomically
        except FileExistsError:
            continue
        partial.unlink()
        return target
    raise TransferFailed(f"No free name for {name} in {folder}.")


@dataclasses.dataclass(frozen=True, slots=True)
class _Reporter:
    callback: ProgressCallback | None
    file_id: str
    name: str
    total: int
    upload: bool

    def __call__(self, done: int) -> None:
        if self.callback is not None:
            self.callback(Progress(self.file_id, self.name, done, self.total, self.upload))


async def _open(client: ChatClient, port: int, token: str, offset: int) -> tuple[
    asyncio.StreamReader, asyncio.StreamWriter, transfer.Ready]:  # fmt: skip
    """A file connection to the chat server's host, checked to be the same server."""
    context: ssl.SSLContext = client_context(client.cafile)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                client.host, port, ssl=context,
                server_hostname=client.host if client.cafile is not None else None,
            ),
            15.0,
        )  # fmt: skip
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise TransferFailed(f"Cannot reach the file port {port}: {exc}") from None
    identity = client.identity
    if identity.verified and client.cafile is None:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        if fingerprint(der) != identity.fingerprint:
            writer.close()
            raise TransferFailed(
                f"The file port {port} presented another certificate than the chat server "
                f"({fingerprint(der)}); nothing was sent.",
                "certificate",
            )
    writer.write(transfer.encode(transfer.Start(token=token, offset=offset)))
    try:
        line = await asyncio.wait_for(reader.readline(), 30.0)
        answer = transfer.decode_server_line(line.rstrip(b"\n"))
    except (OSError, ssl.SSLError, TimeoutError, PeerError) as exc:
        writer.close()
        raise TransferFailed(f"The file connection failed: {exc}") from None
    if isinstance(answer, transfer.TransferError):
        writer.close()
        raise TransferFailed(answer.message, answer.code)
    if not isinstance(answer, transfer.Ready):
        writer.close()
        raise TransferFailed("The server answered the file connection wrongly.")
    return reader, writer, answer


async def _send_bytes(client: ChatClient, port: int, token: str, path: Path, offset: int,
                      size: int, report: Callable[[int], None]) -> None:  # fmt: skip
    reader, writer, ready = await _open(client, port, token, offset)
    try:
        done = ready.offset
        report(done)
        with path.open("rb") as file:
            file.seek(done)
            while done < size:
                chunk = file.read(min(CHUNK_BYTES, size - done))
                if not chunk:
                    raise TransferFailed("The file got shorter while it was being sent.", "local")
                writer.write(chunk)
                await writer.drain()
                done += len(chunk)
                report(done)
        line = await asyncio.wait_for(reader.readline(), 120.0)
        answer = transfer.decode_server_line(line.rstrip(b"\n"))
    except (OSError, ssl.SSLError, TimeoutError, PeerError, ConnectionLost) as exc:
        raise TransferFailed(f"The upload was interrupted: {exc or type(exc).__name__}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if isinstance(answer, transfer.TransferError):
        raise TransferFailed(answer.message, answer.code)
    if not isinstance(answer, transfer.Done):
        raise TransferFailed("The server did not confirm the upload.")


async def _receive_bytes(client: ChatClient, port: int, token: str, partial: Path, size: int,
                         report: Callable[[int], None]) -> None:  # fmt: skip
    have = await asyncio.to_thread(_partial_size, partial, size)
    reader, writer, ready = await _open(client, port, token, have)
    try:
        done = ready.offset
        report(done)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as file:
            file.truncate(done)
            file.seek(done)
            while done < size:
                chunk = await asyncio.wait_for(reader.read(CHUNK_BYTES), 60.0)
                if not chunk:
                    break
                if done + len(chunk) > size:
                    raise TransferFailed("The server sent more than the file's size.", "local")
                file.write(chunk)
                done += len(chunk)
                report(done)
            file.flush()
            os.fsync(file.fileno())
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise TransferFailed(f"The download was interrupted: {exc or type(exc).__name__}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if done < size:
        raise TransferFailed(f"The download stopped at {done} of {size} bytes.")
