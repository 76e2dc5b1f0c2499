"""Per-address limits group addresses: IPv4 one by one, IPv6 by /64."""

from __future__ import annotations

import pytest

from parley.server.address_group import address_group


@pytest.mark.parametrize(
    ("host", "group"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:0:0:0:0", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
    ],
)
def test_groups(host: str, group: str) -> None:
    assert address_group(host) == group


def test_neighbouring_ipv6_prefixes_are_apart() -> None:
    assert address_group("2001:db8:1:2::1") != address_group("2001:db8:1:3::1")
    assert address_group("2001:db8:1:2::1") == address_group("2001:db8:1:2:dead:beef:0:1")


def test_neighbouring_ipv4_addresses_are_apart() -> None:
    assert address_group("192.0.2.7") != address_group("192.0.2.8")


def test_what_is_not_an_address_is_its_own_group() -> None:
    assert address_group("") == ""
    assert address_group("/run/parley.sock") == "/run/parley.sock"
