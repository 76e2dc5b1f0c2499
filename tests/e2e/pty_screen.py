"""The real client on a pseudo-terminal, its screen rendered by a VT100 emulator (pyte) so a
test reads what a user would see. Everything the client wrote is kept too, for checks on the
raw bytes (a bell, the terminal modes restored on exit).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pexpect
import pyte
from processes import ROOT, environment

COLUMNS, ROWS = 80, 24
ALT = "\x1b"
UP_ARROW = "\x1b[A"
TAB = "\t"
CTRL_N, CTRL_P, CTRL_C = "\x0e", "\x10", "\x03"


class Terminal:
    """A pseudo-terminal running the client, rendered by a VT100 emulator for assertions."""

    def __init__(self, child: pexpect.spawn, columns: int = COLUMNS, rows: int = ROWS) -> None:
        self.child = child
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()

    def pump(self, seconds: float) -> None:
        """Feed everything the client prints for ``seconds`` into the emulator."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return
            self.raw += data
            self.stream.feed(data)

    def wait_for(self, text: str, seconds: float = 15.0) -> None:
        self.wait_until(lambda: text in self.text(), f"{text!r} on screen", seconds)

    def wait_until(self, check: object, what: str, seconds: float = 15.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if callable(check) and check():
                return
            self.pump(0.1)
        raise AssertionError(f"never {what}:\n{self.text()}")

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def cursor_line(self) -> str:
        return self.screen.display[self.screen.cursor.y].rstrip()

    def status_bar(self) -> str:
        """The full-screen client's status bar: the row above the input line."""
        return self.screen.display[self.screen.cursor.y - 1].rstrip()

    # Async wrappers: the emulator is fed in a thread while the test's loop runs its clients.
    async def await_text(self, text: str, seconds: float = 15.0) -> None:
        await asyncio.to_thread(self.wait_for, text, seconds)

    async def await_true(self, check: object, what: str, seconds: float = 15.0) -> None:
        await asyncio.to_thread(self.wait_until, check, what, seconds)

    async def settle(self, seconds: float = 0.3) -> None:
        await asyncio.to_thread(self.pump, seconds)

    async def exit_status(self) -> int | None:
        await asyncio.to_thread(self.child.expect, pexpect.EOF, timeout=15)
        self.raw += self.child.before or b""
        self.child.close()
        return self.child.exitstatus

    def stop(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def spawn_client(
    home: Path,
    port: int | None,
    *args: str,
    columns: int = COLUMNS,
    rows: int = ROWS,
    env: dict[str, str] | None = None,
    trust_new: bool = True,
) -> Terminal:
    """``client.py`` on a terminal of ``columns`` x ``rows``, with the XDG dirs of ``home``
    (and ``env`` added); ``port`` None leaves it to the settings file. ``trust_new``: trust a
    server not seen before without asking (False: the client asks, as it does by default).
    """
    trusting = ["--trust-new"] if trust_new else []
    child = pexpect.spawn(
        sys.executable,
        ["client.py", *(["--port", str(port)] if port is not None else []), *trusting, *args],
        cwd=str(ROOT),
        # pyte does not answer cursor position requests; prompt_toolkit need not ask.
        env={**environment(home), "PROMPT_TOOLKIT_NO_CPR": "1", **(env or {})},
        dimensions=(rows, columns),
    )
    return Terminal(child, columns, rows)
