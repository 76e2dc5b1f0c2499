"""The client on a real pseudo-terminal: incoming messages never break the line being typed."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pexpect
import pyte
from processes import ROOT, environment, start_server

from parley.protocol.messages import Message
from support import logged_in, next_of

COLUMNS, ROWS = 80, 24


class Terminal:
    """A pseudo-terminal running the client, rendered by a VT100 emulator for assertions."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)

    def pump(self, seconds: float) -> None:
        """Feed everything the client prints for ``seconds`` into the emulator."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return

    def wait_for(self, text: str, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in self.text():
                return
            self.pump(0.1)
        raise AssertionError(f"{text!r} never appeared on screen:\n{self.text()}")

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def cursor_line(self) -> str:
        return self.screen.display[self.screen.cursor.y].rstrip()


async def test_half_typed_line_survives_incoming_messages(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    child = pexpect.spawn(
        sys.executable,
        ["client.py", "--plain", "--port", str(port), "--nick", "Typist"],
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
