"""TLS as a user meets it: the generated certificate, trust on first use, a changed certificate,
a certificate made with the original README's openssl command, and CA verification.
"""

from __future__ import annotations

import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from processes import Process, start_client, start_server
from pty_screen import spawn_client


async def _fingerprint_of(server: Process) -> str:
    match = await server.expect(r"Certificate SHA-256 fingerprint: ([0-9A-F:]{95})$")
    return match.group(1)


async def _stop(server: Process) -> str:
    server.signal(signal.SIGTERM)
    status, log, _ = await server.finish()
    assert status == 0
    return log


async def _chat_once(home: Path, port: int, nick: str, *args: str) -> tuple[int, str, str]:
    client = await start_client(home, port, "--nick", nick, *args)
    client.end_input()
    return await client.finish()


async def test_first_connection_pins_and_later_ones_are_silent(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    fingerprint = await _fingerprint_of(server)
    try:
        status, out, err = await _chat_once(tmp_path, port, "Alice")
        assert status == 0 and "Welcome to the chat!" in out
        assert f"127.0.0.1:{port} is a server this computer has not seen before" in err
        assert fingerprint in err and "Trusted from now on" in err
        pins = (tmp_path / "config" / "parley" / "known_servers").read_text()
        assert pins == f"127.0.0.1:{port} {fingerprint}\n"

        status, out, err = await _chat_once(tmp_path, port, "Alice")
        assert status == 0 and "Welcome to the chat!" in out
        assert err == ""
    finally:
        await _stop(server)


async def test_no_trust_new_refuses_a_server_not_seen_before(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    try:
        status, out, err = await _chat_once(tmp_path, port, "Alice", "--no-trust-new")
        assert status == 5 and "Welcome" not in out
        assert "Not trusted (--no-trust-new)" in err
        assert not (tmp_path / "config" / "parley" / "known_servers").exists()
        status, out, err = await _chat_once(tmp_path, port, "Alice", "--trust-new")
        assert status == 0 and "Welcome to the chat!" in out and "Trusted from now on" in err
        # Pinned now: a known server needs no decision.
        status, out, err = await _chat_once(tmp_path, port, "Alice", "--no-trust-new")
        assert status == 0 and err == ""
    finally:
        await _stop(server)


async def test_on_a_terminal_a_new_server_is_trusted_only_when_the_user_says_so(
    tmp_path: Path,
) -> None:
    server, port = await start_server(tmp_path)
    fingerprint = await _fingerprint_of(server)
    try:
        for answer, status in (("n", 5), ("y", 0)):
            terminal = spawn_client(tmp_path, port, "--plain", "--nick", "Alice", trust_new=False)
            try:
                await terminal.await_text("Trust it and connect? [y/N]")
                screen = terminal.text().replace("\n", "")
                assert fingerprint[:40] in screen
                assert "Certificate SHA-256 fingerprint:" in screen
                assert not (tmp_path / "config" / "parley" / "known_servers").exists()
                terminal.child.send(answer + "\r")
                if answer == "y":
                    await terminal.await_text("Welcome to the chat!")
                    terminal.child.send("/exit\r")
                else:
                    await terminal.await_text("Not trusted: the connection was closed")
                assert await terminal.exit_status() == status
            finally:
                terminal.stop()
        pins = (tmp_path / "config" / "parley" / "known_servers").read_text()
        assert pins == f"127.0.0.1:{port} {fingerprint}\n"
    finally:
        await _stop(server)


async def test_the_certificate_is_made_once_with_a_private_key_and_reused(tmp_path: Path) -> None:
    server, _ = await start_server(tmp_path)
    first = await _fingerprint_of(server)
    await _stop(server)
    key = tmp_path / "data" / "parley" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    server, _ = await start_server(tmp_path)
    assert await _fingerprint_of(server) == first
    await _stop(server)


async def test_a_changed_certificate_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    old = await _fingerprint_of(server)
    await _chat_once(tmp_path, port, "Alice")
    await _stop(server)

    # Same address, new certificate: what an attacker in the middle would present.
    impostor_home = tmp_path / "impostor"
    (impostor_home / "config").mkdir(parents=True)
    # Only the chat port must be the same; the file port the first server had may be taken
    # by another program meanwhile.
    settings = impostor_home / "server.toml"
    settings.write_text("files_port = 0\n")
    server = await Process.start(
        "server.py",
        "--port",
        str(port),
        "--data-dir",
        str(impostor_home / "data"),
        "--config",
        str(settings),
        env=_env(tmp_path),
    )
    new = await _fingerprint_of(server)
    try:
        status, out, err = await _chat_once(tmp_path, port, "Alice")
        assert status == 3
        assert "Welcome" not in out
        assert "has CHANGED" in err and old in err and new in err
        assert "known_servers" in err  # says how to accept the new certificate
    finally:
        log = await _stop(server)
    assert " is Alice" not in log  # the nickname never reached the impostor


def _env(home: Path) -> dict[str, str]:
    from processes import environment

    return environment(home)


@pytest.fixture
def openssl_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate made with the original README's command (answers given as -subj)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for this test (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-x509",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "365",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_an_openssl_made_certificate_works_with_cert_and_key(
    tmp_path: Path, openssl_certificate: tuple[Path, Path]
) -> None:
    cert, key = openssl_certificate
    printed = (
        subprocess.run(
            ["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .split("=", 1)[1]
    )
    server, port = await start_server(tmp_path, "--cert", str(cert), "--key", str(key))
    assert await _fingerprint_of(server) == printed
    try:
        status, out, err = await _chat_once(tmp_path, port, "Alice")
        assert status == 0 and "Welcome to the chat!" in out and printed in err
    finally:
        await _stop(server)


async def test_cafile_verifies_the_chain_and_refuses_a_stranger(
    tmp_path: Path, openssl_certificate: tuple[Path, Path]
) -> None:
    server, port = await start_server(tmp_path)
    await _fingerprint_of(server)
    own_cert = tmp_path / "data" / "parley" / "cert.pem"
    try:
        status, out, err = await _chat_once(tmp_path, port, "Alice", "--cafile", str(own_cert))
        assert status == 0 and "Welcome to the chat!" in out
        assert "not seen before" not in err  # a CA-verified server is not pinned

        stranger, _ = openssl_certificate
        status, out, err = await _chat_once(tmp_path, port, "Bob", "--cafile", str(stranger))
        assert status == 1 and "Welcome" not in out
        assert f"not accepted with --cafile {stranger}" in err, err
        assert "Traceback" not in err
    finally:
        await _stop(server)


async def test_a_missing_or_unusable_cafile_is_named(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    await _fingerprint_of(server)
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    try:
        for bundle, why in ((tmp_path / "missing.pem", "no such file"), (not_pem, "no PEM")):
            status, out, err = await _chat_once(tmp_path, port, "Alice", "--cafile", str(bundle))
            assert status == 1 and "Welcome" not in out
            assert f"--cafile {bundle}: {why}" in err, err
            assert "Traceback" not in err
    finally:
        await _stop(server)


async def test_insecure_says_so_every_time(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    try:
        for _ in range(2):
            status, out, err = await _chat_once(tmp_path, port, "Alice", "--insecure")
            assert status == 0 and "Welcome to the chat!" in out
            assert "NOT verified" in err
        assert not (tmp_path / "config" / "parley" / "known_servers").exists()
    finally:
        await _stop(server)
