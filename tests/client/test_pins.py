"""The pin store on its own: first use, match, mismatch, and a file people can edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.client.pins import CertificateChanged, PinStatus, PinStore, server_name


def test_first_use_pins_then_matches(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "sub" / "known_servers")
    assert store.check("h:1", "AA:BB") is PinStatus.PINNED_NOW
    assert store.check("h:1", "AA:BB") is PinStatus.MATCHED
    assert store.check("h:2", "CC:DD") is PinStatus.PINNED_NOW
    assert (store.path.stat().st_mode & 0o777) == 0o600


def test_a_different_fingerprint_is_refused_with_both_shown(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "known_servers")
    store.check("h:1", "AA:BB")
    with pytest.raises(CertificateChanged) as changed:
        store.check("h:1", "EE:FF")
    text = changed.value.explain()
    assert "AA:BB" in text and "EE:FF" in text and str(store.path) in text
    assert store.check("h:1", "AA:BB") is PinStatus.MATCHED  # the pin was not replaced


def test_removing_the_line_accepts_a_new_certificate(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "known_servers")
    store.check("h:1", "AA:BB")
    store.path.write_text("# edited by hand\n")
    assert store.check("h:1", "EE:FF") is PinStatus.PINNED_NOW


def test_ipv6_servers_are_bracketed() -> None:
    assert server_name("::1", 7976) == "[::1]:7976"
    assert server_name("example.org", 7976) == "example.org:7976"
