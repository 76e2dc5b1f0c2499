"""The PROXY protocol on the chat and file ports, over real TLS on loopback: a trusted balancer's
header names the client the limits and the log see; a trusted address without a valid header
is refused with a log line naming the setting; an untrusted address's header is not honoured.

Linux routes all of 127.0.0.0/8 to the loopback interface: 127.0.0.1 plays the balancer and
127.0.0.2 a client reaching the server directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import socket
import struct
from typing import Any

import pytest

from parley.config import ConfigError, ServerConfig
from parley.protocol.proxy_header import V2_SIGNATURE
from parley.server.app import ParleyServer
from support import TIMEOUT_SECONDS, insecure_context

BALANCER = "127.0.0.1"
DIRECT = "127.0.0.2"


def v2_header(host: str, port: int = 40000) -> bytes:
    address = ipaddress.ip_address(host)
    if address.version == 4:
        family, body = 0x11, address.packed + bytes([127, 0, 0, 1]) + struct.pack("!HH", port, 1)
    else:
        family = 0x21
        body = address.packed + ipaddress.IPv6Address("::1").packed + struct.pack("!HH", port, 1)
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


async def tcp(port: int, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def first_frame(
    port: int, source: str, *header_parts: bytes, pause: float = 0.0
) -> dict[str, Any]:
    """Connect from ``source``, send ``header_parts`` (``pause`` seconds apart), then TLS; the
    first frame the server sends.
    """
    sock = await tcp(port, source)
    loop = asyncio.get_running_loop()
    for part in header_parts:
        await loop.sock_sendall(sock, part)
        await asyncio.sleep(pause)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(sock=sock, ssl=insecure_context(), server_hostname="localhost"),
        TIMEOUT_SECONDS,
    )
    try:
        writer.write(b'{"type":"hello","id":1,"versions":[1]}\n')
        line = await asyncio.wait_for(reader.readline(), TIMEOUT_SECONDS)
        assert line, "closed before the first frame"
        frame: dict[str, Any] = json.loads(line)
        return frame
    finally:
        writer.close()


async def refused(port: int, source: str, data: bytes) -> bool:
    """Send ``data`` (and nothing more) from ``source``; True once the server closes."""
    sock = await tcp(port, source)
    loop = asyncio.get_running_loop()
    try:
        if data:
            await loop.sock_sendall(sock, data)
        while True:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT_SECONDS)
            except ConnectionResetError:
                return True
            if not chunk:
                return True
    finally:
        sock.close()


@pytest.fixture
def proxied_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, proxy_protocol_from=(f"{BALANCER}/32",))


def connected_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Connected with")]


async def test_the_header_names_the_client_the_log_sees(
    proxied_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "parley")
    async with ParleyServer(proxied_config) as server:
        welcome = await first_frame(server.port, BALANCER, v2_header("192.0.2.7", 51234))
        assert welcome["type"] == "welcome"
        v6 = await first_frame(server.port, BALANCER, v2_header("2001:db8::7"))
        assert v6["type"] == "welcome"
    assert connected_lines(caplog)[:2] == [
        "Connected with ('192.0.2.7', 51234)",
        "Connected with ('2001:db8::7', 40000)",
    ]


async def test_version_1_and_a_header_split_across_reads(
    proxied_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "parley")
    async with ParleyServer(proxied_config) as server:
        header = v2_header("192.0.2.8", 1000)
        split = await first_frame(
            server.port, BALANCER, header[:5], header[5:20], header[20:], pause=0.05
        )
        assert split["type"] == "welcome"
        line = b"PROXY TCP4 192.0.2.9 127.0.0.1 2000 7976\r\n"
        v1 = await first_frame(server.port, BALANCER, line[:10], line[10:], pause=0.05)
        assert v1["type"] == "welcome"
    assert connected_lines(caplog)[:2] == [
        "Connected with ('192.0.2.8', 1000)",
        "Connected with ('192.0.2.9', 2000)",
    ]


async def test_per_address_limits_count_the_named_clients_not_the_balancer(
    proxied_config: ServerConfig,
) -> None:
    config = dataclasses.replace(proxied_config, max_connections_per_address=1)
    async with ParleyServer(config) as server:
        held = await tcp(server.port, BALANCER)
        try:
            # Held open mid-handshake by 192.0.2.10: its one connection.
            await asyncio.get_running_loop().sock_sendall(held, v2_header("192.0.2.10"))
            await asyncio.sleep(0.2)
            other = await first_frame(server.port, BALANCER, v2_header("192.0.2.11"))
            assert other["type"] == "welcome"
            same = await first_frame(server.port, BALANCER, v2_header("192.0.2.10"))
            assert same["type"] == "closing"
            assert same["code"] == "too-many-connections"
        finally:
            held.close()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "did not arrive within tls_handshake_timeout_seconds"),
        (b"\x16\x03\x01\x00\x05hello", "no valid PROXY header (no PROXY protocol signature"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "no valid PROXY header (a header of 65551 bytes"),
        (v2_header("192.0.2.7")[:20], "closed before sending a complete PROXY header"),
    ],
)
async def test_a_trusted_address_without_a_valid_header_is_refused(
    proxied_config: ServerConfig, caplog: pytest.LogCaptureFixture, data: bytes, why: str
) -> None:
    config = dataclasses.replace(proxied_config, tls_handshake_timeout_seconds=0.5)
    async with ParleyServer(config) as server:
        if why.startswith("closed"):
            sock = await tcp(server.port, BALANCER)
            await asyncio.get_running_loop().sock_sendall(sock, data)
            sock.close()
            await asyncio.sleep(0.3)
        else:
            assert await refused(server.port, BALANCER, data)
        # The server is unharmed: a good header still works.
        assert (await first_frame(server.port, BALANCER, v2_header("192.0.2.7")))[
            "type"
        ] == "welcome"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        f"on the chat port from {BALANCER}, which is in proxy_protocol_from" in line and why in line
        for line in warnings
    ), warnings


async def test_an_untrusted_address_header_is_not_honoured(
    proxied_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "parley")
    async with ParleyServer(proxied_config) as server:
        # From a client, the header is just bytes that are not a TLS handshake.
        with pytest.raises((ConnectionError, OSError, asyncio.IncompleteReadError)):
            await first_frame(server.port, DIRECT, v2_header("192.0.2.66"))
        direct = await first_frame(server.port, DIRECT)
        assert direct["type"] == "welcome"
    lines = connected_lines(caplog)
    assert not any("192.0.2.66" in line for line in lines)
    assert any(line.startswith(f"Connected with ('{DIRECT}',") for line in lines)


async def test_the_file_port_reads_the_header_too(
    proxied_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config = dataclasses.replace(
        proxied_config, max_file_connections_per_address=1, tls_handshake_timeout_seconds=5.0
    )
    async with ParleyServer(config) as server:
        assert server.files is not None
        port = server.files.port
        loop = asyncio.get_running_loop()
        held = await tcp(port, BALANCER)
        try:
            await loop.sock_sendall(held, v2_header("192.0.2.20"))
            await asyncio.sleep(0.2)
            # Another client behind the same balancer gets a TLS session and a reply...
            other = await first_frame(port, BALANCER, v2_header("192.0.2.21"))
            assert other["type"] == "error"
            # ...the same one is over its limit on the file port.
            same = await first_frame(port, BALANCER, v2_header("192.0.2.20"))
            assert same["code"] == "too-many-connections"
        finally:
            held.close()
        assert await refused(port, BALANCER, b"GET / HTTP/1.0\r\n\r\n")
    assert any(
        "on the file port from 127.0.0.1, which is in proxy_protocol_from" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (("10.0.0.5/24",), "host bits set: did you mean 10.0.0.0/24?"),
        (("balancer.example.org",), "not an address or a CIDR network"),
    ],
)
def test_bad_networks_are_refused_naming_the_setting(value: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match="proxy_protocol_from") as caught:
        ServerConfig.from_mapping({"proxy_protocol_from": list(value)})
    assert message in str(caught.value)
    config = ServerConfig.from_mapping({"proxy_protocol_from": ["10.0.0.5", " fd00::/64"]})
    assert config.proxy_protocol_from == ("10.0.0.5", "fd00::/64")


def test_trusted_balancers_by_address_and_network() -> None:
    from parley.config import parse_networks
    from parley.server.proxy_protocol import TrustedProxies

    proxies = TrustedProxies(parse_networks(("10.0.0.0/24", "192.0.2.5", "fd00:1::/64")))
    assert proxies.trusts("10.0.0.77")
    assert proxies.trusts("::ffff:10.0.0.77")  # a dual-stack socket's view of it
    assert proxies.trusts("192.0.2.5")
    assert not proxies.trusts("192.0.2.6")
    assert proxies.trusts("fd00:1::abcd")
    assert proxies.trusts("fd00:1::abcd%eth0")
    assert not proxies.trusts("fd00:2::1")
    assert not proxies.trusts("not an address")
    assert not TrustedProxies(())
    assert not TrustedProxies(()).trusts("10.0.0.77")
