"""The line-by-line client (--plain) on a real pseudo-terminal: incoming messages never break the
line being typed.
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

from parley.protocol.messages import Message
from support import logged_in, next_of


async def test_half_typed_line_survives_incoming_messages(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    child = pexpect.spawn(
        sys.executable,
        ["client.py", "--plain", "--trust-new", "--port", str(port), "--nick", "Typist"],
        cwd=str(ROOT),
        env=environment(tmp_path),
        dimensions=(ROWS, COLUMNS),
    )
    terminal = Terminal(child)
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
        message = await next_of(other, Message)
        while message.sender != "Typist":
            message = await next_of(other, Message)
        assert message.text == "half a line"

        child.send("/exit\r")
        await asyncio.to_thread(child.expect, pexpect.EOF, timeout=10)
        child.close()
        assert child.exitstatus == 0
        await other.close()
    finally:
        if child.isalive():
            child.terminate(force=True)
        with contextlib.suppress(ProcessLookupError):  # stopped by the test already
            server.signal(signal.SIGTERM)
        await server.finish()


async def test_a_server_restart_is_resumed_line_by_line(tmp_path: Path) -> None:
    home = tmp_path / "server"
    server, port = await start_server(home)
    child = pexpect.spawn(
        sys.executable,
        ["client.py", "--plain", "--trust-new", "--port", str(port), "--nick", "Reader"],
        cwd=str(ROOT),
        env=environment(tmp_path / "reader"),
        dimensions=(ROWS, COLUMNS),
    )
    terminal = Terminal(child)
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
        message = await next_of(other, Message)
        while message.sender != "Reader":
            message = await next_of(other, Message)
        assert message.text == "back again"

        child.send("/exit\r")
        await asyncio.to_thread(child.expect, pexpect.EOF, timeout=10)
        child.close()
        assert child.exitstatus == 0
    finally:
        if other is not None:
            await other.close()
        if child.isalive():
            child.terminate(force=True)
        with contextlib.suppress(ProcessLookupError):  # stopped by the test already
            server.signal(signal.SIGTERM)
        await server.finish()
