"""Files over HTTPS on the web port: the same one-time tokens as the file port (a ``share`` or
``get`` on the chat gives one), the same rules (server/file_streams.py), the same connection
limits (counted with the file port's), for a browser, which cannot open the raw file port.

    HEAD /files/<token>         what the token is for, without using it: an upload's
                                ``Upload-Offset`` (bytes the server holds) and ``Upload-Length``;
                                a download's ``Content-Length``
    PUT or POST /files/<token>  an upload's bytes, from the offset the server holds; a resumed
                                one says so with ``Content-Range: bytes K-LAST/SIZE``
    GET /files/<token>          a download, whole or one ``Range: bytes=A-B``

Every answer to these carries ``Content-Security-Policy: default-src 'none'; sandbox``; a
download is an attachment (``Content-Disposition``), so no file shared by a user is ever shown
as a page of this origin. Errors are JSON: ``{"type":"error","code":…,"message":…}``, the code
one of docs/protocol.md's. The request is checked (syntax, sizes, offset) before its token is
used, so a refused request leaves the token good for another try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.files import human_size
from parley.server.address_group import address_group
from parley.server.file_streams import CHUNK_BYTES, FileStreams, Refused
from parley.server.files import FileService
from parley.server.http_errors import HttpError
from parley.server.metrics import ServerMetrics
from parley.server.request_limits import RequestLimits
from parley.server.transfer import TransferServer
from parley.storage import FileRecord, StorageUnavailable

log = logging.getLogger("parley.transfer")
T = TypeVar("T")

# Whatever a file holds, the browser must neither run it nor show it as this origin's page.
FILE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
# A Range or Content-Range header is short; a long one is abuse, refused before it is parsed.
_MAX_RANGE_HEADER_CHARS = 100
_RANGE = re.compile(r"bytes=(\d{0,16})-(\d{0,16})")
_CONTENT_RANGE = re.compile(r"bytes (?:(\d{1,16})-(\d{1,16})|\*)/(\d{1,16})")


def content_disposition(name: str) -> str:
    """``attachment`` with ``name`` (already cleaned by the server) as RFC 6266 gives it: an
    ASCII fallback (other characters, quotes and backslashes become ``_``) and the exact name
    in UTF-8 (``filename*``), which browsers prefer.
    """
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    exact = urllib.parse.quote(name, safe="!#$&+-.^_`|~")
    return f"attachment; filename=\"{fallback or 'file'}\"; filename*=UTF-8''{exact}"


def parse_range(header: str, size: int) -> tuple[int, int]:
    """The bytes ``first`` to ``end`` (exclusive) that one ``Range: bytes=A-B`` (or ``A-``,
    or ``-N``, the last N) asks of a file of ``size`` bytes. Raises HttpError 416 for
    anything else: several ranges, another unit, a range past the end.
    """
    match = _RANGE.fullmatch(header.strip()) if len(header) <= _MAX_RANGE_HEADER_CHARS else None
    unsatisfiable = {"Content-Range": f"bytes */{size}"}
    if match is None or match.group(1) == match.group(2) == "":
        raise HttpError(
            416,
            ErrorCode.INVALID_MESSAGE,
            "Ask for one range of bytes: Range: bytes=FIRST-LAST, bytes=FIRST- or bytes=-COUNT.",
            unsatisfiable,
        )
    first_text, last_text = match.groups()
    if first_text == "":
        count = int(last_text)
        first, end = max(size - count, 0), size
        if count == 0:
            first = size
    else:
        first = int(first_text)
        end = size if last_text == "" else min(int(last_text) + 1, size)
        if last_text and int(last_text) < first:
            first = size  # backwards: nothing to send
    if first >= end:
        raise HttpError(
            416,
            ErrorCode.INVALID_MESSAGE,
            f"The range asks for no byte of this file of {size:,} bytes.",
            unsatisfiable,
        )
    return first, end


def _upload_start(request: web.Request, size: int) -> int:
    """Where the bytes of an upload request start: its Content-Range's first byte (``*``:
    none are sent, the server has them all), or 0. Raises HttpError for a malformed or
    inconsistent one, or a body that is not the rest of the file.
    """
    header = request.headers.get("Content-Range")
    start = 0
    if header is not None:
        match = (
            _CONTENT_RANGE.fullmatch(header.strip())
            if len(header) <= _MAX_RANGE_HEADER_CHARS
            else None
        )
        if match is None or int(match.group(3)) != size:
            raise HttpError(
                400,
                ErrorCode.INVALID_MESSAGE,
                f"Content-Range must be bytes FIRST-{size - 1}/{size} (this file's size).",
            )
        if match.group(1) is None:
            start = size
        elif int(match.group(2)) != size - 1 or int(match.group(1)) > size - 1:
            raise HttpError(
                400,
                ErrorCode.INVALID_MESSAGE,
                f"Send the rest of the file: Content-Range: bytes FIRST-{size - 1}/{size}.",
            )
        else:
            start = int(match.group(1))
    length = request.content_length
    if length is not None and length != size - start:
        status = 413 if length > size - start else 400
        raise HttpError(
            status,
            ErrorCode.FILE_TOO_LARGE if status == 413 else ErrorCode.INVALID_MESSAGE,
            f"The body is {length:,} bytes; from byte {start:,} this file has "
            f"{size - start:,} ({human_size(size)} in all).",
        )
    return start


def _offset_conflict(start: int, held: int, size: int) -> HttpError:
    return HttpError(
        409,
        ErrorCode.INVALID_FILE,
        f"The server holds {held:,} bytes of this file: send from byte {held:,} "
        f"(Content-Range: bytes {held}-{size - 1}/{size}).",
        {"Upload-Offset": str(held)},
        offset=held,
    )


class WebFiles:
    """The /files/<token> routes (see the module's docstring)."""

    def __init__(
        self,
        files: FileService,
        transfers: TransferServer,
        limits: RequestLimits,
        metrics: ServerMetrics,
        origin: Callable[[], str],
    ) -> None:
        self._files = files
        self._transfers = transfers
        self._limits = limits
        # The public origin, known once the listener is bound.
        self._origin = origin
        self._streams = FileStreams(files, files.config, metrics, _on_this_loop, offload=True)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("HEAD", "/files/{token}", self._head)
        app.router.add_get("/files/{token}", self._download, allow_head=False)
        app.router.add_put("/files/{token}", self._upload)
        app.router.add_post("/files/{token}", self._upload)

    async def _guarded(
        self,
        request: web.Request,
        work: Coroutine[Any, Any, web.StreamResponse],
        *,
        transfer: bool = True,
    ) -> web.StreamResponse:
        """Run ``work`` within the address's request budget and, for a ``transfer``, the file
        port's connection limits; an HttpError or Refused becomes its JSON answer.
        """
        group = address_group(request.remote or "")
        loop = asyncio.get_running_loop()
        try:
            if self._limits.charge(group, "", 1, loop.time()) is not None:
                raise HttpError.of(
                    ErrorCode.RATE_LIMITED,
                    "Too many requests from your address on all its connections; slow down.",
                )
            if not transfer:
                return await work
            if not await self._transfers.admit(group):
                raise HttpError.of(
                    ErrorCode.TOO_MANY_CONNECTIONS,
                    "Too many file transfers from your address (max_file_connections_per_"
                    "address) or in all; try again when one has finished.",
                )
            try:
                return await work
            finally:
                self._transfers.release(group)
        except HttpError as exc:
            return exc.response(FILE_HEADERS)
        except Refused as exc:
            return HttpError.of(exc.code, exc.message).response(FILE_HEADERS)
        except StorageUnavailable:
            return HttpError.of(ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE.text).response(
                FILE_HEADERS
            )
        except TimeoutError:
            seconds = self._files.config.upload_stall_seconds
            return HttpError(
                408,
                ErrorCode.INVALID_FILE,
                f"No bytes came for {seconds:g} s (upload_stall_seconds); those that came are "
                "kept: share the file again to go on from there.",
            ).response(FILE_HEADERS)
        finally:
            work.close()  # not started when refused: never to be awaited

    async def _record(self, token: str, upload: bool) -> FileRecord:
        """The file of an unused ``token`` for an upload (or a download), token unused."""
        ticket = await self._files.tickets.peek(token)
        if ticket is None or ticket.upload != upload:
            raise _no_token(upload)
        record = await self._files.storage.file(ticket.file_id)
        if record is None:
            raise HttpError.of(ErrorCode.NO_SUCH_FILE, ErrorCode.NO_SUCH_FILE.text)
        return record

    async def _head(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, self._describe(request), transfer=False)

    async def _describe(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        ticket = await self._files.tickets.peek(token)
        if ticket is None:
            raise _no_token(True)
        record = await self._files.storage.file(ticket.file_id)
        if record is None:
            raise _no_token(ticket.upload)
        if ticket.upload:
            held = record.size if record.complete else self._files.blobs.received(record.file_id)
            headers = {"Upload-Offset": str(held), "Upload-Length": str(record.size)}
        else:
            headers = {
                "Accept-Ranges": "bytes",
                "Content-Disposition": content_disposition(record.name),
                "Upload-Length": str(record.size),
            }
        return web.Response(status=204, headers={**FILE_HEADERS, **headers})

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, self._receive(request))

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        self._check_origin(request)
        token = request.match_info["token"]
        record = await self._record(token, upload=True)
        start = _upload_start(request, record.size)
        held = self._files.blobs.received(record.file_id)
        if start != held and not record.complete:
            raise _offset_conflict(start, held, record.size)

        def ready(offset: int) -> None:
            if offset != start:
                raise _offset_conflict(start, offset, record.size)

        try:
            _, record = await self._files.open_transfer(token)
        except PeerError as exc:
            raise HttpError.of(exc.code, exc.detail) from None
        try:
            done = await self._streams.receive(record, _reader(request), ready)
        finally:
            self._files.end_upload(record.file_id)
        if not done:
            return web.json_response(
                {
                    "type": "error",
                    "code": ErrorCode.INVALID_FILE.value,
                    "message": "The upload ended early; its bytes are kept to resume.",
                },
                status=400,
                headers=FILE_HEADERS,
            )
        return web.json_response(
            {"type": "done", "file_id": record.file_id, "sha256": record.sha256},
            headers=FILE_HEADERS,
        )

    async def _download(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, self._send(request))

    async def _send(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        record = await self._record(token, upload=False)
        header = request.headers.get("Range")
        first, end = (0, record.size) if header is None else parse_range(header, record.size)
        if await self._files.tickets.redeem(token) is None:
            raise _no_token(False)
        with self._streams.open_blob(record) as file:
            response = web.StreamResponse(
                status=200 if header is None else 206,
                headers={
                    **FILE_HEADERS,
                    "Content-Type": "application/octet-stream",
                    "Content-Disposition": content_disposition(record.name),
                    "Accept-Ranges": "bytes",
                },
            )
            response.content_length = end - first
            if header is not None:
                response.headers["Content-Range"] = f"bytes {first}-{end - 1}/{record.size}"
            await response.prepare(request)
            # The browser went away or stopped reading, or the content is short: the
            # headers are sent, there is nothing more to tell; the cut body says it.
            with contextlib.suppress(ConnectionError, TimeoutError, Refused):
                await self._streams.send(file, first, end, response.write)
            return response

    def _check_origin(self, request: web.Request) -> None:
        # A browser sends its page's Origin with every PUT and POST: another site's page
        # is refused. Programs that are not browsers may send none; the token is the right.
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != self._origin().lower():
            log.info("Refused an upload from %s: Origin %r", request.remote, origin)
            raise HttpError(
                403,
                ErrorCode.NOT_PERMITTED,
                "Files are uploaded from this server's own page only (web_public_url).",
            )


async def _on_this_loop(work: Coroutine[Any, Any, T]) -> T:
    return await work


def _no_token(upload: bool) -> HttpError:
    kind = "upload" if upload else "download"
    return HttpError.of(
        ErrorCode.NO_SUCH_FILE,
        f"The token is unknown, used or expired, or not for an {kind}: ask for a new one "
        "(share or get on the chat).",
    )


def _reader(request: web.Request) -> Callable[[int], Awaitable[bytes]]:
    """The request body's ``read``: up to n bytes, b"" at its end or when the browser goes."""

    async def read(n: int) -> bytes:
        try:
            return await request.content.read(min(n, CHUNK_BYTES))
        except (ConnectionError, aiohttp.ClientError):
            return b""

    return read
