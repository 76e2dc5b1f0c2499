"""Ports mixed up, as people do: the terminal client pointed at the web port is told that port
speaks HTTPS and which port to use, and ``http://`` typed for the web port's ``https://`` is
answered with a short 400 that says where the page is, not an empty reply.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from pathlib import Path

from processes import Process, start_client, start_server

from support import insecure_context


async def _web_server(home: Path) -> tuple[Process, int, int]:
    """A server with its web port on: the process, its chat port and its web port."""
    settings = home / "server.toml"
    settings.write_text("web_port = 0\nfiles_port = 0\n")
    server, port = await start_server(home, "--config", str(settings))
    match = await server.expect(r"Web client on https://127\.0\.0\.1:\d+/ \(port (\d+)\)$")
    return server, port, int(match.group(1))


async def _exchange(port: int, data: bytes, *, tls: bool = False) -> bytes:
    """Send ``data`` to ``port`` on loopback and read until the server closes."""
    context: ssl.SSLContext | None = insecure_context() if tls else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def _stop(server: Process) -> None:
    server.signal(signal.SIGTERM)
    status, out, err = await server.finish()
    assert status == 0, out + err


async def test_the_terminal_client_at_the_web_port_is_told_to_use_the_chat_port(
    tmp_path: Path,
) -> None:
    server, port, web_port = await _web_server(tmp_path)
    try:
        client = await start_client(tmp_path, web_port, "--nick", "Alice")
        client.end_input()
        status, out, err = await client.finish()
        assert status != 0, out
        said = out + err
        assert "broke the protocol" not in said, said
        assert "This port speaks HTTPS" in said, said
        assert "connect to the server's chat port instead (7976 unless" in said, said
        # The chat port itself still works for the same user.
        client = await start_client(tmp_path, port, "--nick", "Alice")
        client.end_input()
        status, out, _ = await client.finish()
        assert status == 0 and "Welcome to the chat!" in out, out
    finally:
        await _stop(server)


async def test_plain_http_to_the_web_port_is_answered_with_its_https_address(
    tmp_path: Path,
) -> None:
    server, port, web_port = await _web_server(tmp_path)
    try:
        request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{web_port}\r\n\r\n".encode()
        answer = await _exchange(web_port, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
        assert b"Content-Type: text/plain; charset=utf-8" in head
        assert body.decode() == (
            f"This port speaks HTTPS only: open https://127.0.0.1:{web_port}/ "
            "(https://, not http://).\n"
        )
        assert f"Content-Length: {len(body)}".encode() in head
        # A POST (a form sent to http://) is answered the same way.
        answer = await _exchange(web_port, b"POST /login HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
        # Bytes that are neither TLS nor HTTP get no answer at all: only what a browser or
        # curl sends by mistake is answered in the clear.
        assert await _exchange(web_port, b"\x00\x01 not a request\r\n\r\n") == b""
        # None of it disturbed the port: the page is served over HTTPS as before.
        page = await _exchange(
            web_port,
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{web_port}\r\nConnection: close\r\n\r\n".encode(),
            tls=True,
        )
        assert page.startswith(b"HTTP/1.1 200 OK\r\n"), page[:200]
        # The chat port answers a plain request with nothing: it is no web port.
        assert await _exchange(port, request) == b""
    finally:
        await _stop(server)
