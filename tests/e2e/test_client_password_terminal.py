"""On a real pseudo-terminal, a password is typed blind and never comes back: not on the screen,
not from the chat prompt's history.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pexpect
from processes import ROOT, environment, start_server
from pty_screen import COLUMNS, ROWS, Terminal

from support import raw_user

PASSWORD = "correct horse battery"
UP_ARROW = "\x1b[A"


def _wait_for_cursor_line(terminal: Terminal, text: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while terminal.cursor_line() != text:
        assert time.monotonic() < deadline, f"never {text!r} at the cursor:\n{terminal.text()}"
        terminal.pump(0.1)


async def test_the_password_is_hidden_and_kept_out_of_the_line_history(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path / "server")
    raw = await raw_user(port, "Bob")
    assert (await raw.request("register", password=PASSWORD))["type"] == "ok"
    await raw.close()
    child = pexpect.spawn(
        sys.executable,
        ["client.py", "--plain", "--trust-new", "--port", str(port), "--nick", "Bob"],
        cwd=str(ROOT),
        # pyte does not answer cursor position requests; prompt_toolkit need not ask.
        env={**environment(tmp_path / "bob"), "PROMPT_TOOLKIT_NO_CPR": "1"},
        dimensions=(ROWS, COLUMNS),
    )
    terminal = Terminal(child)
    try:
        await asyncio.to_thread(terminal.wait_for, "Password:")
        child.send(PASSWORD + "\r")
        await asyncio.to_thread(terminal.wait_for, "Welcome to the chat!")
        assert PASSWORD not in terminal.text()
        assert "correct" not in terminal.text()

        # The chat prompt's history has what was typed at it, and never the password.
        child.send("hello\r")
        await asyncio.to_thread(_wait_for_cursor_line, terminal, ">")  # a fresh prompt
        # A password typed on a command line by habit is not sent, and not remembered.
        for typed in ("/register hunter2 typed", "/passwd hunter2 hunter3"):
            child.send(typed + "\r")
            await asyncio.to_thread(terminal.wait_for, "Usage: /" + typed[1:5])
            await asyncio.to_thread(_wait_for_cursor_line, terminal, ">")
        child.send(UP_ARROW + UP_ARROW + UP_ARROW)
        await asyncio.to_thread(_wait_for_cursor_line, terminal, "> hello")
        assert "correct" not in terminal.text()
        child.send("\x15/exit\r")  # Ctrl-U clears the recalled line first
        await asyncio.to_thread(child.expect, pexpect.EOF, timeout=10)
        child.close()
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.terminate(force=True)
        server.signal(signal.SIGTERM)
        await server.finish()


async def test_on_a_terminal_three_wrong_passwords_then_the_nickname_again(
    tmp_path: Path,
) -> None:
    server, port = await start_server(tmp_path / "server")
    raw = await raw_user(port, "Bob")
    assert (await raw.request("register", password=PASSWORD))["type"] == "ok"
    await raw.close()
    child = pexpect.spawn(
        sys.executable,
        ["client.py", "--plain", "--trust-new", "--port", str(port), "--nick", "Bob"],
        cwd=str(ROOT),
        env={**environment(tmp_path / "mallory"), "PROMPT_TOOLKIT_NO_CPR": "1"},
        dimensions=(ROWS, COLUMNS),
    )
    terminal = Terminal(child)
    try:
        for attempt in range(3):
            await asyncio.to_thread(_wait_for_cursor_line, terminal, "Password:")
            child.send(f"wrong-{attempt}\r")
            await asyncio.to_thread(
                terminal.wait_until,
                lambda n=attempt + 1: terminal.text().count("Wrong nickname or password.") == n,
                "the refusal",
            )
        await asyncio.to_thread(_wait_for_cursor_line, terminal, "Enter your nickname:")
        child.send("Guest\r")
        await asyncio.to_thread(terminal.wait_for, "Welcome to the chat!")
        assert "wrong-" not in terminal.text()
        child.send("/exit\r")
        await asyncio.to_thread(child.expect, pexpect.EOF, timeout=10)
        child.close()
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.terminate(force=True)
        server.signal(signal.SIGTERM)
        await server.finish()
