"""Files over HTTPS on the web port (/files/<token>): the tokens of ``share`` and ``get``, the
file port's rules and limits, resuming by offset, ranges, and what is served back unable to run
in the page. A real server, real TLS clients and aiohttp's HTTP client on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from parley.server.web_files import content_disposition, parse_range
from support import TIMEOUT_SECONDS, RawClient, insecure_context, raw_user

SANDBOX = "default-src 'none'; sandbox"


@pytest.fixture
def web_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, web_port=0)


@pytest.fixture
async def server(web_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    async with ParleyServer(web_config) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=insecure_context(), force_close=True)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session


def _url(server: ParleyServer, token: str) -> str:
    return f"https://127.0.0.1:{server.web_port}/files/{token}"


async def _share(client: RawClient, data: bytes, name: str = "notes.bin") -> dict[str, Any]:
    reply = await client.request(
        "share", to="#general", name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    assert reply["type"] == "upload", reply
    return reply


async def _get(client: RawClient, file_id: str) -> dict[str, Any]:
    reply = await client.request("get", file_id=file_id)
    assert reply["type"] == "download", reply
    return reply


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(await response.text())
    return result


def _origin(server: ParleyServer) -> dict[str, str]:
    return {"Origin": server.web_origin or ""}


async def test_an_upload_over_https_reaches_a_tls_user_who_downloads_it_over_https(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    data = os.urandom(700_000)
    slot = await _share(alice, data)
    async with http.put(_url(server, slot["token"]), data=data, headers=_origin(server)) as put:
        assert put.status == 200, await put.text()
        assert await _json(put) == {
            "type": "done",
            "file_id": slot["file_id"],
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        assert put.headers["Content-Security-Policy"] == SANDBOX
    notice = await bob.event("message", sender="Alice")
    assert notice["text"].startswith("/file ")
    assert json.loads(notice["text"][6:])["id"] == slot["file_id"]
    ticket = await _get(bob, slot["file_id"])
    async with http.get(_url(server, ticket["token"])) as got:
        assert got.status == 200
        assert await got.read() == data
        assert got.headers["Content-Disposition"] == content_disposition("notes.bin")
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.headers["Content-Security-Policy"] == SANDBOX
    # One token, one transfer.
    async with http.get(_url(server, ticket["token"])) as again:
        assert again.status == 404
        assert (await _json(again))["code"] == "no-such-file"
    await alice.close()
    await bob.close()


async def _cut_upload(
    server: ParleyServer, token: str, file_id: str, total: int, part: bytes
) -> None:
    """A PUT that promises ``total`` bytes, sends ``part`` and, once the server has written
    them, is cut: a dropped connection.
    """
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.web_port, ssl=insecure_context()
    )
    head = (
        f"PUT /files/{token} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {total}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    writer.write(head.encode() + part)
    await writer.drain()
    partial = server.config.data_dir / "files" / "partial" / file_id
    for _ in range(200):
        if partial.exists() and partial.stat().st_size == len(part):
            break
        await asyncio.sleep(0.05)
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


async def test_an_interrupted_upload_resumes_from_the_bytes_that_arrived(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    alice = await raw_user(server.port, "Alice")
    data = os.urandom(600_000)
    slot = await _share(alice, data)
    await _cut_upload(server, slot["token"], slot["file_id"], len(data), data[:250_000])
    # Sharing the same file again gives the same upload back, at the offset the server holds.
    again = await _share(alice, data)
    assert (again["file_id"], again["offset"]) == (slot["file_id"], 250_000)
    token = again["token"]
    async with http.head(_url(server, token)) as head:
        assert head.status == 204
        assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (
            "250000",
            "600000",
        )
    # From the start, when the server holds more: told where to go on; the token stays good.
    async with http.put(_url(server, token), data=data, headers=_origin(server)) as wrong:
        assert wrong.status == 409
        body = await _json(wrong)
        assert (body["code"], body["offset"]) == ("invalid-file", 250_000)
        assert wrong.headers["Upload-Offset"] == "250000"
    rest = {**_origin(server), "Content-Range": f"bytes 250000-599999/{len(data)}"}
    for _ in range(200):
        async with http.put(_url(server, token), data=data[250_000:], headers=rest) as put:
            if put.status == 200:
                break
            # The cut request's end not seen yet: its upload still holds the file.
            assert (await _json(put))["code"] == "too-many-uploads"
        await asyncio.sleep(0.05)
        token = (await _share(alice, data))["token"]
    assert put.status == 200
    ticket = await _get(alice, slot["file_id"])
    async with http.get(_url(server, ticket["token"])) as got:
        assert await got.read() == data
    await alice.close()


async def test_ranges_are_served_and_abusive_ones_refused_without_using_the_token(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    alice = await raw_user(server.port, "Alice")
    data = os.urandom(100_000)
    slot = await _share(alice, data)
    async with http.put(_url(server, slot["token"]), data=data) as put:
        assert put.status == 200
    token = (await _get(alice, slot["file_id"]))["token"]
    for bad in (
        "bytes=100000-",  # starts past the end
        "bytes=-0",
        "bytes=5-1",
        "bytes=0-1,3-4",  # several ranges: one response per range could be asked many times
        "bytes=0-0," * 200,
        "items=0-10",
        "bytes=abc",
        "bytes=-",
        "bytes=" + "9" * 40 + "-",
    ):
        async with http.get(_url(server, token), headers={"Range": bad}) as refused:
            assert refused.status == 416, bad
            assert refused.headers["Content-Range"] == "bytes */100000"
            assert (await _json(refused))["type"] == "error"
            assert refused.headers["Content-Security-Policy"] == SANDBOX
    async with http.get(_url(server, token), headers={"Range": "bytes=1000-1999"}) as part:
        assert part.status == 206
        assert part.headers["Content-Range"] == "bytes 1000-1999/100000"
        assert await part.read() == data[1000:2000]
    for header, expected in (
        ("bytes=99000-", data[99_000:]),
        ("bytes=-500", data[-500:]),
        ("bytes=99990-200000", data[99_990:]),
    ):
        fresh = (await _get(alice, slot["file_id"]))["token"]
        async with http.get(_url(server, fresh), headers={"Range": header}) as part:
            assert part.status == 206
            assert await part.read() == expected
    await alice.close()


async def test_oversize_and_overflowing_uploads_are_refused(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    alice = await raw_user(server.port, "Alice")
    data = os.urandom(50_000)
    slot = await _share(alice, data)
    url = _url(server, slot["token"])
    # A declared body longer than the file: refused before a byte is read; the token is kept.
    async with http.put(url, data=data + b"x") as big:
        assert big.status == 413
        assert (await _json(big))["code"] == "file-too-large"
    for header in ("bytes 0-49999/50001", "bytes 10-20/50000", "bytes junk", "x" * 200):
        async with http.put(url, data=data, headers={"Content-Range": header}) as bad:
            assert bad.status == 400, header
            assert (await _json(bad))["code"] == "invalid-message"

    async def chunks() -> AsyncIterator[bytes]:
        yield data
        yield b"one byte too many"

    # A body with no length that runs past the size: the upload is deleted, as on the file port.
    async with http.put(url, data=chunks()) as overflow:
        assert overflow.status == 400
        assert "More bytes than the declared size" in (await _json(overflow))["message"]
    partial = server.config.data_dir / "files" / "partial"
    assert list(partial.iterdir()) == []
    assert (await alice.request("files"))["files"] == []
    # A body whose SHA-256 is not the one declared: deleted too.
    slot = await _share(alice, data)
    async with http.put(_url(server, slot["token"]), data=bytes(len(data))) as forged:
        assert forged.status == 400
        assert "SHA-256" in (await _json(forged))["message"]
    assert list(partial.iterdir()) == []
    # Above max_file_bytes, the share itself is refused: no token to upload with.
    too_big = await alice.request(
        "share", to="#general", name="big", size=server.config.max_file_bytes + 1, sha256="0" * 64
    )
    assert too_big["code"] == "file-too-large"
    await alice.close()


async def test_no_transfer_without_a_valid_token_or_from_another_site(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    alice = await raw_user(server.port, "Alice")
    data = b"private words"
    slot = await _share(alice, data)
    for token in ("x", "A" * 32, "a.b", "%00"):
        for method in ("PUT", "POST", "GET", "HEAD"):
            async with http.request(method, _url(server, token), data=b"1") as unknown:
                assert unknown.status == 404, (method, token)
                if method != "HEAD":
                    assert (await _json(unknown))["code"] == "no-such-file"
    # Another site's page cannot upload with a token it somehow holds.
    evil = {"Origin": "https://evil.example"}
    async with http.post(_url(server, slot["token"]), data=data, headers=evil) as cross:
        assert cross.status == 403
        assert (await _json(cross))["code"] == "not-permitted"
    # An upload token does not download, nor a download token upload.
    async with http.get(_url(server, slot["token"])) as wrong_way:
        assert wrong_way.status == 404
    async with http.post(_url(server, slot["token"]), data=data, headers=_origin(server)) as ok:
        assert ok.status == 200  # POST does what PUT does; the refusals left the token good
    ticket = await _get(alice, slot["file_id"])
    async with http.put(_url(server, ticket["token"]), data=data) as wrong_way:
        assert wrong_way.status == 404
    await alice.close()


async def test_https_transfers_count_against_the_file_port_limits(
    server_config: ServerConfig,
) -> None:
    config = dataclasses.replace(server_config, web_port=0, max_file_connections_per_address=1)
    async with ParleyServer(config) as server:
        alice = await raw_user(server.port, "Alice")
        data = os.urandom(10_000)
        slot = await _share(alice, data)
        # One file connection open (its start line not sent): the address's one.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", slot["port"], ssl=insecure_context()
        )
        connector = aiohttp.TCPConnector(ssl=insecure_context(), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.put(_url(server, slot["token"]), data=data) as refused:
                assert refused.status == 429
                assert (await _json(refused))["code"] == "too-many-connections"
            writer.close()
            for _ in range(200):  # until the file port has seen it close
                async with http.put(_url(server, slot["token"]), data=data) as put:
                    if put.status == 200:
                        break
                    assert put.status == 429
                await asyncio.sleep(0.05)
            assert put.status == 200
        del reader
        await alice.close()


def test_file_names_are_attachments_whatever_they_hold() -> None:
    assert content_disposition("report.pdf") == (
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )
    hostile = 'a"; filename=evil.html\r\n<img src=x onerror=alert(1)>\u202egnp.exe'
    header = content_disposition(hostile)
    assert header.isascii()
    assert "\r" not in header and "\n" not in header
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback == "a_; filename=evil.html__<img src=x onerror=alert(1)>_gnp.exe"
    assert header.endswith("%E2%80%AEgnp.exe")
    assert "%22%3B%20filename%3Devil.html%0D%0A%3Cimg" in header
    assert content_disposition("日本語.txt").startswith('attachment; filename="___.txt"')


def test_ranges_parse_to_first_and_end() -> None:
    assert parse_range("bytes=0-0", 10) == (0, 1)
    assert parse_range("bytes=3-", 10) == (3, 10)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-30", 10) == (0, 10)
    assert parse_range("bytes=8-30", 10) == (8, 10)


async def test_a_stalled_upload_is_answered_and_its_bytes_kept(server_config: ServerConfig) -> None:
    config = dataclasses.replace(server_config, web_port=0, upload_stall_seconds=0.5)
    async with ParleyServer(config) as server:
        alice = await raw_user(server.port, "Alice")
        data = os.urandom(40_000)
        slot = await _share(alice, data)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.web_port, ssl=insecure_context()
        )
        head = (
            f"PUT /files/{slot['token']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data[:10_000])  # then nothing more
        status = await asyncio.wait_for(reader.readline(), TIMEOUT_SECONDS)
        assert status.startswith(b"HTTP/1.1 408"), status
        answer = await asyncio.wait_for(reader.readuntil(b"}"), TIMEOUT_SECONDS)
        assert b"upload_stall_seconds" in answer
        writer.close()
        again = await _share(alice, data)
        assert (again["file_id"], again["offset"]) == (slot["file_id"], 10_000)
        await alice.close()
