"""Which remote addresses count as one for per-address limits.

An IPv4 address is one host (or one NAT). An IPv6 site is usually given a whole /64, and a host
picks any of its 2^64 addresses at will (privacy addresses change by the hour): counted one by
one, a single machine could open as many connections, or make as many guesses, as it likes.
So every limit that is "per address" is per :func:`address_group`.
"""

from __future__ import annotations

import ipaddress
import sys

# The prefix an IPv6 host is assumed to control entirely (RFC 4291 interface identifiers).
IPV6_GROUP_PREFIX = 64


def address_group(host: str) -> str:
    """The key of ``host``'s group: the IPv4 address itself, or the IPv6 /64 as
    ``"2001:db8:1:2::/64"``. An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is its IPv4
    address. Anything that is not an IP address (a Unix socket path, "") is its own group.

    Pure, no I/O; costs one address parse. The key is interned: the connection, its place in
    the connection count and its request budget each hold it, and one copy does for all.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return sys.intern(str(address.ipv4_mapped))
        network = ipaddress.IPv6Network((address, IPV6_GROUP_PREFIX), strict=False)
        return sys.intern(str(network))
    return sys.intern(str(address))
