"""TLS settings, checked against a real server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from parley.server.app import ParleyServer
from parley.tls import generate_self_signed
from support import insecure_context


async def _negotiate(port: int, context: ssl.SSLContext) -> str:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    version: str = writer.get_extra_info("ssl_object").version()
    writer.close()
    return version


async def test_tls13_is_preferred_and_tls12_still_works(server: ParleyServer) -> None:
    assert await _negotiate(server.port, insecure_context()) == "TLSv1.3"
    only_12 = insecure_context()
    only_12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert await _negotiate(server.port, only_12) == "TLSv1.2"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_anything_older_than_tls12_is_refused(server: ParleyServer) -> None:
    old = insecure_context()
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _negotiate(server.port, old)


def test_generated_certificate_names_loopback_and_extra_hostnames(tmp_path: Path) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed(cert_file, key_file, ["localhost", "127.0.0.1", "::1", "chat.example"])
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "chat.example"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert (key_file.stat().st_mode & 0o777) == 0o600


async def test_nodes_given_one_certificate_all_present_it(tmp_path: Path) -> None:
    # A cluster behind one balancer: each node its own data dir, the same cert_file and
    # key_file. A client pinning the certificate sees one identity whichever node it reaches,
    # and no node makes a self-signed pair of its own.
    import hashlib

    from parley.config import ServerConfig
    from parley.tls import file_fingerprint

    cert_file, key_file = tmp_path / "chat.pem", tmp_path / "chat.key"
    generate_self_signed(cert_file, key_file, ["chat.example"])
    seen = []
    for node in ("a", "b"):
        config = ServerConfig(
            port=0, data_dir=tmp_path / node, cert_file=cert_file, key_file=key_file
        )
        async with ParleyServer(config) as server:
            assert server.fingerprint == file_fingerprint(cert_file)
            _, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=insecure_context()
            )
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            seen.append(hashlib.sha256(der).hexdigest())
            await _closed(writer)
            assert server.files is not None
            _, writer = await asyncio.open_connection(
                "127.0.0.1", server.files.port, ssl=insecure_context()
            )
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            seen.append(hashlib.sha256(der).hexdigest())
            await _closed(writer)
        assert not (tmp_path / node / "cert.pem").exists()
        assert not (tmp_path / node / "key.pem").exists()
    assert len(set(seen)) == 1


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Closed, and the server has seen it, before the server stops: a connection still open
    on its side when it stops would be left to the garbage collector.
    """
    writer.close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await writer.wait_closed()
