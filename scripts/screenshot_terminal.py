"""Render the full-screen client's screen to docs/screenshots/terminal.txt.

    .venv/bin/python scripts/screenshot_terminal.py

Starts a server on a free port in a temporary folder, a few scripted users, and the real client
on a 100x28 pseudo-terminal; the screen is read through a terminal emulator (pyte), as the
tests read it, and written as plain text.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect
import pyte

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from parley.client.core import ChatClient  # noqa: E402

COLUMNS, ROWS = 100, 28
OUTPUT = ROOT / "docs" / "screenshots" / "terminal.txt"


class Screen:
    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return

    async def wait_for(self, text: str) -> None:
        for _ in range(150):
            if text in self.text():
                return
            await asyncio.to_thread(self.pump, 0.1)
        raise RuntimeError(f"{text!r} never appeared:\n{self.text()}")

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)


async def user(port: int, nick: str) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", port, pins=None)
    await client.login(nick)
    return client


async def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="parley-screenshot-"))
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home)}
    env["PYTHONPATH"] = str(ROOT / "src")
    server = subprocess.Popen(
        [sys.executable, "-m", "parley", "server", "--port", "0", "--data-dir", str(home)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(re.findall(r":(\d+)\.\.\.", server.stdout.readline())[0])
    try:
        bob, carol, dave = [await user(port, nick) for nick in ("Bob", "Carol", "Dave")]
        for client in (bob, carol, dave):
            await client.join("#dev")
        await bob.topic("#dev", "Release 0.2 on Friday · reviews before noon")
        await carol.send("#dev", "I pushed the reconnect fix, could someone review it?")
        await bob.send("#dev", "On it after lunch.")
        child = pexpect.spawn(
            sys.executable,
            ["-m", "parley", "client", "--port", str(port), "--nick", "Alice"],
            env={**env, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color"},
            dimensions=(ROWS, COLUMNS),
        )
        screen = Screen(child)
        await screen.wait_for("[#general]")
        child.send("/join #dev\r")
        await screen.wait_for("You joined #dev")
        await dave.send("#dev", "alice: welcome! the build is green again")
        await carol.send("#dev", "/me hands Alice the release checklist")
        child.send("thanks! reading the diff now\r")
        await screen.wait_for("reading the diff now")
        await carol.send("#general", "lunch at 12:30?")
        await dave.send("#general", "count me in")
        await bob.send("Alice", "can you take the 3pm call for me?")
        await screen.wait_for("4:Bob(1)")
        child.send("Ca\t")
        await screen.wait_for("[#dev] Carol:")
        child.send("looks good, one comment on the backoff")
        await asyncio.to_thread(screen.pump, 0.5)
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(screen.text() + "\n")
        print(f"Wrote {OUTPUT}")
        child.send("\x15/exit\r")
        await asyncio.to_thread(screen.pump, 1.0)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    asyncio.run(main())
