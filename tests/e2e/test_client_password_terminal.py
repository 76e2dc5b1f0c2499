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

from support import RawClient, raw_user

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


def _spawn_as(tmp_path: Path, port: int, nick: str) -> tuple[pexpect.spawn, Terminal]:
    child = pexpect.spawn(
        sys.executable,
        ["client.py", "--plain", "--trust-new", "--port", str(port), "--nick", nick],
        cwd=str(ROOT),
        env={**environment(tmp_path / "mallory"), "PROMPT_TOOLKIT_NO_CPR": "1"},
        dimensions=(ROWS, COLUMNS),
    )
    return child, Terminal(child)


async def _ends_not_logged_in(child: pexpect.spawn) -> None:
    await asyncio.to_thread(child.expect, pexpect.EOF, timeout=10)
    child.close()
    assert child.exitstatus == 4


async def test_on_a_terminal_three_wrong_passwords_end_the_client(tmp_path: Path) -> None:
    # Not back to the nickname prompt, which shows what is typed: a fourth try typed there by
    # habit would become a guest's name, and the next one a message in #general.
    server, port = await start_server(tmp_path / "server")
    raw = await raw_user(port, "Bob")
    assert (await raw.request("register", password=PASSWORD))["type"] == "ok"
    await raw.close()
    child, terminal = _spawn_as(tmp_path, port, "Bob")
    try:
        # An empty password is the way back to the nickname, on purpose.
        await asyncio.to_thread(_wait_for_cursor_line, terminal, "Password:")
        await asyncio.to_thread(terminal.wait_for, "Leave the password empty to choose another")
        child.send("\r")
        await asyncio.to_thread(_wait_for_cursor_line, terminal, "Enter your nickname:")
        child.send("Bob\r")
        for attempt in range(3):
            await asyncio.to_thread(_wait_for_cursor_line, terminal, "Password:")
            child.send(f"wrong-{attempt}\r")
            await asyncio.to_thread(
                terminal.wait_until,
                lambda n=attempt + 1: terminal.text().count("Wrong nickname or password.") == n,
                "the refusal",
            )
        await asyncio.to_thread(terminal.wait_for, "The password for Bob was refused.")
        await _ends_not_logged_in(child)
        assert "wrong-" not in terminal.text()
    finally:
        if child.isalive():
            child.terminate(force=True)
        server.signal(signal.SIGTERM)
        await server.finish()


async def test_a_throttled_password_ends_the_client_and_is_never_shown(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path / "server")
    raw = await raw_user(port, "Bob")
    assert (await raw.request("register", password=PASSWORD))["type"] == "ok"
    await raw.close()
    # Earlier wrong guesses from this address: the next check must wait.
    for n in range(6):
        guesser = await RawClient.open(port)
        reply = await guesser.try_login("Bob", password=f"guess-{n}")
        await guesser.close()
        assert reply["code"] in ("auth-failed", "too-many-attempts"), reply
    child, terminal = _spawn_as(tmp_path, port, "Bob")
    try:
        await asyncio.to_thread(_wait_for_cursor_line, terminal, "Password:")
        child.send(PASSWORD + "\r")
        await asyncio.to_thread(terminal.wait_for, "Too many failed attempts")
        await _ends_not_logged_in(child)
        assert PASSWORD not in terminal.text()
    finally:
        if child.isalive():
            child.terminate(force=True)
        server.signal(signal.SIGTERM)
        await server.finish()
