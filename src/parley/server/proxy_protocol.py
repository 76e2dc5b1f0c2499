"""The PROXY protocol on the listeners: a connection from a trusted load balancer
(``proxy_protocol_from``) starts with a header naming the real client, read here before the
TLS handshake begins; from then on the connection is that client's, for the connection limits,
the request budgets, login throttles, bans and the log.

The header is parsed by :func:`parley.protocol.proxy_header.parse_proxy_header`; this module only
moves bytes. It never reads past the header: it peeks at what has arrived, and consumes only
the bytes the parser says belong to the header, so the TLS ClientHello that follows (often in
the same segment) is left for the handshake.

A connection from a trusted address that sends no valid header within the handshake deadline
is closed, with a log line naming the setting: a balancer not configured to send the header
(or a client reaching the server around it) would otherwise be counted as the balancer. From
any other address nothing is read here, so a header sent by a client is not honoured: it is
just bytes that are not a TLS handshake.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable

from parley.config import ServerConfig, parse_networks
from parley.protocol.proxy_header import V2_MAX_BYTES, ProxyHeaderError, parse_proxy_header
from parley.server.deadlines import Deadline, DeadlineQueue

log = logging.getLogger("parley.server")

SETTING = "proxy_protocol_from"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) of the peer, as socket.getpeername gives it (IPv6 adds flow info and scope).
Peer = tuple[str, int]


class TrustedProxies:
    """The balancers whose connections carry a PROXY header."""

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self._networks = networks

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (an address as accept gives it) is one of the balancers. O(networks)."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


class HeaderReader:
    """Reads the PROXY header of one accepted socket, then hands the socket on with the client's
    address (``done``), or closes it (``dropped``) when the header is invalid, late or the
    peer leaves.
    """

    __slots__ = ("_balancer", "_done", "_dropped", "_loop", "_port", "_received", "_sock", "_timer")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        balancer: Peer,
        deadlines: DeadlineQueue,
        port: str,
        done: Callable[[HeaderReader, socket.socket, Peer], None],
        dropped: Callable[[HeaderReader], None],
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._balancer = balancer
        self._port = port
        self._done = done
        self._dropped = dropped
        self._received = bytearray()
        self._timer: Deadline | None = deadlines.add(self._timed_out)
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        sock = self._sock
        try:
            peeked = sock.recv(V2_MAX_BYTES - len(self._received), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug(
                "A connection from %s went away before its PROXY header: %s", self._balancer[0], exc
            )
            self.close()
            return
        if not peeked:
            self._refuse("it closed before sending a complete PROXY header")
            return
        try:
            header = parse_proxy_header(bytes(self._received) + peeked)
        except ProxyHeaderError as exc:
            self._refuse(f"it sent no valid PROXY header ({exc})")
            return
        # Consume only header bytes: all of what was peeked while the header is incomplete,
        # else exactly its rest (what follows is the TLS handshake's).
        wanted = len(peeked) if header is None else header.length - len(self._received)
        try:
            self._received += sock.recv(wanted)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if header is None or len(self._received) < header.length:
            return
        self._stop()
        source = header.source if header.source is not None else self._balancer
        self._done(self, sock, source)

    def _timed_out(self) -> None:
        self._timer = None
        self._refuse("its PROXY header did not arrive within tls_handshake_timeout_seconds")

    def _refuse(self, why: str) -> None:
        log.warning(
            "Refused a connection on the %s port from %s, which is in %s: %s. Make the balancer "
            "send the PROXY protocol (HAProxy: send-proxy-v2 on the server line), or take its "
            "address out of %s.",
            self._port,
            self._balancer[0],
            SETTING,
            why,
            SETTING,
        )
        self.close()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sock.fileno() != -1:
            self._loop.remove_reader(self._sock.fileno())

    def close(self) -> None:
        """Stop reading and close the socket (the listener is closing, or the header failed)."""
        self._stop()
        self._sock.close()
        self._dropped(self)


def trusted_proxies(config: ServerConfig) -> TrustedProxies:
    """The balancers of ``proxy_protocol_from`` (checked when the settings were read)."""
    return TrustedProxies(parse_networks(config.proxy_protocol_from))
