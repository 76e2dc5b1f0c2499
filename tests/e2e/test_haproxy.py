"""The real server process behind HAProxy (Debian's package) in TCP mode with ``send-proxy-v2``:
two clients from different source addresses (127.0.0.2 and 127.0.0.3, bound as source) reach
the server through the one balancer, and get separate per-address limits, separate login
throttles, and log lines with their own addresses.

HAProxy must be installed (``.ci/run`` installs it): without it these tests fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from processes import TIMEOUT_SECONDS, Process, environment

from support import insecure_context

CLIENT_A = "127.0.0.2"
CLIENT_B = "127.0.0.3"


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    assert found, "HAProxy is not installed: apt-get install haproxy (.ci/run does)"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Stack:
    def __init__(
        self, server: Process, haproxy: asyncio.subprocess.Process, chat: int, files: int, web: int
    ):
        self.server = server
        self.haproxy = haproxy
        self.chat_port = chat
        self.files_port = files
        self.web_port = web
        self.admin_password = ""


@contextlib.asynccontextmanager
async def behind_haproxy(tmp_path: Path, *settings: str) -> AsyncIterator[Stack]:
    """A server trusting 127.0.0.1 (HAProxy's source address towards it) for PROXY headers,
    and HAProxy relaying a chat, a file and a web port to it.
    """
    server_chat, server_files, server_web = free_port(), free_port(), free_port()
    chat, files, web = free_port(), free_port(), free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        "\n".join(
            [
                f"port = {server_chat}",
                f"files_port = {server_files}",
                f"web_port = {server_web}",
                f'web_public_url = "https://127.0.0.1:{web}"',
                f'data_dir = "{tmp_path / "data"}"',
                'proxy_protocol_from = ["127.0.0.1/32"]',
                *settings,
            ]
        )
        + "\n"
    )
    server = await Process.start(
        "server.py", "--config", str(config), env=environment(tmp_path / "home")
    )
    haproxy: asyncio.subprocess.Process | None = None
    try:
        await server.expect(r"Server is running on")
        password = (await server.expect(r"Created the account 'admin' with password (\S+)")).group(
            1
        )
        haproxy_config = tmp_path / "haproxy.cfg"
        haproxy_config.write_text(
            f"""
global
    maxconn 256

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend chat
    bind 127.0.0.1:{chat}
    default_backend parley_chat

backend parley_chat
    server node1 127.0.0.1:{server_chat} send-proxy-v2 check inter 200ms

frontend files
    bind 127.0.0.1:{files}
    default_backend parley_files

backend parley_files
    server node1 127.0.0.1:{server_files} send-proxy-v2

frontend web
    bind 127.0.0.1:{web}
    default_backend parley_web

backend parley_web
    server node1 127.0.0.1:{server_web} send-proxy-v2
"""
        )
        binary = haproxy_binary()
        check = await asyncio.create_subprocess_exec(
            binary, "-c", "-f", str(haproxy_config), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(check.communicate(), TIMEOUT_SECONDS)
        assert check.returncode == 0, f"haproxy -c: {output.decode()}"
        haproxy = await asyncio.create_subprocess_exec(
            binary, "-db", "-f", str(haproxy_config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await _listening(chat, haproxy)
        await _listening(files, haproxy)
        await _listening(web, haproxy)
        stack = Stack(server, haproxy, chat, files, web)
        stack.admin_password = password
        yield stack
    finally:
        if haproxy is not None and haproxy.returncode is None:
            haproxy.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(haproxy.wait(), TIMEOUT_SECONDS)
            except TimeoutError:
                haproxy.kill()
                await haproxy.wait()
        server.signal(signal.SIGTERM)
        status, _, err = await server.finish()
        assert status == 0, err


async def _listening(port: int, haproxy: asyncio.subprocess.Process) -> None:
    """Wait until HAProxy accepts on ``port`` (a bare TCP connect, closed at once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_SECONDS
    while True:
        assert haproxy.returncode is None, "HAProxy exited while starting"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert loop.time() < deadline, f"HAProxy did not listen on {port}"
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last_id = 0

    @classmethod
    async def open(cls, port: int, source: str) -> Client:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=insecure_context(), local_addr=(source, 0)
            ),
            TIMEOUT_SECONDS,
        )
        return cls(reader, writer)

    async def frame(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), TIMEOUT_SECONDS)
        assert line, "the connection closed"
        frame: dict[str, Any] = json.loads(line)
        return frame

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.last_id += 1
        self.writer.write(json.dumps({"type": kind, "id": self.last_id, **fields}).encode() + b"\n")
        while True:
            frame = await self.frame()
            if frame.get("id") == self.last_id or frame["type"] == "closing":
                return frame

    async def hello(self) -> dict[str, Any]:
        return await self.request("hello", versions=[1])

    def close(self) -> None:
        self.writer.close()


async def test_clients_behind_haproxy_get_limits_of_their_own(tmp_path: Path) -> None:
    async with behind_haproxy(tmp_path, "max_connections_per_address = 2") as stack:
        await asyncio.sleep(0.5)  # a few health checks
        a = [await Client.open(stack.chat_port, CLIENT_A) for _ in range(2)]
        for client in a:
            assert (await client.hello())["type"] == "welcome"
        # A third from A is over A's limit...
        third = await Client.open(stack.chat_port, CLIENT_A)
        refusal = await third.frame()
        assert (refusal["type"], refusal["code"]) == ("closing", "too-many-connections")
        # ...while B, through the same balancer, is not.
        b = await Client.open(stack.chat_port, CLIENT_B)
        assert (await b.hello())["type"] == "welcome"
        for client in [*a, third, b]:
            client.close()
        await stack.server.expect_all(
            rf"^.*Connected with \('{re.escape(CLIENT_A)}', \d+\)",
            rf"^.*Connected with \('{re.escape(CLIENT_B)}', \d+\)",
        )
    # HAProxy's health checks (every 200 ms) come with a header of their own: none is refused.
    assert not any("Refused a connection" in line for line in stack.server.lines)
    assert not any("Connected with ('127.0.0.1'" in line for line in stack.server.lines)


async def test_a_throttled_address_behind_haproxy_does_not_lock_out_another(
    tmp_path: Path,
) -> None:
    async with behind_haproxy(tmp_path) as stack:
        guesser = await Client.open(stack.chat_port, CLIENT_A)
        await guesser.hello()
        replies = []
        for attempt in range(8):
            reply = await guesser.request("nick", nick="admin", password=f"wrong-{attempt}")
            replies.append(reply.get("code"))
        assert "too-many-attempts" in replies, replies
        guesser.close()
        owner = await Client.open(stack.chat_port, CLIENT_B)
        await owner.hello()
        reply = await owner.request("nick", nick="admin", password=stack.admin_password)
        assert reply["type"] == "ok", reply
        owner.close()
        await stack.server.expect(rf"^.*Throttled login for admin from {re.escape(CLIENT_A)}")


async def test_the_file_port_behind_haproxy_sees_the_client(tmp_path: Path) -> None:
    async with behind_haproxy(tmp_path, "max_file_connections_per_address = 1") as stack:
        held = await Client.open(stack.files_port, CLIENT_A)
        # B's start line is read and answered: its own TLS session through the balancer.
        other = await Client.open(stack.files_port, CLIENT_B)
        other.writer.write(b'{"type":"start","token":"nope","offset":0}\n')
        answer = await other.frame()
        assert answer["type"] == "error"
        assert answer["code"] != "too-many-connections"
        # A second connection of A is over A's limit on the file port.
        second = await Client.open(stack.files_port, CLIENT_A)
        refusal = await second.frame()
        assert refusal["code"] == "too-many-connections"
        for client in (held, other, second):
            client.close()


async def test_browsers_behind_haproxy_get_limits_of_their_own(tmp_path: Path) -> None:
    async with behind_haproxy(tmp_path, "max_connections_per_address = 2") as stack:
        origin = f"https://127.0.0.1:{stack.web_port}"
        sessions = {
            source: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
            )
            for source in (CLIENT_A, CLIENT_B)
        }
        try:

            async def websocket(source: str) -> aiohttp.ClientWebSocketResponse:
                return await sessions[source].ws_connect(
                    f"{origin}/ws", ssl=insecure_context(), origin=origin
                )

            a = [await websocket(CLIENT_A) for _ in range(2)]
            for number, socket_a in enumerate(a):
                await socket_a.send_str(json.dumps({"type": "hello", "id": 1, "versions": [1]}))
                await socket_a.send_str(json.dumps({"type": "nick", "id": 2, "nick": f"A{number}"}))
            await stack.server.expect_all(
                rf"^.*\('{re.escape(CLIENT_A)}', \d+\) is A0",
                rf"^.*\('{re.escape(CLIENT_A)}', \d+\) is A1",
            )
            # A third socket from A is over A's limit on the web port...
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await websocket(CLIENT_A)
            assert refused.value.status == 503
            # ...while B, through the same balancer, is not.
            b = await websocket(CLIENT_B)
            await b.send_str(json.dumps({"type": "hello", "id": 1, "versions": [1]}))
            await b.send_str(json.dumps({"type": "nick", "id": 2, "nick": "B"}))
            await stack.server.expect(rf"^.*\('{re.escape(CLIENT_B)}', \d+\) is B")
            for each in [*a, b]:
                await each.close()
        finally:
            for session in sessions.values():
                await session.close()
    assert not any("('127.0.0.1'" in line for line in stack.server.lines)


async def test_a_client_going_around_the_balancer_is_itself(tmp_path: Path) -> None:
    # Straight to the server (not from 127.0.0.1): no header expected, none honoured.
    async with behind_haproxy(tmp_path) as stack:
        port_line = next(line for line in stack.server.lines if "Server is running on" in line)
        port = int(port_line.rsplit(":", 1)[1].removesuffix("..."))
        direct = await Client.open(port, CLIENT_A)
        assert (await direct.hello())["type"] == "welcome"
        direct.close()
        await stack.server.expect(rf"^.*Connected with \('{re.escape(CLIENT_A)}', \d+\)")
