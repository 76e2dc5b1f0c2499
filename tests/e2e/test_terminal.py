"""The line-by-line client (--plain) on a real pseudo-terminal: incoming messages never break the
line being typed, and a lost connection is resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import pexpect
from processes import ROOT, Process, environment, start_server
from pty_screen import COLUMNS, ROWS, Terminal

from parley.client.core import ChatClient
from parley.protocol.messages import Message
from support import logged_in, next_of

# A terminal's bracketed paste: what comes between is pasted, not typed.
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


def _plain_client(home: Path, port: int, nick: str) -> tuple[pexpect.spawn, Terminal]:
    """``client.py --plain`` as ``nick``, on a pseudo-terminal of its own."""
    child = pexpect.spawn(
        sys.executable,
        ["client.py", "--plain", "--trust-new", "--port", str(port), "--nick", nick],
        cwd=str(ROOT),
        env=environment(home),
        dimensions=(ROWS, COLUMNS),
    )
    return child, Terminal(child)


async def _said_by(listener: ChatClient, nick: str) -> str:
    """The text of the next message from ``nick`` that ``listener`` receives."""
    message = await next_of(listener, Message)
    while message.sender != nick:
        message = await next_of(listener, Message)
    return str(message.text)


async def _exits_cleanly(child: pexpect.spawn) -> None:
    child.send("/exit\r")
    await asyncio.to_thread(child.expect, pexpect.EOF, timeout=10)
    child.close()
    assert child.exitstatus == 0


async def _stop(child: pexpect.spawn, server: Process) -> None:
    if child.isalive():
        child.terminate(force=True)
    with contextlib.suppress(ProcessLookupError):  # stopped by the test already
        server.signal(signal.SIGTERM)
    await server.finish()


async def test_half_typed_line_survives_incoming_messages(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    child, terminal = _plain_client(tmp_path, port, "Typist")
    try:
        await asyncio.to_thread(terminal.wait_for, "Welcome to the chat!")
        other = await logged_in(port, "Other")
        await asyncio.to_thread(terminal.wait_for, "Other has joined the chat!")

        child.send("half a li")
        await asyncio.to_thread(terminal.wait_for, "> half a li")
        for text in ("one", "two", "three"):
            await other.send("#general", text)
        await asyncio.to_thread(terminal.wait_for, "Other: three")
        await asyncio.to_thread(terminal.pump, 0.3)

        screen = terminal.text()
        assert screen.index("Other: one") < screen.index("Other: two") < screen.index("> half a li")
        assert terminal.cursor_line() == "> half a li"

        child.send("ne\r")
        assert await _said_by(other, "Typist") == "half a line"
        await _exits_cleanly(child)
        await other.close()
    finally:
        await _stop(child, server)


async def test_a_server_restart_is_resumed_line_by_line(tmp_path: Path) -> None:
    home = tmp_path / "server"
    server, port = await start_server(home)
    child, terminal = _plain_client(tmp_path / "reader", port, "Reader")
    other = None
    try:
        await asyncio.to_thread(terminal.wait_for, "Welcome to the chat!")
        server.signal(signal.SIGTERM)
        assert (await server.finish())[0] == 0
        await asyncio.to_thread(terminal.wait_for, "Reconnecting")
        # Typed while away: refused in words, never silently dropped.
        child.send("lost in the gap\r")
        await asyncio.to_thread(terminal.wait_for, "Not sent: the connection is lost.")

        settings = home / "restart.toml"
        settings.write_text("files_port = 0\n")  # the old file port may be taken meanwhile
        server = await Process.start(
            "server.py", "--port", str(port), "--config", str(settings), env=environment(home)
        )
        await server.expect(r"Server is running")
        await asyncio.to_thread(terminal.wait_for, "Reconnected to", 40.0)

        other = await logged_in(port, "Other")
        await other.send("#general", "after the restart")
        await asyncio.to_thread(terminal.wait_for, "Other: after the restart")
        child.send("back again\r")
        assert await _said_by(other, "Reader") == "back again"
        await _exits_cleanly(child)
    finally:
        if other is not None:
            await other.close()
        await _stop(child, server)


async def test_a_pasted_block_is_sent_line_by_line(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    child, terminal = _plain_client(tmp_path, port, "Paster")
    try:
        await asyncio.to_thread(terminal.wait_for, "Welcome to the chat!")
        other = await logged_in(port, "Other")
        child.send(PASTE_START + "first line\nsecond line" + PASTE_END + "\r")
        assert await _said_by(other, "Paster") == "first line"
        assert await _said_by(other, "Paster") == "second line"
        # More than a few lines: asked first, and nothing is sent on a no.
        child.send(PASTE_START + "a\nb\nc\nd" + PASTE_END + "\r")
        await asyncio.to_thread(terminal.wait_for, "Send 4 pasted lines one by one? [y/N]")
        child.send("n\r")
        await asyncio.to_thread(terminal.wait_for, "The 4 pasted lines were not sent.")
        child.send("after\r")
        assert await _said_by(other, "Paster") == "after"
        await _exits_cleanly(child)
        await other.close()
    finally:
        await _stop(child, server)
