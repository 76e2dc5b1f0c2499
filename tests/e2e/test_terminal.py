"""The line-by-line client (--plain) on a real pseudo-terminal: incoming messages never break the
line being typed.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pexpect
from processes import ROOT, environment, start_server
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
        server.signal(signal.SIGTERM)
        await server.finish()
