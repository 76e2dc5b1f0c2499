"""The original README's session, with the real server.py and client.py processes over pipes."""

from __future__ import annotations

import signal
from pathlib import Path

from processes import ROOT, start_client, start_server


async def test_three_users_chat_as_in_the_readme(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    await server.expect(r"Certificate SHA-256 fingerprint: ([0-9A-F]{2}:){31}[0-9A-F]{2}$")
    clients = []
    try:
        alice = await start_client(tmp_path, port)
        clients.append(alice)
        alice.type("Alice")
        # Piped input is not echoed by a terminal, so the client echoes the answer itself.
        await alice.expect(r"Enter your nickname: Alice$")
        await alice.expect("Welcome to the chat!$")
        await server.expect(r"\S+ INFO parley\.server: Connected with \('127\.0\.0\.1', \d+\)$")

        bob = await start_client(tmp_path, port)
        clients.append(bob)
        bob.type("Bob")
        await bob.expect("Welcome to the chat!$")
        await alice.expect("Bob has joined the chat!$")

        carol = await start_client(tmp_path, port)
        clients.append(carol)
        carol.type("carol")
        await carol.expect("Welcome to the chat!$")
        await alice.expect("carol has joined the chat!$")
        await bob.expect("carol has joined the chat!$")

        # A nickname that differs only in case is taken. From a pipe the client stops there
        # (status 4): the script's next line is a message, not another nickname.
        dave = await start_client(tmp_path, port)
        clients.append(dave)
        dave.type("ALICE")
        dave.type("hello everyone")
        await dave.expect("Enter your nickname: ALICE$")
        await dave.expect("The nickname ALICE is already taken.$")
        status, output, _ = await dave.finish()
        assert status == 4 and "Welcome" not in output

        bob.type("Hi Alice!")
        await alice.expect("Bob: Hi Alice!$")
        await carol.expect("Bob: Hi Alice!$")

        alice.type("/pm Bob Hi Bob!")
        await bob.expect(r"\(private\) Alice: Hi Bob!$")
        alice.type("Hello everyone!")
        await bob.expect("Alice: Hello everyone!$")
        await carol.expect("Alice: Hello everyone!$")

        carol.type("/list")
        await carol.expect(r"Online \(3\): Alice, Bob, carol$")
        carol.type("/pm Zed hello?")
        await carol.expect(r"\*\*\* No user named Zed is online\.$")
        carol.type("/frobnicate")
        await carol.expect("Unknown command /frobnicate. Type /help for the list of commands.$")
        carol.type("/help")
        await carol.expect(r"  /pm USER MESSAGE")

        bob.type("/exit")
        status, _, _ = await bob.finish()
        assert status == 0
        await alice.expect("Bob has left the chat.$")

        carol.end_input()  # end of input is like /exit
        status, carol_output, _ = await carol.finish()
        assert status == 0
        await alice.expect("carol has left the chat.$")
        assert "Hi Bob!" not in carol_output  # the private message stayed private

        alice.type("/exit")
        status, alice_output, _ = await alice.finish()
        assert status == 0
        # Own messages are not echoed back: the user typed them.
        assert "Alice: Hello everyone!" not in alice_output
        assert alice_output.splitlines()[:2] == [
            "Enter your nickname: Alice",
            "Welcome to the chat!",
        ]
    finally:
        for client in clients:
            client.kill()
        server.signal(signal.SIGTERM)
        status, log, _ = await server.finish()
    assert status == 0
    assert log.count("Connected with ('127.0.0.1', ") == 4
    assert "Server stopped." in log


async def test_sigterm_tells_clients_and_exits_cleanly(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    alice = await start_client(tmp_path, port, "--nick", "Alice")
    try:
        await alice.expect("Welcome to the chat!$")
        server.signal(signal.SIGINT)
        await alice.expect(r"\*\*\* The server is shutting down\.$")
        status, _, _ = await alice.finish()
        assert status == 1  # the chat ended without the user asking
    finally:
        alice.kill()
    status, log, _ = await server.finish()
    assert status == 0
    assert "Server stopped." in log


async def test_peer_escape_sequences_never_reach_the_terminal(tmp_path: Path) -> None:
    """Terminal injection: what another user sends cannot drive this user's terminal."""
    from support import RawClient

    server, port = await start_server(tmp_path)
    victim = await start_client(tmp_path, port, "--nick", "Victim")
    try:
        await victim.expect("Welcome to the chat!$")
        raw = await RawClient.open(port)
        await raw.login("Mallory")
        await victim.expect("Mallory has joined the chat!$")
        attacks = ["\x1b]0;owned\x07", "\x1b[2J", "\u009b31m", "right-to-left \u202eevil"]
        for i, text in enumerate(attacks):
            raw.send(type="send", id=10 + i, to="#general", text=text, msg_id=str(i))
            await raw.expect("error" if i < 3 else "sent", id=10 + i)
        await victim.expect("Mallory: right-to-left \ufffdevil$")
        await raw.close()
        victim.end_input()
        _, output, _ = await victim.finish()
        for forbidden in ("\x1b", "\x07", "\u009b", "\u202e"):
            assert forbidden not in output
    finally:
        victim.kill()
        server.signal()
        await server.finish()


async def test_the_readme_shows_what_the_server_prints(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("$ make run\n", 1)[1].split("```", 1)[0].splitlines()
    server, _ = await start_server(tmp_path)
    server.signal(signal.SIGTERM)
    _, out, _ = await server.finish()
    printed = out.splitlines()
    for line in block:
        start = " ".join(line.split()[:2])
        assert any(seen.strip().startswith(start) for seen in printed), (line, printed)
