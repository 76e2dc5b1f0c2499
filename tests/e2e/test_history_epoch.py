"""The history epoch, on a real server process and a real SQLite file: a start after a run with
``sqlite_synchronous = "normal"`` that did not stop cleanly raises it (and says so), a clean stop
or ``"full"`` keeps it, and it outlives restarts. A real client that reconnects across a raised
epoch shows the history the server has, not the lines it showed before as if nothing happened.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from processes import Process, environment, start_server
from pty_screen import spawn_client

from support import RawClient, assert_still_serving, logged_in

RAISED = "History epoch raised to"
# The start of what the client says (the rest may wrap).
RELOADED = "The server restarted after losing its last messages"


def _settings(home: Path, synchronous: str) -> list[str]:
    """Server arguments: the data dir of ``home`` and a settings file with ``synchronous``."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "server.toml"
    # Any free file port: the chat port + 1 may be someone else's by the next start.
    config.write_text(f'sqlite_synchronous = "{synchronous}"\nfiles_port = 0\n')
    return ["--data-dir", str(home / "data"), "--config", str(config)]


async def _welcome_epoch(port: int) -> int | None:
    """The ``history_epoch`` of the server's ``welcome``; None when it leaves it out."""
    client = await RawClient.open(port)
    try:
        client.send(type="hello", id=1, versions=[1])
        welcome = await client.expect("welcome", id=1)
        return welcome.get("history_epoch")
    finally:
        await client.close()


async def _killed(server: Process) -> str:
    server.signal(signal.SIGKILL)
    _, out, _ = await server.finish()
    return out


async def _stopped(server: Process) -> str:
    server.signal(signal.SIGTERM)
    status, out, _ = await server.finish()
    assert status == 0
    return out


async def test_a_normal_run_that_did_not_stop_cleanly_raises_the_epoch(tmp_path: Path) -> None:
    args = _settings(tmp_path, "normal")
    server, port = await start_server(tmp_path, *args)
    try:
        assert await _welcome_epoch(port) is None  # 0: left out, as for an older server
        # Something stored, as a run that lost its last commits would have.
        writer = await logged_in(port, "Writer")
        await writer.send("#general", "before the crash")
        await writer.close()
        assert RAISED not in await _killed(server)

        server, port = await start_server(tmp_path, *args)
        # Said at length in the log (a warning, while starting), and in the banner.
        warned = [line for line in server.lines if "WARNING" in line and RAISED in line]
        assert len(warned) == 1 and 'sqlite_synchronous = "normal"' in warned[0], server.lines
        await server.expect(rf"{RAISED} 1: the previous run did not stop cleanly")
        assert await _welcome_epoch(port) == 1
        assert await _welcome_epoch(port) == 1  # once per start, not per connection

        # A clean stop keeps it, through any number of starts.
        await _stopped(server)
        server, port = await start_server(tmp_path, *args)
        assert await _welcome_epoch(port) == 1
        await _stopped(server)
        server, port = await start_server(tmp_path, *args)
        assert await _welcome_epoch(port) == 1

        # The next crash raises it again, from where it was.
        await _killed(server)
        server, port = await start_server(tmp_path, *args)
        await server.expect(rf".*{RAISED} 2:")
        assert await _welcome_epoch(port) == 2
        out = await _stopped(server)
    finally:
        server.kill()
    assert RAISED not in out.split(f"{RAISED} 2:")[-1]


async def test_a_full_run_keeps_the_epoch_through_kills(tmp_path: Path) -> None:
    args = _settings(tmp_path, "full")
    server, port = await start_server(tmp_path, *args)
    try:
        writer = await logged_in(port, "Writer")
        await writer.send("#general", "kept on the disk")
        await writer.close()
        out = await _killed(server)
        for _ in range(2):
            server, port = await start_server(tmp_path, *args)
            assert await _welcome_epoch(port) is None
            out += await _killed(server)
        # Switched to "normal" after a killed "full" run: nothing of that run could be lost.
        server, port = await start_server(tmp_path, *_settings(tmp_path, "normal"))
        assert await _welcome_epoch(port) is None
        out += await _stopped(server)
    finally:
        server.kill()
    assert RAISED not in out


async def test_a_resume_beyond_the_last_seq_gets_an_empty_page(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path, *_settings(tmp_path, "normal"))
    try:
        raw = await RawClient.open(port)
        await raw.login("Resumer")
        for n in range(3):
            sent = await raw.request("send", to="#general", text=f"m{n}", msg_id=f"m{n}")
            assert sent["type"] == "sent"
        # As a client would that saw seqs a crash took back.
        for after in (4, 1000, 2**53):
            page = await raw.request("history", to="#general", after=after)
            assert page["type"] == "history" and page.get("messages", []) == [], page
            assert not page.get("more"), page
        refused = await raw.request("history", to="#general", after=2**53 + 1)
        assert refused["type"] == "error" and refused["code"] == "invalid-message", refused
        page = await raw.request("history", to="#general", after=1)
        assert [m["text"] for m in page["messages"]] == ["m1", "m2"]
        await raw.close()
        await assert_still_serving(port)
    finally:
        await _stopped(server)


def _lose_last_messages(database: Path, conversation: str, keep: int) -> None:
    """What a power cut under "normal" can do: the conversation's messages after seq ``keep``
    are gone, and its numbering is back at ``keep``.
    """
    db = sqlite3.connect(database)
    try:
        with db:
            db.execute(
                "DELETE FROM messages WHERE conversation = ? AND seq > ?", (conversation, keep)
            )
            db.execute("UPDATE conversations SET last_seq = ? WHERE id = ?", (keep, conversation))
    finally:
        db.close()


async def test_a_client_shows_the_stored_history_after_the_server_lost_messages(
    tmp_path: Path,
) -> None:
    home = tmp_path / "server"
    args = _settings(home, "normal")
    server, port = await start_server(home, *args)
    terminal = spawn_client(tmp_path / "reader", port, "--nick", "Reader")
    writer = None
    try:
        await terminal.await_text("[#general]")
        writer = await logged_in(port, "Writer")
        for text in ("kept one", "lost two", "lost three"):
            await writer.send("#general", text)
        await terminal.await_text("<Writer> lost three")
        await writer.close()
        writer = None

        await _killed(server)
        await terminal.await_true(
            lambda: "reconnecting" in terminal.status_bar(), "reconnecting shown"
        )
        _lose_last_messages(home / "data" / "parley.sqlite3", "#general", keep=1)
        server = await Process.start("server.py", "--port", str(port), *args, env=environment(home))
        await server.expect(rf".*{RAISED} 1:")
        await terminal.await_text(RELOADED, seconds=40)
        await terminal.await_true(
            lambda: "│ connected" in terminal.status_bar(), "connected again", seconds=30
        )
        # The seqs of the lost messages go to new ones: shown, and after the reloaded history.
        writer = await logged_in(port, "Writer")
        await writer.send("#general", "new two")
        await terminal.await_text("<Writer> new two")
        await terminal.settle()
        screen = terminal.text()
        assert "lost two" not in screen and "lost three" not in screen, screen
        assert screen.count(RELOADED) == 1, screen
        assert (
            screen.index(RELOADED)
            < screen.index("<Writer> kept one")
            < screen.index("<Writer> new two")
        ), screen
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        if writer is not None:
            await writer.close()
        if server.process.returncode is None:
            await _stopped(server)


async def test_the_line_by_line_client_says_so_and_prints_the_stored_history(
    tmp_path: Path,
) -> None:
    home = tmp_path / "server"
    args = _settings(home, "normal")
    server, port = await start_server(home, *args)
    terminal = spawn_client(tmp_path / "reader", port, "--plain", "--nick", "Reader")
    writer = None
    try:
        await terminal.await_text("Welcome to the chat!")
        writer = await logged_in(port, "Writer")
        for text in ("kept one", "lost two"):
            await writer.send("#general", text)
        await terminal.await_text("Writer: lost two")
        await writer.close()
        writer = None

        await _killed(server)
        await terminal.await_text("Reconnecting")
        _lose_last_messages(home / "data" / "parley.sqlite3", "#general", keep=1)
        server = await Process.start("server.py", "--port", str(port), *args, env=environment(home))
        await terminal.await_text(RELOADED, seconds=40)
        writer = await logged_in(port, "Writer")
        await writer.send("#general", "new two")
        await terminal.await_text("Writer: new two")
        await terminal.settle()
        # Printed lines cannot be taken back: after the notice comes what the server has.
        after = terminal.text().split(RELOADED, 1)[1]
        assert "Writer: kept one" in after and "lost two" not in after, after
        assert after.index("Writer: kept one") < after.index("Writer: new two"), after
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        if writer is not None:
            await writer.close()
        if server.process.returncode is None:
            await _stopped(server)
