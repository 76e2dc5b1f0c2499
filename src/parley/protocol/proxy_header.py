"""The PROXY protocol header a TCP load balancer puts before a connection's own bytes, to say
whose connection it relays (HAProxy's PROXY protocol, versions 1 and 2).

Pure: bytes in, a result out. :func:`parse_proxy_header` is given everything received so far
and says one of three things: the header is complete (its length, and the client's address or
None), more bytes are needed (None), or the bytes cannot be a valid header
(:class:`ProxyHeaderError`). Every byte it has been given before saying "more" belongs to the
header, so a reader may consume them; once it says "complete", exactly ``length`` bytes are
the header and what follows is the relayed connection's first bytes (a TLS ClientHello).

Version 2 (binary)::

    12 bytes  signature \\r\\n\\r\\n\\0\\r\\nQUIT\\n
     1 byte   version (high 4 bits, 2) and command (low 4 bits: 0 LOCAL, 1 PROXY)
     1 byte   address family (high: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) and transport
              (low: 0 UNSPEC, 1 STREAM, 2 DGRAM)
     2 bytes  length of what follows, big-endian
              addresses (source, destination, source port, destination port), then TLVs
              (1 byte type, 2 bytes length, value), to the end

Version 1 (text): ``PROXY TCP4 192.0.2.1 198.51.100.2 51234 7976\\r\\n`` (TCP6 with IPv6
addresses; ``PROXY UNKNOWN ...\\r\\n`` for a connection it cannot describe), 107 bytes at most.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
# The fixed part of a version 2 header: signature, version and command, family, length.
V2_FIXED_BYTES = 16
# Version 1's own limit (the longest TCP6 line with its CRLF).
V1_MAX_BYTES = 107
# Addresses take at most 216 bytes (two Unix socket paths); the rest is for the TLVs a balancer
# adds (ALPN, authority, a unique id of up to 128 bytes, TLS details). A larger header is
# refused before it is buffered: nothing a balancer sends for a TCP connection comes close.
V2_MAX_BYTES = 1024

_LOCAL, _PROXY = 0x0, 0x1
_UNSPEC, _INET, _INET6, _UNIX = 0x0, 0x1, 0x2, 0x3
_STREAM = 0x1
# Bytes of the addresses by family: two addresses and two ports (Unix: two 108-byte paths).
_ADDRESS_BYTES = {_INET: 12, _INET6: 36, _UNIX: 216}
_TLV_HEAD_BYTES = 3


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY protocol header; the message says why, in words fit
    for a log line.
    """


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete header: ``length`` bytes long; ``source`` is the relayed client's (host,
    port), or None when the header does not name one (a LOCAL command: the balancer's own
    health check; an UNSPEC or Unix family; version 1's UNKNOWN): the connection's own peer
    address stands.
    """

    version: int
    length: int
    source: tuple[str, int] | None


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``, or None when ``data`` is a valid beginning of one
    but not all of it. Raises ProxyHeaderError when it cannot be one. O(len(data)), and never
    looks past the header or V2_MAX_BYTES.
    """
    if data[: len(V2_SIGNATURE)] == V2_SIGNATURE[: len(data)]:
        return _parse_v2(data) if len(data) >= V2_FIXED_BYTES else None
    if data[: len(V1_PREFIX)] == V1_PREFIX[: len(data)]:
        return _parse_v1(data) if len(data) > len(V1_PREFIX) else None
    raise ProxyHeaderError("no PROXY protocol signature (neither version 1 nor 2)")


def _parse_v2(data: bytes) -> ProxyHeader | None:
    version_command, family_transport, length = struct.unpack_from("!BBH", data, 12)
    if version_command >> 4 != 2:
        raise ProxyHeaderError(f"version {version_command >> 4} in a version 2 header")
    command = version_command & 0x0F
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"unknown command {command}")
    total = V2_FIXED_BYTES + length
    if total > V2_MAX_BYTES:
        raise ProxyHeaderError(f"a header of {total} bytes (at most {V2_MAX_BYTES} are taken)")
    if len(data) < total:
        return None
    body = data[V2_FIXED_BYTES:total]
    family, transport = family_transport >> 4, family_transport & 0x0F
    if family not in (_UNSPEC, _INET, _INET6, _UNIX):
        raise ProxyHeaderError(f"unknown address family {family}")
    address_bytes = _ADDRESS_BYTES.get(family, 0)
    if len(body) < address_bytes:
        raise ProxyHeaderError(f"{len(body)} bytes for addresses that take {address_bytes}")
    _check_tlvs(body[address_bytes:])
    if command == _LOCAL or family in (_UNSPEC, _UNIX):
        return ProxyHeader(2, total, None)
    if transport != _STREAM:
        raise ProxyHeaderError(f"transport {transport} is not a stream (TCP)")
    if family == _INET:
        host = str(ipaddress.IPv4Address(body[0:4]))
        (port,) = struct.unpack_from("!H", body, 8)
    else:
        host = _host(ipaddress.IPv6Address(body[0:16]))
        (port,) = struct.unpack_from("!H", body, 32)
    return ProxyHeader(2, total, (host, port))


def _check_tlvs(tlvs: bytes) -> None:
    """Each TLV must fit in what is left of the header; their values are not used."""
    offset = 0
    while offset < len(tlvs):
        if len(tlvs) - offset < _TLV_HEAD_BYTES:
            raise ProxyHeaderError("a TLV cut short after its type")
        (length,) = struct.unpack_from("!H", tlvs, offset + 1)
        offset += _TLV_HEAD_BYTES + length
        if offset > len(tlvs):
            raise ProxyHeaderError(f"a TLV of {length} bytes runs past the end of the header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_BYTES)
    if end < 0:
        if len(data) >= V1_MAX_BYTES:
            raise ProxyHeaderError(f"a version 1 line longer than {V1_MAX_BYTES} bytes")
        if b"\n" in data or not data.isascii():
            raise ProxyHeaderError("a version 1 line with a stray byte")
        return None
    length = end + 2
    try:
        fields = data[:end].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("a version 1 line that is not ASCII") from None
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(1, length, None)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("a version 1 line that is not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'")
    _, protocol, source, destination, source_port, destination_port = fields
    kind = ipaddress.IPv4Address if protocol == "TCP4" else ipaddress.IPv6Address
    try:
        host = _host(kind(source))
        kind(destination)
    except ValueError:
        raise ProxyHeaderError(f"a version 1 line with an address that is not {protocol}") from None
    _port(destination_port)
    return ProxyHeader(1, length, (host, _port(source_port)))


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or (
        len(text) > 1 and text[0] == "0"
    ):
        raise ProxyHeaderError(f"a version 1 line with the port {text!r}")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"a version 1 line with the port {text!r}")
    return port


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An IPv4-mapped IPv6 address is its IPv4 address, as the limits count it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
