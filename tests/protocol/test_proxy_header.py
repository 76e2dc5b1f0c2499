"""The PROXY protocol header parser: every version and family, fed whole, byte by byte, and
hostile."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.protocol.proxy_header import (
    V1_MAX_BYTES,
    V2_MAX_BYTES,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
)

CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def v2(
    *,
    command: int = 1,
    family: int = 1,
    transport: int = 1,
    body: bytes | None = None,
    tlvs: bytes = b"",
    version: int = 2,
) -> bytes:
    if body is None:
        if family == 1:
            body = bytes([192, 0, 2, 7, 198, 51, 100, 2]) + struct.pack("!HH", 51234, 7976)
        elif family == 2:
            body = (
                ipaddress.IPv6Address("2001:db8::7").packed
                + ipaddress.IPv6Address("2001:db8::1").packed
                + struct.pack("!HH", 40000, 7976)
            )
        elif family == 3:
            body = b"/run/client.sock".ljust(108, b"\0") + b"/run/server.sock".ljust(108, b"\0")
        else:
            body = b""
    payload = body + tlvs
    return (
        V2_SIGNATURE
        + bytes([(version << 4) | command, (family << 4) | transport])
        + struct.pack("!H", len(payload))
        + payload
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def test_v2_ipv4_names_the_client_and_stops_at_its_end() -> None:
    header = v2()
    assert parse_proxy_header(header + CLIENT_HELLO) == ProxyHeader(
        2, len(header), ("192.0.2.7", 51234)
    )


def test_v2_ipv6() -> None:
    header = v2(family=2)
    assert parse_proxy_header(header) == ProxyHeader(2, len(header), ("2001:db8::7", 40000))


def test_v2_ipv4_mapped_ipv6_is_the_ipv4_address() -> None:
    body = (
        ipaddress.IPv6Address("::ffff:192.0.2.9").packed
        + ipaddress.IPv6Address("::1").packed
        + struct.pack("!HH", 1, 2)
    )
    assert parse_proxy_header(v2(family=2, body=body)) == ProxyHeader(2, 52, ("192.0.2.9", 1))


def test_v2_with_tlvs_skips_them() -> None:
    header = v2(tlvs=tlv(0x01, b"h2") + tlv(0x05, b"unique-id") + tlv(0xE0, b""))
    result = parse_proxy_header(header + CLIENT_HELLO)
    assert result == ProxyHeader(2, len(header), ("192.0.2.7", 51234))


def test_v2_local_command_names_nobody() -> None:
    # The balancer's own health check: the connection's own address stands.
    assert parse_proxy_header(v2(command=0)) == ProxyHeader(2, 28, None)
    assert parse_proxy_header(v2(command=0, family=0, transport=0)) == ProxyHeader(2, 16, None)


def test_v2_unspec_and_unix_families_name_nobody() -> None:
    assert parse_proxy_header(v2(family=0, transport=0)) == ProxyHeader(2, 16, None)
    assert parse_proxy_header(v2(family=3)) == ProxyHeader(2, 16 + 216, None)


@pytest.mark.parametrize("family", [1, 2])
def test_every_split_of_a_v2_header_needs_more_until_the_last_byte(family: int) -> None:
    header = v2(family=family, tlvs=tlv(0x04, b"\0" * 10))
    for end in range(len(header)):
        assert parse_proxy_header(header[:end]) is None, end
    assert parse_proxy_header(header) is not None


def test_every_split_of_a_v1_header_needs_more_until_the_crlf() -> None:
    header = b"PROXY TCP4 192.0.2.7 198.51.100.2 51234 7976\r\n"
    for end in range(len(header)):
        assert parse_proxy_header(header[:end]) is None, end
    assert parse_proxy_header(header + CLIENT_HELLO) == ProxyHeader(
        1, len(header), ("192.0.2.7", 51234)
    )


def test_v1_ipv6_and_unknown() -> None:
    line = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 7976\r\n"
    assert parse_proxy_header(line) == ProxyHeader(1, len(line), ("2001:db8::7", 40000))
    unknown = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"
    assert parse_proxy_header(unknown) == ProxyHeader(1, len(unknown), None)
    assert parse_proxy_header(b"PROXY UNKNOWN\r\n") == ProxyHeader(1, 15, None)


def test_the_longest_v1_line_is_taken() -> None:
    address = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    line = f"PROXY TCP6 {address} {address} 65535 65535\r\n".encode()
    assert parse_proxy_header(line) == ProxyHeader(1, len(line), (address, 65535))
    # The limit leaves room for the longest line version 1 allows, with its CRLF.
    padded = b"PROXY UNKNOWN " + b"x" * (V1_MAX_BYTES - 16) + b"\r\n"
    assert parse_proxy_header(padded) == ProxyHeader(1, V1_MAX_BYTES, None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (CLIENT_HELLO, "no PROXY protocol signature"),
        (b"GET / HTTP/1.1\r\n", "no PROXY protocol signature"),
        (V2_SIGNATURE[:5] + b"X", "no PROXY protocol signature"),
        (b"PROXY", None),  # a valid beginning
        (b"PROXX", "no PROXY protocol signature"),
    ],
)
def test_wrong_signature_is_refused_as_soon_as_it_shows(data: bytes, reason: str | None) -> None:
    if reason is None:
        assert parse_proxy_header(data) is None
        return
    with pytest.raises(ProxyHeaderError, match=reason):
        parse_proxy_header(data)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (v2(version=1), "version 1 in a version 2 header"),
        (v2(command=2), "unknown command 2"),
        (v2(family=4, body=b""), "unknown address family 4"),
        (v2(transport=2), "not a stream"),
        (v2(body=b"\0" * 11), "11 bytes for addresses that take 12"),
        (v2(family=2, body=b"\0" * 35), "35 bytes for addresses that take 36"),
        (v2(family=3, body=b"\0" * 100), "100 bytes for addresses that take 216"),
        (v2(tlvs=b"\x01\x00"), "a TLV cut short"),
        (v2(tlvs=b"\x01\x00\x09abc"), "a TLV of 9 bytes runs past the end"),
        (v2(tlvs=tlv(1, b"ok") + b"\x02\xff\xff"), "a TLV of 65535 bytes runs past the end"),
    ],
)
def test_hostile_v2_headers_are_refused(header: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        parse_proxy_header(header)


def test_an_oversized_v2_header_is_refused_before_its_body_arrives() -> None:
    fixed = V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", V2_MAX_BYTES)
    with pytest.raises(ProxyHeaderError, match=f"at most {V2_MAX_BYTES}"):
        parse_proxy_header(fixed)
    largest = v2(tlvs=tlv(0xE0, b"\0" * (V2_MAX_BYTES - 16 - 12 - 3)))
    assert len(largest) == V2_MAX_BYTES
    assert parse_proxy_header(largest) is not None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"PROXY TCP4 192.0.2.7 198.51.100.2 51234\r\n", "not 'PROXY TCP4"),
        (b"PROXY UDP4 192.0.2.7 198.51.100.2 1 2\r\n", "not 'PROXY TCP4"),
        (b"PROXY TCP4 2001:db8::7 198.51.100.2 1 2\r\n", "not TCP4"),
        (b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n", "not TCP6"),
        (b"PROXY TCP4 192.0.2.7 198.51.100.2 65536 2\r\n", "the port '65536'"),
        (b"PROXY TCP4 192.0.2.7 198.51.100.2 01 2\r\n", "the port '01'"),
        (b"PROXY TCP4 192.0.2.7 198.51.100.2 -1 2\r\n", "the port '-1'"),
        (b"PROXY TCP4 192.0.2.7  198.51.100.2 1 2\r\n", "not 'PROXY TCP4"),
        (b"PROXY TCP4 192.0.2.7 198.51.100.2 1 2\n", "a stray byte"),
        (b"PROXY \xff", "a stray byte"),
        (b"PROXY " + b"A" * V1_MAX_BYTES, f"longer than {V1_MAX_BYTES}"),
    ],
)
def test_hostile_v1_lines_are_refused(line: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        parse_proxy_header(line)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_header_more_or_an_error(data: bytes) -> None:
    try:
        result = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    if result is not None:
        assert 0 < result.length <= len(data)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=200))
def test_a_valid_header_is_found_whatever_follows(tail: bytes, cut: int) -> None:
    header = v2(family=2, tlvs=tlv(0x03, b"\1\2\3\4"))
    assert parse_proxy_header(header + tail) == ProxyHeader(2, len(header), ("2001:db8::7", 40000))
    assert parse_proxy_header(header[: min(cut, len(header) - 1)]) is None
