"""The web listener (web_port): the WebSocket at /ws speaks the chat protocol through the same
connection code as the TLS port (limits, flood control, the hub), refuses other sites' pages,
and every response carries the security headers. Real HTTPS and WebSockets on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from parley.config import ConfigError, ServerConfig, public_origin
from parley.server.app import ParleyServer
from parley.server.web import HSTS, SECURITY_HEADERS
from parley.tls import ensure_certificate, file_fingerprint, fingerprint
from support import TIMEOUT_SECONDS, RawClient, insecure_context, raw_user


@pytest.fixture
def web_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, web_port=0)


@pytest.fixture
async def server(web_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    async with ParleyServer(web_config) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=insecure_context())
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session


class WebClient:
    """One browser-like WebSocket: frames as dicts, one per text message."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.last_id = 0

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def frame(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=TIMEOUT_SECONDS)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        assert "\n" not in message.data
        result: dict[str, Any] = json.loads(message.data)
        return result

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.last_id += 1
        await self.ws.send_str(json.dumps({"type": kind, "id": self.last_id, **fields}))
        while True:
            frame = await self.frame()
            if frame.get("id") == self.last_id and frame["type"] != "message":
                return frame

    async def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        while True:
            frame = await self.frame()
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    async def login(self, nick: str) -> dict[str, Any]:
        assert (await self.request("hello", versions=[1]))["type"] == "welcome"
        reply = await self.request("nick", nick=nick)
        assert reply["type"] == "ok", reply
        return reply

    async def ended(self) -> bool:
        """True once the server closes the WebSocket (frames before that are dropped)."""
        while True:
            message = await self.ws.receive(timeout=TIMEOUT_SECONDS)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return True


def _url(server: ParleyServer, path: str) -> str:
    return f"https://127.0.0.1:{server.web_port}{path}"


async def _open(
    http: aiohttp.ClientSession, server: ParleyServer, origin: str | None = None
) -> WebClient:
    origin = server.web_origin if origin is None else origin
    ws = await http.ws_connect(_url(server, "/ws"), headers={"Origin": origin or ""})
    return WebClient(ws)


async def test_a_browser_and_a_tls_client_chat_through_the_same_hub(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    assert server.web_origin == f"https://127.0.0.1:{server.web_port}"
    tls = await raw_user(server.port, "Terminal")
    web = await _open(http, server)
    try:
        ok = await web.login("Browser")
        assert ok["rooms"] == ["#general"]
        await tls.event("joined", room="#general", nick="Browser")
        sent = await web.request("send", to="#general", text="from the web", msg_id="w1")
        assert sent["type"] == "sent"
        got = await tls.event("message", sender="Browser")
        assert got["text"] == "from the web"
        tls.send(type="send", id=7, to="Browser", text="private, from TLS", msg_id="t1")
        private = await web.event("message", sender="Terminal")
        assert (private["to"], private["text"]) == ("Browser", "private, from TLS")
        # A nick taken on one transport is taken on the other: one hub.
        other = await _open(http, server)
        assert (await other.request("hello", versions=[1]))["type"] == "welcome"
        taken = await other.request("nick", nick="terminal")
        assert taken["code"] == "nick-taken"
        await other.ws.close()
    finally:
        await web.ws.close()
        await tls.close()


async def test_one_frame_per_message_whatever_its_whitespace(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    web = await _open(http, server)
    try:
        await web.send_text('{"type":"hello",\n"id":1,"versions":[1]}')
        assert (await web.frame())["type"] == "welcome"
        assert (await web.request("nick", nick="Alice"))["type"] == "ok"
        # A raw newline inside a string is not JSON: the message is one bad frame, as the
        # same bytes on one line of the TLS port are, not two.
        await web.send_text('{"type":"ping","id":3,"x":"a\nb"}')
        frames = []
        while (frame := await web.frame())["type"] != "closing":
            frames.append(frame)
        assert frame["code"] == "bad-frame"
        assert [f["type"] for f in frames] == ["joined"]  # Alice's own arrival: nothing else
        assert await web.ended()
    finally:
        await web.ws.close()


async def test_a_websocket_from_another_site_is_refused(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    for origin in (
        "https://evil.example",
        "http://127.0.0.1",
        f"https://127.0.0.1:{server.port}",
        "",
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await _open(http, server, origin=origin)
        assert refused.value.status == 403, origin
    assert server.tracker.total == 0  # nothing was counted or logged in


async def test_every_response_has_the_security_headers(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(_url(server, "/")) as page:
        assert page.status == 200
        html = await page.text()
        assert page.headers["Content-Type"].startswith("text/html")
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value
    script = html.split('src="', 1)[1].split('"', 1)[0]
    for path, status in ((script, 200), ("/nothing-here", 404), ("/assets/../../config.py", 404)):
        async with http.get(_url(server, path)) as response:
            assert response.status == status, path
            for name, value in SECURITY_HEADERS.items():
                assert response.headers[name] == value, path
    async with http.get(_url(server, "/ws"), headers={"Origin": "https://evil.example"}) as bad:
        assert bad.status == 403
        assert bad.headers["X-Content-Type-Options"] == "nosniff"


async def test_hsts_only_with_a_certificate_the_operator_gave(
    server: ParleyServer, web_config: ServerConfig, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with http.get(_url(server, "/")) as page:
        assert "Strict-Transport-Security" not in page.headers  # the server's self-signed one
    cert, key = ensure_certificate(tmp_path / "given", ["127.0.0.1"])
    given = dataclasses.replace(
        web_config, data_dir=tmp_path / "other-data", cert_file=cert, key_file=key
    )
    async with ParleyServer(given) as served:
        for path in ("/", "/nothing-here"):
            async with http.get(_url(served, path)) as response:
                assert response.headers["Strict-Transport-Security"] == HSTS, path


async def _burst(send: Any, read: Any, count: int) -> list[str]:
    """Send ``count`` pings at once; the outcome of each, in order, until the connection ends."""
    for number in range(count):
        send(number)
    outcomes: list[str] = []
    while True:
        frame = await read()
        if frame is None:
            return outcomes
        if "id" not in frame and frame["type"] != "closing":
            continue  # events (others joining) are no outcome
        outcomes.append(frame["type"] if frame["type"] != "error" else frame["code"])
        if frame["type"] == "closing":
            outcomes[-1] = f"closing:{frame['code']}"
            return outcomes


async def test_a_burst_meets_the_same_flood_control_as_on_the_tls_port(
    server_config: ServerConfig, http: aiohttp.ClientSession
) -> None:
    config = dataclasses.replace(
        server_config,
        web_port=0,
        flood_burst_requests=5,
        flood_rate_per_second=0.001,
        flood_debt_requests=3,
        flood_penalty_seconds=0,
    )
    async with ParleyServer(config) as server:
        tls = await raw_user(server.port, "Tls")
        web = await _open(http, server)
        await web.login("Web")

        async def tls_read() -> dict[str, Any] | None:
            return await tls.frame()

        async def web_read() -> dict[str, Any] | None:
            message = await web.ws.receive(timeout=TIMEOUT_SECONDS)
            return json.loads(message.data) if message.type is aiohttp.WSMsgType.TEXT else None

        def tls_send(number: int) -> None:
            tls.send(type="ping", id=1000 + number)

        def web_send(number: int) -> None:
            asyncio.get_running_loop().create_task(
                web.ws.send_str(json.dumps({"type": "ping", "id": 1000 + number}))
            )

        # The logins took two requests of the burst on each.
        over_tls = await _burst(tls_send, tls_read, 10)
        over_web = await _burst(web_send, web_read, 10)
        assert over_tls == ["pong"] * 3 + ["rate-limited"] * 3 + ["closing:flooding"]
        assert over_web == over_tls
        assert await web.ended()
        await tls.close()


async def test_the_connection_limits_count_websockets_and_tls_together(
    server_config: ServerConfig, http: aiohttp.ClientSession
) -> None:
    config = dataclasses.replace(server_config, web_port=0, max_connections_per_address=2)
    async with ParleyServer(config) as server:
        tls = await RawClient.open(server.port)
        web = await _open(http, server)
        await web.login("First")
        third = await _open(http, server)
        refusal = await third.frame()
        assert (refusal["type"], refusal["code"]) == ("closing", "too-many-connections")
        assert await third.ended()
        await web.ws.close()
        # Closing one frees its place.
        for _ in range(100):
            if server.tracker.total < 2:
                break
            await asyncio.sleep(0.02)
        fourth = await _open(http, server)
        await fourth.login("Fourth")
        await fourth.ws.close()
        await tls.close()


async def test_shutdown_tells_browsers_and_closes_their_websockets(
    web_config: ServerConfig, http: aiohttp.ClientSession
) -> None:
    server = ParleyServer(web_config)
    await server.start()
    web = await _open(http, server)
    await web.login("Leaving")
    stopping = asyncio.create_task(server.stop())
    # As soon as stopping begins, new WebSockets are refused while the open ones are still
    # being told: an upgrade in that window gets 503; once the port is closed (a loaded
    # machine can get there before the next try), the connection itself is refused.
    for _ in range(500):
        try:
            early = await _open(http, server)
        except aiohttp.WSServerHandshakeError as refused:
            status = refused.status
            break
        except aiohttp.ClientConnectorError:
            status = 503  # the port is already closed: refused all the same
            break
        await early.ws.close()  # in before stopping began
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("new WebSockets were never refused")
    assert status == 503
    closing = await web.event("closing")
    assert closing["code"] == "server-shutdown"
    assert await web.ended()
    await asyncio.wait_for(stopping, TIMEOUT_SECONDS)


async def test_a_reloaded_certificate_is_used_for_new_web_connections(
    server: ParleyServer, tmp_path: Path
) -> None:
    assert server.web_port is not None

    async def served_fingerprint() -> str:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", server.web_port, ssl=insecure_context()
        )
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return fingerprint(der)

    assert await served_fingerprint() == server.fingerprint
    cert_file, key_file = ensure_certificate(tmp_path / "new-pair")
    server.reload_certificate(cert_file, key_file)
    assert server.fingerprint == file_fingerprint(cert_file)
    assert await served_fingerprint() == server.fingerprint


async def test_the_web_port_is_off_unless_asked_for(server_config: ServerConfig) -> None:
    assert ServerConfig().web_port is None
    async with ParleyServer(server_config) as server:
        assert server.web_port is None and server.web_origin is None


async def test_the_public_url_sets_the_only_origin_accepted(
    server_config: ServerConfig, http: aiohttp.ClientSession
) -> None:
    config = dataclasses.replace(
        server_config, web_port=0, web_public_url="https://Chat.Example.org:443/"
    )
    async with ParleyServer(config) as server:
        assert server.web_origin == "https://chat.example.org"
        web = await _open(http, server, origin="https://chat.example.org")
        await web.login("Public")
        await web.ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await _open(http, server, origin=f"https://127.0.0.1:{server.web_port}")


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://chat.example.org", "https://chat.example.org"),
        ("https://chat.example.org:8443/", "https://chat.example.org:8443"),
        ("https://[::1]:7443", "https://[::1]:7443"),
    ],
)
def test_public_origin(value: str, origin: str) -> None:
    assert public_origin(value) == origin
    assert ServerConfig.from_mapping({"web_public_url": value}).web_public_url == value


@pytest.mark.parametrize(
    "value",
    [
        "http://chat.example.org",
        "chat.example.org",
        "https://",
        "https://chat.example.org/chat",
        "https://user@chat.example.org",
        "https://chat.example.org:99999",
    ],
)
def test_a_bad_public_url_names_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="web_public_url"):
        ServerConfig.from_mapping({"web_public_url": value})


def test_web_port_has_bounds() -> None:
    with pytest.raises(ConfigError, match="web_port"):
        ServerConfig.from_mapping({"web_port": 70000})
    assert ServerConfig.from_mapping({"web_port": 7443}).web_port == 7443
