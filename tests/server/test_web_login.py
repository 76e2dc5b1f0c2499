"""The web port's login: a session cookie the page's script cannot read, accepted by the
WebSocket, cleared by logout; throttled with the TLS port's logins; refused to other sites.
Real HTTPS, WebSockets and TLS on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from parley.server.web_login import SESSION_COOKIE
from support import TIMEOUT_SECONDS, RawClient, insecure_context, raw_user

PASSWORD = "correct horse battery"
FREE_ATTEMPTS = 5  # docs/protocol.md: 5 attempts free, then waits


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    async with ParleyServer(dataclasses.replace(server_config, web_port=0)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No cookie jar: each test sends the cookie it means to, as a browser would.
    connector = aiohttp.TCPConnector(ssl=insecure_context(), force_close=True)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


def _url(server: ParleyServer, path: str) -> str:
    return f"https://127.0.0.1:{server.web_port}{path}"


async def _post(
    http: aiohttp.ClientSession,
    server: ParleyServer,
    path: str,
    body: Any,
    origin: str | None = None,
    cookie: str = "",
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    headers = {"Origin": server.web_origin if origin is None else origin}
    if cookie:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(_url(server, path), data=data, headers=headers) as response:
        text = await response.text()
        return response.status, json.loads(text), response


def _session_cookie(response: aiohttp.ClientResponse) -> tuple[str, str]:
    """The session cookie's value and the whole Set-Cookie line."""
    (line,) = response.headers.getall("Set-Cookie")
    cookie = SimpleCookie()
    cookie.load(line)
    return cookie[SESSION_COOKIE].value, line


async def _chat(
    http: aiohttp.ClientSession, server: ParleyServer, nick: str, cookie: str = ""
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    headers = {"Origin": server.web_origin or ""}
    if cookie:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    ws = await http.ws_connect(_url(server, "/ws"), headers=headers)
    await ws.send_str(json.dumps({"type": "hello", "id": 1, "versions": [1]}))
    await ws.send_str(json.dumps({"type": "nick", "id": 2, "nick": nick}))
    while True:
        frame = json.loads((await ws.receive(timeout=TIMEOUT_SECONDS)).data)
        if frame.get("id") == 2:
            return ws, frame


async def test_a_login_sets_a_cookie_script_cannot_read_that_the_websocket_accepts(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    status, body, response = await _post(
        http, server, "/register", {"nick": "Alice", "password": PASSWORD}
    )
    assert (status, body) == (200, {"nick": "Alice", "role": "user"})
    token, line = _session_cookie(response)
    attributes = {part.strip().lower() for part in line.split(";")}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    assert not any(part.startswith("domain") for part in attributes)
    status, body, response = await _post(
        http, server, "/login", {"nick": "alice", "password": PASSWORD}
    )
    assert (status, body["nick"]) == (200, "Alice")
    second, _ = _session_cookie(response)
    assert second != token
    async with http.get(
        _url(server, "/session"), headers={"Cookie": f"{SESSION_COOKIE}={second}"}
    ) as session:
        assert (session.status, await session.json()) == (200, {"nick": "Alice"})
    # The nick alone, with the cookie: logged in as the account, and no token in the reply.
    ws, ok = await _chat(http, server, "Alice", cookie=second)
    assert ok["type"] == "ok" and ok["role"] == "user"
    assert "token" not in ok
    await ws.close()
    # Without the cookie the account's name needs its password.
    ws, refused = await _chat(http, server, "Alice")
    assert refused["code"] == "password-required"
    await ws.close()


async def test_a_guest_registering_in_the_browser_is_sent_no_token(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    ws, ok = await _chat(http, server, "Guest")
    assert ok["type"] == "ok"
    await ws.send_str(json.dumps({"type": "register", "id": 3, "password": PASSWORD}))
    while (frame := json.loads((await ws.receive(timeout=TIMEOUT_SECONDS)).data)).get("id") != 3:
        pass
    assert frame["type"] == "ok" and "token" not in frame
    await ws.close()
    # The TLS port still gives its clients the token, as before.
    tls = await raw_user(server.port, "Terminal")
    assert "token" in await tls.request("register", password=PASSWORD)
    await tls.close()


async def test_logout_ends_the_session_and_clears_the_cookie(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    _, _, response = await _post(http, server, "/register", {"nick": "Alice", "password": PASSWORD})
    token, _ = _session_cookie(response)
    status, _, response = await _post(http, server, "/logout", b"", cookie=token)
    assert status == 200
    _, line = _session_cookie(response)
    assert "max-age=0" in line.lower()
    ws, refused = await _chat(http, server, "Alice", cookie=token)
    assert refused["code"] == "password-required"
    await ws.close()
    async with http.get(
        _url(server, "/session"), headers={"Cookie": f"{SESSION_COOKIE}={token}"}
    ) as session:
        assert session.status == 401
        assert (await session.json())["code"] == "session-expired"


async def test_bad_requests_get_clear_json_errors(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    await _post(http, server, "/register", {"nick": "Alice", "password": PASSWORD})
    cases: list[tuple[str, Any, str | None, int, str]] = [
        ("/login", {"nick": "Alice", "password": "wrong"}, None, 401, "auth-failed"),
        ("/login", {"nick": "Nobody", "password": "wrong"}, None, 401, "auth-failed"),
        ("/login", {"nick": "Alice", "password": PASSWORD}, "https://evil.example", 403, ""),
        ("/login", {"nick": "Alice", "password": PASSWORD}, "", 403, "not-permitted"),
        ("/register", {"nick": "Bob", "password": PASSWORD}, "null", 403, "not-permitted"),
        ("/logout", b"", "https://evil.example", 403, "not-permitted"),
        ("/login", b"not json", None, 400, "invalid-message"),
        ("/login", {"nick": "Alice"}, None, 400, "invalid-message"),
        ("/login", {"nick": "Alice", "password": PASSWORD, "x": 1}, None, 400, ""),
        ("/login", b"{" + b" " * 5000 + b"}", None, 413, "invalid-message"),
        ("/register", {"nick": "alice", "password": PASSWORD}, None, 409, "already-registered"),
        ("/register", {"nick": "Bob", "password": "short"}, None, 400, "invalid-password"),
        ("/register", {"nick": "no spaces", "password": PASSWORD}, None, 400, "invalid-nick"),
    ]
    for path, body, origin, status, code in cases:
        got, reply, response = await _post(http, server, path, body, origin=origin)
        assert got == status, (path, body, origin, reply)
        assert reply["type"] == "error" and reply["message"], reply
        if code:
            assert reply["code"] == code, reply
        assert "Set-Cookie" not in response.headers
    # A name someone online holds cannot be registered from the login page.
    guest = await raw_user(server.port, "Carol")
    status, reply, _ = await _post(
        http, server, "/register", {"nick": "Carol", "password": PASSWORD}
    )
    assert (status, reply["code"]) == (409, "nick-taken")
    await guest.close()


async def _guess_tls(port: int, password: str) -> str:
    client = await RawClient.open(port)
    try:
        reply = await client.try_login("Alice", password=password)
        return str(reply.get("code") or reply["type"])
    finally:
        await client.close()


async def _guess_https(http: aiohttp.ClientSession, server: ParleyServer, password: str) -> str:
    status, reply, _ = await _post(http, server, "/login", {"nick": "Alice", "password": password})
    return "ok" if status == 200 else str(reply["code"])


async def test_password_guesses_are_throttled_across_the_tls_port_and_the_web_login(
    server: ParleyServer, http: aiohttp.ClientSession
) -> None:
    tls = await raw_user(server.port, "Alice")
    assert (await tls.request("register", password=PASSWORD))["type"] == "ok"
    await tls.close()
    guesses = 40
    outcomes = Counter(
        await asyncio.gather(
            *(
                _guess_tls(server.port, f"guess {n}")
                if n % 2
                else _guess_https(http, server, f"guess {n}")
                for n in range(guesses)
            )
        )
    )
    # However they were split between the two ports, at most the free attempts were
    # checked at all; the rest were refused without a check.
    assert outcomes["auth-failed"] <= FREE_ATTEMPTS, outcomes
    assert outcomes["auth-failed"] + outcomes["too-many-attempts"] == guesses, outcomes
    # The right password is now refused on both, until the wait is over.
    assert await _guess_https(http, server, PASSWORD) == "too-many-attempts"
    assert await _guess_tls(server.port, PASSWORD) == "too-many-attempts"
