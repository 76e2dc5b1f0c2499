"""The full-screen client, driven on a real pseudo-terminal against a real server over TLS, its
screen read through a terminal emulator: what a user at a terminal sees and does.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from processes import ROOT, Process, environment, start_server
from pty_screen import ALT, CTRL_C, CTRL_N, CTRL_P, TAB, UP_ARROW, Terminal, spawn_client

from parley.client.core import ChatClient
from parley.protocol.messages import Message
from support import logged_in, next_of, raw_user


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Process, int]]:
    process, port = await start_server(tmp_path / "server")
    yield process, port
    if process.process.returncode is None:
        process.signal(signal.SIGTERM)
        await process.finish()


async def _sent_by(client: ChatClient, sender: str) -> Message:
    while True:
        message: Message = await next_of(client, Message)
        if message.sender == sender:
            return message


async def _restart(home: Path, port: int) -> Process:
    """The server of ``home`` again on ``port``. Its file port is any free one: the chat port
    + 1 may meanwhile be some other connection's.
    """
    settings = home / "restart.toml"
    settings.write_text("files_port = 0\n")
    return await Process.start(
        "server.py", "--port", str(port), "--config", str(settings), env=environment(home)
    )


async def _start(tmp_path: Path, port: int, nick: str, *args: str, **size: int) -> Terminal:
    terminal = spawn_client(tmp_path / nick.lower(), port, "--nick", nick, *args, **size)
    await terminal.await_text("[#general]")
    return terminal


async def _register(terminal: Terminal, nick: str) -> None:
    """Register the logged-in ``nick`` with ``/register``, typing the password twice."""
    password = "correct horse battery"
    terminal.child.send("/register\r")
    await terminal.await_text("Password:")
    terminal.child.send(password + "\r")
    await terminal.await_text("Password again:")
    assert "correct" not in terminal.text()  # typed blind: not even its first word shows
    terminal.child.send(password + "\r")
    await terminal.await_text(f"Registered {nick}.")


async def test_a_half_typed_line_survives_a_flood_and_is_sent_whole(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Typist")
    other = await logged_in(port, "Other")
    try:
        await terminal.await_text("Other has joined #general")
        terminal.child.send("half a li")
        await terminal.await_true(
            lambda: terminal.cursor_line() == "[#general] half a li", "the half line typed"
        )
        for n in range(40):  # more than a screen
            await other.send("#general", f"message {n}")
        await terminal.await_text("<Other> message 39")
        await terminal.settle()
        screen = terminal.text()
        assert screen.index("message 38") < screen.index("message 39")
        assert terminal.cursor_line() == "[#general] half a li"
        assert screen.count("half a li") == 1

        terminal.child.send("ne\r")
        assert (await _sent_by(other, "Typist")).text == "half a line"
        await terminal.await_text("<Typist> half a line")

        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await other.close()


async def test_two_rooms_and_a_private_conversation_at_once(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice", columns=110, rows=30)
    bob = await logged_in(port, "Bob")
    try:
        await bob.join("#dev")
        terminal.child.send("/join #dev\r")
        await terminal.await_text("You joined #dev (2 members)")
        assert "3:#dev" in terminal.status_bar()
        # Where the width allows, the rooms and the members of the room in view.
        await terminal.await_text("Members (2)")

        await bob.send("#general", "over in general")
        await terminal.await_true(
            lambda: "Act: 2:#general(1)" in terminal.status_bar(), "#general counted unread"
        )
        await bob.send("Alice", "psst alice, a secret")
        await terminal.await_true(
            lambda: "4:Bob(1!)" in terminal.status_bar(), "a private window with a mention"
        )
        assert b"\x07" in terminal.raw  # the bell: a mention out of view
        assert "psst" not in terminal.text()  # it is in its own window

        terminal.child.send(ALT + "4")
        await terminal.await_text("<Bob> psst alice, a secret")
        assert "[Bob]" in terminal.cursor_line()
        terminal.child.send("Bo" + TAB)
        await terminal.await_true(
            lambda: terminal.cursor_line() == "[Bob] Bob:", "the nickname completed"
        )
        terminal.child.send("yes?\r")
        reply = await _sent_by(bob, "Alice")
        assert (reply.to, reply.text) == ("Bob", "Bob: yes?")

        terminal.child.send(CTRL_P)  # back to #dev
        await terminal.await_true(lambda: "3:#dev" in terminal.status_bar(), "#dev in view")
        terminal.child.send("in dev\r")
        assert (await _sent_by(bob, "Alice")).to == "#dev"

        terminal.child.send("/win 2\r")
        await terminal.await_text("<Bob> over in general")
        await terminal.await_true(lambda: "Act:" not in terminal.status_bar(), "all read")
        terminal.child.send(CTRL_N + CTRL_N)
        await terminal.await_true(lambda: "4:Bob" in terminal.status_bar(), "wrapped to Bob")

        # Up recalls what was typed, /win 2 last.
        terminal.child.send(UP_ARROW)
        await terminal.await_true(
            lambda: terminal.cursor_line() == "[Bob] /win 2", "/win 2 recalled"
        )
        terminal.child.send("\x15/close\r")  # Ctrl+U first: a fresh line
        await terminal.await_true(
            lambda: "4:Bob" not in terminal.text(), "the private window closed"
        )
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()


async def test_completion_of_commands_and_rooms(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice")
    try:
        terminal.child.send("/jo" + TAB)
        await terminal.await_true(
            lambda: terminal.cursor_line() == "[#general] /join", "the command completed"
        )
        terminal.child.send("#gen" + TAB)
        await terminal.await_true(
            lambda: terminal.cursor_line() == "[#general] /join #general", "completed"
        )
        terminal.child.send("\x15/jion #x\r")
        await terminal.await_text("Unknown command /jion. Did you mean /join?")
        terminal.child.send("/help query\r")
        await terminal.await_text("/query [USER]: talk privately with USER")
        terminal.child.send(CTRL_C)
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()


async def test_the_input_history_is_kept_across_runs(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice")
    terminal.child.send("remember me\r")
    await terminal.await_text("<Alice> remember me")
    # A password typed on the line by habit is neither sent nor remembered.
    terminal.child.send("/register hunter2-typed\r")
    await terminal.await_text("Usage: /register")
    terminal.child.send("/passwd hunter2-old hunter2-new\r")
    await terminal.await_text("Usage: /passwd")
    terminal.child.send("/exit\r")
    assert await terminal.exit_status() == 0
    kept = (tmp_path / "alice" / "data" / "parley" / "input_history").read_text()
    assert "remember me" in kept and "hunter2" not in kept

    terminal = await _start(tmp_path, port, "Alice")
    try:
        terminal.child.send(UP_ARROW)
        await terminal.await_true(lambda: terminal.cursor_line() == "[#general] /exit", "/exit")
        terminal.child.send(UP_ARROW)
        await terminal.await_true(
            lambda: terminal.cursor_line() == "[#general] remember me", "recalled"
        )
        terminal.child.send("\x15/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()


async def test_the_terminal_is_restored_on_exit(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    for leave in ("/exit\r", "/quit\r", CTRL_C):
        terminal = await _start(tmp_path, port, "Alice")
        terminal.child.send(leave)
        assert await terminal.exit_status() == 0
        raw = bytes(terminal.raw)
        # Every mode switched on is switched off again after it (the alternate screen, mouse
        # reporting, bracketed paste), and the cursor is visible again.
        for mode in (b"?1049", b"?1000", b"?1006", b"?2004"):
            on, off = raw.rfind(b"\x1b[" + mode + b"h"), raw.rfind(b"\x1b[" + mode + b"l")
            assert off > on, (leave, mode)
        assert raw.rfind(b"\x1b[?25h") > raw.rfind(b"\x1b[?25l"), leave
        assert raw.rfind(b"\x1b[?1049l") > raw.rfind(b"\x1b[?1049h") > 0


async def test_a_peers_control_characters_are_shown_harmlessly(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Victim")
    mallory = await raw_user(port, "Mallory")
    try:
        await terminal.await_text("Mallory has joined")
        attacks = ["\x1b]0;owned\x07", "\x1b[2J", "\u009b31m", "right-to-left \u202eevil"]
        for i, text in enumerate(attacks):
            reply = await mallory.request("send", to="#general", text=text, msg_id=str(i))
            assert reply["type"] == ("error" if i < 3 else "sent")
        await terminal.await_text("<Mallory> right-to-left \ufffdevil")
        await mallory.request("join", room="#den")  # made by Mallory, who may set its topic
        terminal.child.send("/join #den\r")
        await terminal.await_text("You joined #den")
        await mallory.request("topic", room="#den", text="topic \u202ereversed")
        await terminal.await_text("Mallory set the topic: topic \ufffdreversed")
        assert "\u202e".encode() not in terminal.raw
        assert b"owned" not in terminal.raw
    finally:
        terminal.stop()
        await mallory.close()


async def test_ignore_hides_a_user_and_is_remembered(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice")
    bob, carol = await logged_in(port, "Bob"), await logged_in(port, "Carol")
    try:
        terminal.child.send("/ignore bob\r")
        await terminal.await_text("Ignoring bob")
        await bob.send("#general", "you cannot see me")
        await carol.send("#general", "but me you can")
        await terminal.await_text("<Carol> but me you can")
        assert "cannot see me" not in terminal.text()
        ignored = json.loads((tmp_path / "alice/data/parley/ignored.json").read_text())
        assert ignored["ignored"] == ["bob"]
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0

        terminal = await _start(tmp_path, port, "Alice")
        terminal.child.send("/ignore\r")
        await terminal.await_text("Ignored: bob")
        terminal.child.send("/unignore BOB\r")
        await terminal.await_text("BOB is no longer ignored")
        await bob.send("#general", "visible again")
        await terminal.await_text("<Bob> visible again")
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()
        await carol.close()


async def test_a_multi_line_paste_asks_first_when_long(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice")
    bob = await logged_in(port, "Bob")
    try:
        paste = "\x1b[200~{}\x1b[201~"
        terminal.child.send(paste.format("one\ntwo"))
        assert [(await _sent_by(bob, "Alice")).text for _ in range(2)] == ["one", "two"]

        terminal.child.send(paste.format("\n".join(["/part #general", "b", "c", "d", "e"])))
        await terminal.await_text("Send 5 pasted lines to #general one by one? [y/N]")
        terminal.child.send("y")  # one key answers: no Enter
        texts = [(await _sent_by(bob, "Alice")).text for _ in range(5)]
        assert texts == ["/part #general", "b", "c", "d", "e"]  # pasted text is never a command

        terminal.child.send(paste.format("x\ny\nz\nw"))
        await terminal.await_text("Send 4 pasted lines")
        terminal.child.send("n")
        await terminal.await_text("The 4 pasted lines were not sent.")
        assert terminal.cursor_line() == "[#general]"  # the answer did not leak into the line
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()


async def test_a_server_restart_costs_only_a_status_bar_message(tmp_path: Path) -> None:
    home = tmp_path / "server"
    server, port = await start_server(home)
    terminal = await _start(tmp_path, port, "Alice")
    bob = await logged_in(port, "Bob")
    try:
        await bob.join("#dev")
        terminal.child.send("/join #dev\r")
        await terminal.await_text("You joined #dev")
        await bob.send("#dev", "before the restart")
        await terminal.await_text("<Bob> before the restart")
        terminal.child.send("half typed")

        server.signal(signal.SIGTERM)
        assert (await server.finish())[0] == 0
        await terminal.await_true(
            lambda: "reconnecting" in terminal.status_bar(), "reconnecting shown"
        )
        await bob.close()
        server = await _restart(home, port)
        await server.expect(r"Server is running")
        bob = await logged_in(port, "Bob")
        await bob.join("#dev")
        await bob.send("#dev", "while she was away")
        await terminal.await_true(
            lambda: "│ connected" in terminal.status_bar(), "connected again", seconds=30
        )
        await bob.send("#dev", "after she is back")
        await terminal.await_text("<Bob> after she is back")
        await terminal.settle()
        screen = terminal.text()
        for text in ("before the restart", "while she was away", "after she is back"):
            assert screen.count(text) == 1, screen
        assert (
            screen.index("before the restart")
            < screen.index("while she was away")
            < screen.index("after she is back")
        )
        assert terminal.cursor_line() == "[#dev] half typed"  # the line being typed survives
        terminal.child.send(" and sent\r")
        assert (await _sent_by(bob, "Alice")).text == "half typed and sent"
        terminal.child.send(ALT + "1")
        await terminal.await_text("Reconnected to")
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()
        if server.process.returncode is None:
            server.signal(signal.SIGTERM)
            await server.finish()


async def test_plain_mode_on_a_terminal_and_pipes_are_unchanged(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = spawn_client(tmp_path / "alice", port, "--plain", "--nick", "Alice")
    try:
        await terminal.await_text("Welcome to the chat!")
        assert b"\x1b[?1049h" not in terminal.raw  # no full screen
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
    await asyncio.sleep(0)


async def test_scrolling_back_and_forth(tmp_path: Path, server: tuple[Process, int]) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice")
    bob = await logged_in(port, "Bob")
    try:
        for n in range(60):
            await bob.send("#general", f"line {n:02}")
        await terminal.await_text("<Bob> line 59")
        assert "line 10" not in terminal.text()
        terminal.child.send("\x1b[5~" * 2)  # PageUp twice
        await terminal.await_text("<Bob> line 10")
        await terminal.await_true(lambda: "scrolled up" in terminal.status_bar(), "scrolled")
        await bob.send("#general", "while scrolled")  # the view stays where it is
        await terminal.settle()
        assert "<Bob> line 10" in terminal.text()
        terminal.child.send("\x1b[6~" * 3)  # PageDown to the end
        await terminal.await_text("<Bob> while scrolled")
        assert "scrolled up" not in terminal.status_bar()
        # The mouse wheel (SGR reports, as xterm sends them) scrolls too.
        terminal.child.send("\x1b[<64;10;5M" * 4)
        await terminal.await_true(lambda: "scrolled up 12" in terminal.status_bar(), "wheel up")
        terminal.child.send("\x1b[<65;10;5M" * 4)
        await terminal.await_true(lambda: "scrolled up" not in terminal.status_bar(), "wheel down")
        terminal.child.send("/clear\r")
        await terminal.await_true(lambda: "line 59" not in terminal.text(), "cleared")
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()


async def test_the_settings_file_and_no_color(tmp_path: Path, server: tuple[Process, int]) -> None:
    _, port = server
    home = tmp_path / "alice"
    settings = home / "config" / "parley" / "client.toml"
    settings.parent.mkdir(parents=True)
    # The file names the server, the nickname and the clock; the command line names nothing.
    settings.write_text(
        f'port = {port}\nnick = "Alice"\ntimestamp_format = "%H:%M:%S"\ntheme = "light"\n'
    )
    terminal = spawn_client(home, None, env={"NO_COLOR": "1"})
    try:
        await terminal.await_text("[#general]")
        terminal.child.send("tick\r")
        await terminal.await_true(
            lambda: re.search(r"\d\d:\d\d:\d\d <Alice> tick", terminal.text()) is not None,
            "seconds in the time stamp",
        )
        # NO_COLOR: attributes (bold, reverse) remain, colours do not.
        assert re.search(rb"\x1b\[[0-9;]*\b(3[0-7]|9[0-7]|38)\b[0-9;]*m", terminal.raw) is None
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()

    settings.write_text("prot = 7976\n")
    refused = spawn_client(home, port)
    assert await refused.exit_status() == 2
    assert b"unknown setting 'prot'" in refused.raw


async def test_register_in_the_screen_then_a_revoked_login_stops_reconnecting(
    tmp_path: Path,
) -> None:
    home = tmp_path / "server"
    server, port = await start_server(home)
    terminal = await _start(tmp_path, port, "Alice")
    try:
        await _register(terminal, "Alice")

        server.signal(signal.SIGTERM)
        assert (await server.finish())[0] == 0
        # Meanwhile an administrator resets the account: its saved logins are revoked.
        reset = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "parley",
            "admin",
            "--data-dir",
            str(home / "data" / "parley"),
            "reset",
            "alice",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**environment(home), "PYTHONPATH": str(ROOT / "src")},
        )
        out, _ = await reset.communicate(b"a brand new password\n")
        assert reset.returncode == 0, out
        server = await _restart(home, port)
        await server.expect(r"Server is running")
        await terminal.await_true(
            lambda: "offline:" in terminal.status_bar(), "reconnecting given up", seconds=30
        )
        terminal.child.send(ALT + "1")
        await terminal.await_text("Offline:")
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 1
    finally:
        terminal.stop()
        if server.process.returncode is None:
            server.signal(signal.SIGTERM)
            await server.finish()


async def test_files_in_the_full_screen(tmp_path: Path, server: tuple[Process, int]) -> None:
    _, port = server
    home = tmp_path / "alice"
    downloads = tmp_path / "alice-downloads"
    settings = home / "config" / "parley" / "client.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text(f'downloads_dir = "{downloads}"\n')
    terminal = await _start(tmp_path, port, "Alice")
    bob = await logged_in(port, "Bob")
    try:
        source = tmp_path / "notes.txt"
        source.write_bytes(b"twelve bytes")
        from parley.client.transfer import upload

        file_id = await upload(bob, source, "Alice")
        await terminal.await_true(lambda: "3:Bob(1)" in terminal.status_bar(), "a window")
        terminal.child.send(ALT + "3")
        await terminal.await_text(f"* Bob shared notes.txt (12 bytes) — /get {file_id[:8]}")
        terminal.child.send(f"/get {file_id[:6]}\r")
        await terminal.await_text("(SHA-256 checked)")
        assert (downloads / "notes.txt").read_bytes() == b"twelve bytes"

        terminal.child.send(f"/send Bob {source}\r")
        await terminal.await_text("Shared notes.txt with Bob")
        announced = await _sent_by(bob, "Alice")
        assert announced.text.startswith("/file ")
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()


async def test_the_first_screen_shows_the_rooms_history_and_where_to_start(
    tmp_path: Path,
) -> None:
    settings = tmp_path / "server.toml"
    settings.write_text('motd = "Be kind to each other."\n')
    server, port = await start_server(tmp_path / "server", "--config", str(settings))
    writer = await raw_user(port, "Writer")
    for n in range(1, 4):
        await writer.request("send", to="#general", text=f"earlier {n}", msg_id=f"e{n}")
    terminal = await _start(tmp_path, port, "Alice")
    try:
        for text in ("<Writer> earlier 1", "<Writer> earlier 3", "Be kind to each other.",
                     "/help lists the commands"):  # fmt: skip
            await terminal.await_text(text)
        await writer.request("send", to="#general", text="live one", msg_id="live")
        await terminal.await_text("<Writer> live one")
        screen = terminal.text()
        assert screen.count("earlier 1") == 1
        assert screen.index("earlier 3") < screen.index("live one")

        # /close in the status window closes nothing, and leaves no room.
        terminal.child.send(ALT + "1")
        await terminal.await_text("Connected to")
        terminal.child.send("/close\r")
        await terminal.await_text("The status window stays open: /part leaves a room.")
        await writer.request("send", to="#general", text="still a member", msg_id="still")
        terminal.child.send(ALT + "2")
        await terminal.await_text("<Writer> still a member")
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await writer.close()
        server.signal(signal.SIGTERM)
        await server.finish()


async def test_history_goes_above_in_order_as_messages_once(tmp_path: Path) -> None:
    settings = tmp_path / "server.toml"
    settings.write_text("flood_burst_requests = 1000\nflood_debt_requests = 2000\n")
    server, port = await start_server(tmp_path / "server", "--config", str(settings))
    writer = await raw_user(port, "Writer")
    for n in range(1, 61):
        sent = await writer.request("send", to="#general", text=f"old {n:02}", msg_id=f"o{n}")
        assert sent["type"] == "sent", sent
    terminal = await _start(tmp_path, port, "Alice")
    try:
        await terminal.await_text("<Writer> old 60")  # the last 50 came with the login
        terminal.child.send("/history 5\r")
        await terminal.await_text("<Writer> old 06")
        await terminal.settle()
        screen = terminal.text()
        assert screen.index("old 06") < screen.index("old 07") < screen.index("old 10")
        assert screen.index("old 10") < screen.index("old 11")
        assert "*** [" not in screen and "[#general] Writer" not in screen
        terminal.child.send("/history\r")
        await terminal.await_text("<Writer> old 01")
        terminal.child.send("/history\r")
        await terminal.await_text("The history of #general starts here.")
        # Saying something brings the view back down to the newest lines.
        terminal.child.send("back to the present\r")
        await terminal.await_text("<Alice> back to the present")
        assert "starts here" not in terminal.text()
        terminal.child.send("/clear\r")
        await writer.request("send", to="#general", text="newest", msg_id="newest")
        await terminal.await_text("<Writer> newest")
        assert terminal.text().count("newest") == 1
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await writer.close()
        server.signal(signal.SIGTERM)
        await server.finish()


async def test_the_prompt_comes_back_whole_after_a_long_line_is_cleared(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice")
    try:
        terminal.child.send("word " * 40)
        await terminal.await_true(
            lambda: terminal.cursor_line().endswith("word word"), "the long line typed"
        )
        terminal.child.send("\x15")  # Ctrl+U
        await terminal.await_true(
            lambda: terminal.cursor_line() == "[#general]", "the whole prompt back"
        )
        terminal.child.send("hi")
        await terminal.await_true(lambda: terminal.cursor_line() == "[#general] hi", "hi typed")
        terminal.child.send("\x15/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()


async def test_with_several_matches_the_first_tab_completes_and_the_next_cycles(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice")
    bob = await logged_in(port, "Bob")
    bobby = await logged_in(port, "Bobby")
    try:
        await terminal.await_text("Bobby has joined #general")
        terminal.child.send("Bo" + TAB)
        await terminal.await_true(
            lambda: terminal.cursor_line() in ("[#general] Bob:", "[#general] Bobby:"),
            "a nickname completed on the first Tab",
        )
        first = terminal.cursor_line()
        terminal.child.send(TAB)
        await terminal.await_true(
            lambda: terminal.cursor_line() not in (first, "[#general] Bo"), "the other one"
        )
        assert terminal.cursor_line() in ("[#general] Bob:", "[#general] Bobby:")
        terminal.child.send("\x15/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()
        await bobby.close()


async def test_a_pasted_line_past_the_frame_limit_is_refused_and_the_client_stays(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    terminal = await _start(tmp_path, port, "Alice")
    bob = await logged_in(port, "Bob")
    try:
        terminal.child.send("\x1b[200~" + "x" * 70_000 + "\x1b[201~")
        terminal.child.send("\r")
        await terminal.await_text(
            "Not sent, your line is kept: A message is at most 4,000 characters", seconds=30
        )
        # Still there to shorten or copy: nothing typed is lost.
        assert set(terminal.cursor_line()) == {"x"}  # the line scrolled to its end
        terminal.child.send("\x15still here\r")
        assert (await _sent_by(bob, "Alice")).text == "still here"
        assert "reconnecting" not in terminal.status_bar()
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()


async def test_history_already_read_is_not_counted_unread_at_login(
    tmp_path: Path, server: tuple[Process, int]
) -> None:
    _, port = server
    writer = await raw_user(port, "Writer")
    assert (await writer.request("join", room="#dev"))["type"] == "room"
    terminal = await _start(tmp_path, port, "Alice")
    try:
        await _register(terminal, "Alice")
        terminal.child.send("/join #dev\r")
        await terminal.await_text("[#dev]")
        for n in (1, 2):
            await writer.request("send", to="#dev", text=f"read {n}", msg_id=f"r{n}")
        await terminal.await_text("<Writer> read 2")
        terminal.child.send("my own line, read up to here\r")
        await terminal.await_text("<Alice> my own line, read up to here")
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
        terminal.stop()

        # Back with the saved login: #dev's history is shown, none of it counted unread.
        terminal = await _start(tmp_path, port, "Alice")
        terminal.child.send(ALT + "1")
        await terminal.await_text("Connected to")
        await terminal.settle(1.0)
        assert "Act:" not in terminal.status_bar(), terminal.status_bar()
        # History comes before live lines: counted wrongly, it would be in this count too.
        await writer.request("send", to="#dev", text="news", msg_id="news")
        await terminal.await_true(
            lambda: re.search(r"Act: \d:#dev\(1\)", terminal.status_bar()) is not None,
            "#dev counted unread once",
        )
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await writer.close()
