"""A TCP proxy on loopback in front of a server (PostgreSQL in the tests), that a test can make
misbehave the ways networks do: stall every connection (bytes stop, connections stay open: a
black hole), cut every connection, or cut a connection just after it sends COMMIT, so that the
commit happens but its answer never arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

_CHUNK_BYTES = 65536
# After a COMMIT passes, the server gets this long to carry it out before the cut.
_COMMIT_SECONDS = 0.3


class FaultProxy:
    """Create with :meth:`start`; ``url`` is the upstream URL with the proxy's port."""

    def __init__(self, upstream_host: str, upstream_port: int, url: str) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._upstream_url = url
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._cut_at_commit = False
        self._black_hole_after_cut = False
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.commits_cut = 0

    @classmethod
    async def start(cls, url: str) -> FaultProxy:
        parts = urlsplit(url)
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or 5432, url)
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        return proxy

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        parts = urlsplit(self._upstream_url)
        netloc = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{self.port}"))

    def black_hole(self) -> None:
        """From now on no byte passes either way, and new connections are accepted but go
        nowhere; every connection stays open."""
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Close every open connection at once (both sides see it)."""
        for client, upstream in list(self._links):
            client.transport.abort()
            upstream.transport.abort()

    def cut_at_next_commit(self, *, then_black_hole: bool = False) -> None:
        """The next COMMIT goes to the server, then its connection is cut before the answer
        (and, with ``then_black_hole``, the proxy black-holes from that moment)."""
        self._cut_at_commit = True
        self._black_hole_after_cut = then_black_hole

    async def close(self) -> None:
        self.restore()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link, upward=True)),
            asyncio.create_task(self._pump(up_reader, writer, link, upward=False)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
            self._links.discard(link)
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        upward: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(_CHUNK_BYTES):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
                if upward and self._cut_at_commit and b"COMMIT" in data.upper():
                    self._cut_at_commit = False
                    self.commits_cut += 1
                    await asyncio.sleep(_COMMIT_SECONDS)
                    if self._black_hole_after_cut:
                        self.black_hole()
                    link[0].transport.abort()
                    link[1].transport.abort()
                    return
        # One side ended: end the other too.
        for side in link:
            side.transport.abort()
