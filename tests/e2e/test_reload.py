"""SIGHUP to the real ``parley server`` process: a renewed certificate is served to new
connections on both ports while those already open keep chatting; live settings change, the
others are logged as needing a restart; a broken certificate or settings file is logged and
what was in use is kept.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from processes import Process, environment

from parley.tls import fingerprint, generate_self_signed
from support import RawClient, insecure_context, raw_user

_started: list[Process] = []


@pytest.fixture(autouse=True)
async def _kill_leftovers() -> AsyncIterator[None]:
    yield
    for server in _started:
        server.kill()
        await server.process.wait()
    _started.clear()


async def start(home: Path, *args: str) -> tuple[Process, int, int]:
    """``parley server --port 0 ARGS``; returns it, its chat port and its file port."""
    server = await Process.start(
        "-m", "parley", "server", "--port", "0", *args, env=environment(home)
    )
    _started.append(server)
    port = int((await server.expect(r"Server is running on 127\.0\.0\.1:(\d+)")).group(1))
    files = int((await server.expect(r"Files travel on port (\d+)\.")).group(1))
    return server, port, files


def new_pair(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    generate_self_signed(cert, key, ["localhost", name])
    return cert, key


async def served_fingerprint(port: int) -> str:
    """The fingerprint of the certificate a new TLS connection to ``port`` is shown."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=insecure_context()), 10
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return fingerprint(der)


def client_fingerprint(client: RawClient) -> str:
    return fingerprint(client.writer.get_extra_info("ssl_object").getpeercert(binary_form=True))


async def chats(sender: RawClient, receiver: RawClient, text: str) -> None:
    sent = await sender.request("send", to="#general", text=text, msg_id=text)
    assert sent["type"] == "sent", sent
    await receiver.event("message", text=text)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, str]:
    """The served cert.pem and key.pem (from a first pair), and that pair's fingerprint."""
    first_cert, first_key = new_pair(tmp_path, "first")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    os.replace(first_cert, cert)
    os.replace(first_key, key)
    return cert, key, fingerprint_of(cert)


def fingerprint_of(cert: Path) -> str:
    from parley.tls import file_fingerprint

    return file_fingerprint(cert)


async def test_a_renewed_certificate_is_served_without_dropping_anyone(
    tmp_path: Path, tls_files: tuple[Path, Path, str]
) -> None:
    cert, key, old = tls_files
    settings = tmp_path / "server.toml"
    settings.write_text('motd = "Before"\n')
    server, port, files_port = await start(
        tmp_path, "--config", str(settings), "--cert", str(cert), "--key", str(key)
    )
    alice = await raw_user(port, "Alice")
    bob = await raw_user(port, "Bob")
    assert client_fingerprint(alice) == old
    await chats(alice, bob, "before the renewal")

    # Renewal the way certbot deploys it: new files moved into place.
    new_cert, new_key = new_pair(tmp_path, "second")
    new = fingerprint_of(new_cert)
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    settings.write_text(
        'motd = "After"\ntcp_nodelay = true\nflood_burst_requests = 5\n'
        'database = "postgresql://parley:pw-secret-81@127.0.0.1/elsewhere"\n'
    )
    server.signal(signal.SIGHUP)
    await server.expect(rf".* INFO parley\.server: Reload: new certificate .*{new}")
    await server.expect(
        r".* WARNING parley\.server: Reload: tcp_nodelay changed from false to true, which needs "
        r"a restart; false stays in use$"
    )
    line = await server.expect(r".* WARNING parley\.server: Reload: database changed")
    assert line.string.endswith(
        'changed from (unset) to "postgresql://parley:***@127.0.0.1/elsewhere", which needs a '
        "restart; (unset) stays in use"
    )
    await server.expect(
        r".* INFO parley\.server: Reloaded the settings; changed: .*flood_burst_requests.*motd"
    )

    assert await served_fingerprint(port) == new
    assert await served_fingerprint(files_port) == new
    carol = await RawClient.open(port)
    await carol.login("Carol")
    assert client_fingerprint(carol) == new
    assert (await carol.event("notice"))["text"] == "After"
    # Those connected before keep their connection, and chat on.
    await chats(alice, bob, "after the renewal")
    await chats(bob, carol, "old and new together")
    assert client_fingerprint(alice) == old
    for client in (alice, bob, carol):
        await client.close()
    server.signal(signal.SIGTERM)
    status, out, err = await server.finish()
    assert status == 0, err
    assert "pw-secret-81" not in out + err


async def test_a_broken_certificate_or_settings_file_keeps_what_was_in_use(
    tmp_path: Path, tls_files: tuple[Path, Path, str]
) -> None:
    cert, key, old = tls_files
    settings = tmp_path / "server.toml"
    settings.write_text('motd = "Kept"\n')
    server, port, files_port = await start(
        tmp_path, "--config", str(settings), "--cert", str(cert), "--key", str(key)
    )
    alice = await raw_user(port, "Alice")

    # Half a renewal: a new certificate whose key is not there.
    new_cert, _ = new_pair(tmp_path, "second")
    os.replace(new_cert, cert)
    server.signal(signal.SIGHUP)
    line = await server.expect(r".* ERROR parley\.server: Reload: the certificate was not reloaded")
    assert f"{key} is not the private key of the certificate {cert}" in line.string
    assert await served_fingerprint(port) == old
    assert await served_fingerprint(files_port) == old

    # A garbled certificate file.
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    server.signal(signal.SIGHUP)
    line = await server.expect(r".* ERROR parley\.server: Reload: the certificate was not reloaded")
    assert f"{cert} is not a PEM certificate" in line.string

    # A settings file with a mistake: nothing of it is applied.
    settings.write_text('motd = "Changed"\nflood_burst_requests = 0\n')
    server.signal(signal.SIGHUP)
    line = await server.expect(r".* ERROR parley\.server: Reload refused, the settings in use")
    assert f"{settings}:flood_burst_requests: 0 is out of range" in line.string

    bob = await RawClient.open(port)
    await bob.login("Bob")
    assert client_fingerprint(bob) == old
    assert (await bob.event("notice"))["text"] == "Kept"
    await chats(alice, bob, "still here")
    for client in (alice, bob):
        await client.close()
    server.signal(signal.SIGTERM)
    status, _, err = await server.finish()
    assert status == 0, err


async def test_a_self_signed_server_reloads_its_data_dir_pair(tmp_path: Path) -> None:
    server, port, _ = await start(tmp_path)
    before = await served_fingerprint(port)
    server.signal(signal.SIGHUP)
    await server.expect(r".* INFO parley\.server: Reloaded the settings; changed: none")
    assert await served_fingerprint(port) == before
    server.signal(signal.SIGTERM)
    status, _, err = await server.finish()
    assert status == 0, err
