"""The desktop app against a real server over TLS, driven the way a user drives it: typing,
clicking, dropping a file; read back from the widgets.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from desktop_support import Peer, ServerProcess, wait_until
from desktop_support import close_window as _close
from desktop_support import open_window as _open
from desktop_support import type_line as _type
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from parley.client.pins import CertificateChanged
from parley.client.settings import ClientSettings
from parley.gui import app as gui_app
from parley.paths import default_config_dir


def test_sign_in_chat_privately_and_see_unread_badges(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, asked = _open(qt_loop, server, "Alice", monkeypatch)
    assert len(asked) == 1  # the first connection shows the fingerprint to accept
    pins = (default_config_dir() / "known_servers").read_text()
    assert asked[0] in pins  # the same pin file as the terminal client
    bob = Peer(server.port, "Bob")
    try:
        wait_until(qt_loop, lambda: window.members.count() == 2, "Bob in the member list")
        bob.call(bob.client.send("#general", "hello alice"))
        wait_until(qt_loop, lambda: "Bob  hello alice" in window.view.toPlainText(), "Bob's line")

        _type(qtbot, window, "hi bob")
        wait_until(qt_loop, lambda: any(m.text == "hi bob" for m in bob.messages), "sent")
        # A line the server would refuse stays in the input field, with the reason.
        _type(qtbot, window, "y" * 4_001)
        assert window.input.text() == "y" * 4_001
        assert "Not sent, your line is kept: A message is at most 4,000 characters" in (
            window.view.toPlainText()
        )
        window.input.clear()

        # A private conversation opens from the member list.
        names = [window.members.item(i).text() for i in range(window.members.count())]
        assert "Bob" in names, names
        bob_item = window.members.findItems("Bob", Qt.MatchFlag.MatchExactly)[0]
        window.members.itemActivated.emit(bob_item)
        assert window.chat.query == "Bob"
        _type(qtbot, window, "just us")
        wait_until(
            qt_loop,
            lambda: any(m.text == "just us" and m.to == "Bob" for m in bob.messages),
            "the private message",
        )
        # Back in the room, with the window in the background: Bob's private answer is
        # counted on his conversation, and notified.
        window.select(2)
        monkeypatch.setattr(window, "isActiveWindow", lambda: False)
        bob.call(bob.client.send("Alice", "alice, psst"))
        wait_until(
            qt_loop,
            lambda: "Bob [@1]" in window.conversations.names(),
            "an unread badge with a mention",
        )
        assert ("Bob, direct message", "alice, psst") in window.notifications
        # Tab completes a nickname; Up recalls what was sent.
        window.input.setText("Bo")
        qtbot.keyClick(window.input, Qt.Key.Key_Tab)  # type: ignore[attr-defined]
        assert window.input.text() == "Bob: "
        window.input.clear()
        qtbot.keyClick(window.input, Qt.Key.Key_Up)  # type: ignore[attr-defined]
        assert window.input.text() == "just us"
    finally:
        bob.close()
        _close(qt_loop, window)


def test_peer_markup_is_shown_as_text(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, _ = _open(qt_loop, server, "Alice", monkeypatch)
    bob = Peer(server.port, "Bob")
    try:
        hostile = [
            '<img src="http://127.0.0.1:1/x.png" onerror="alert(1)">',
            '<a href="javascript:alert(1)">click</a>',
            "<b>bold?</b> &amp; <script>x</script>",
            "w" * 4000,
        ]
        for text in hostile:
            bob.call(bob.client.send("#general", text))
        wait_until(qt_loop, lambda: "w" * 4000 in window.view.toPlainText(), "the long line")
        shown = window.view.toPlainText()
        for text in hostile:
            assert text in shown  # every character, as typed
        html = window.view.toHtml()
        assert "<img" not in html  # escaped, never an element
        assert 'href="javascript' not in html  # no link but those we make
    finally:
        bob.close()
        _close(qt_loop, window)


def test_send_a_file_with_progress_and_fetch_one(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    downloads = tmp_path / "downloads"
    window, _ = _open(
        qt_loop, server, "Alice", monkeypatch, ClientSettings(downloads_dir=str(downloads))
    )
    shares: list[float] = []
    shown = window.progress

    def record(key: str, text: str | None, share: float = 0.0) -> None:
        if text is not None:
            shares.append(share)
        shown(key, text, share)

    monkeypatch.setattr(window, "progress", record)
    window.chat.screen = window  # the commands see the recording one
    bob = Peer(server.port, "Bob")
    try:
        source = tmp_path / "photo.jpg"
        source.write_bytes(bytes(range(256)) * 8000)
        window.send_file(source)
        wait_until(
            qt_loop, lambda: "Shared photo.jpg with #general" in window.view.toPlainText(), "shared"
        )
        assert shares[-1] == 1.0  # the bar reached 100 %
        wait_until(qt_loop, lambda: any(m.text.startswith("/file ") for m in bob.messages), "told")

        # Bob shares one back; a click on its link downloads it (opening is the desktop's).
        opened: list[str] = []
        monkeypatch.setattr(
            "parley.gui.main_window.QDesktopServices.openUrl",
            lambda url: opened.append(url.toLocalFile()),
        )
        from parley.client.transfer import upload

        back = tmp_path / "reply.txt"
        back.write_text("thanks")
        file_id = bob.call(upload(bob.client, back, "#general"))
        wait_until(qt_loop, lambda: "Bob shared reply.txt" in window.view.toPlainText(), "seen")
        from PySide6.QtCore import QUrl

        window.view.anchorClicked.emit(QUrl(f"parley-file:{file_id}"))
        wait_until(qt_loop, lambda: bool(opened), "downloaded and opened")
        assert Path(opened[0]) == downloads / "reply.txt"
        assert (downloads / "reply.txt").read_text() == "thanks"
    finally:
        bob.close()
        _close(qt_loop, window)


def test_reconnects_after_the_server_restarts(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, _ = _open(qt_loop, server, "Alice", monkeypatch)
    server.stop()
    wait_until(qt_loop, lambda: "reconnecting" in window.state_label.text(), "reconnecting")
    server.start()
    wait_until(qt_loop, lambda: window.state_label.text() == "connected", "connected", 30)
    bob = Peer(server.port, "Bob")
    try:
        bob.call(bob.client.send("#general", "welcome back"))
        wait_until(qt_loop, lambda: "Bob  welcome back" in window.view.toPlainText(), "live")
    finally:
        bob.close()
        _close(qt_loop, window)


def test_history_a_crash_took_back_is_replaced(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.stop()
    # Commits that do not wait for the disk: a run that does not stop cleanly raises the epoch.
    server.settings = 'sqlite_synchronous = "normal"\n'
    server.start()
    window, _ = _open(qt_loop, server, "Alice", monkeypatch)
    bob = Peer(server.port, "Bob")
    try:
        for text in ("kept one", "lost two"):
            bob.call(bob.client.send("#general", text))
        wait_until(qt_loop, lambda: "Bob  lost two" in window.view.toPlainText(), "shown")
    finally:
        bob.close()
    server.kill()
    wait_until(qt_loop, lambda: "reconnecting" in window.state_label.text(), "reconnecting")
    # What a power cut can do under "normal": the last message is gone, its seq free again.
    [database] = server.home.rglob("parley.sqlite3")
    db = sqlite3.connect(database)
    with db:
        db.execute("DELETE FROM messages WHERE conversation = '#general' AND seq > 1")
        db.execute("UPDATE conversations SET last_seq = 1 WHERE id = '#general'")
    db.close()
    server.start()
    try:
        wait_until(qt_loop, lambda: window.state_label.text() == "connected", "connected", 30)
        reloaded = "The server restarted after losing its last messages"
        wait_until(qt_loop, lambda: reloaded in window.view.toPlainText(), "said", 30)
        wait_until(qt_loop, lambda: "Bob  kept one" in window.view.toPlainText(), "reloaded")
        shown = window.view.toPlainText()
        assert "lost two" not in shown and shown.count(reloaded) == 1, shown
    finally:
        _close(qt_loop, window)


def test_a_changed_certificate_is_refused(
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pins = default_config_dir() / "known_servers"
    pins.parent.mkdir(parents=True)
    pins.write_text(f"127.0.0.1:{server.port} " + ":".join(["AA"] * 32) + "\n")
    warned: list[str] = []

    async def warn(parent: object, changed: CertificateChanged) -> None:
        warned.append(changed.explain())

    monkeypatch.setattr(gui_app, "warn_changed", warn)
    session = gui_app.Session("127.0.0.1", server.port, default_config_dir())
    status = qt_loop.run_until_complete(
        gui_app.open_window(session, "Alice", "", ClientSettings(), QWidget())
    )
    assert status == gui_app.EXIT_CERTIFICATE_CHANGED
    assert "has CHANGED" in warned[0]


def test_scrolling_to_the_top_reads_earlier_history(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob = Peer(server.port, "Bob")
    window, _ = _open(qt_loop, server, "Alice", monkeypatch)
    try:
        bob.call(bob.client.join("#dev"))
        for n in range(80):
            bob.call(bob.client.send("#dev", f"old {n:02}"))
        _type(qtbot, window, "/join #dev")
        wait_until(qt_loop, lambda: "Bob  old 79" in window.view.toPlainText(), "the join's page")
        assert "Bob  old 29" not in window.view.toPlainText()  # 50 came with the join
        window.view.verticalScrollBar().setValue(0)  # the user scrolls to the top
        wait_until(qt_loop, lambda: "Bob  old 00" in window.view.toPlainText(), "older ones")
        shown = window.view.toPlainText()
        assert all(shown.count(f"Bob  old {n:02}\n") + shown.endswith(f"Bob  old {n:02}") == 1
                   for n in range(80))  # fmt: skip
        assert shown.index("old 00") < shown.index("old 50") < shown.index("old 79")
    finally:
        bob.close()
        _close(qt_loop, window)


def test_drop_a_file_and_switch_with_the_keyboard(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window, _ = _open(qt_loop, server, "Alice", monkeypatch)
    bob = Peer(server.port, "Bob")
    try:
        dropped = tmp_path / "dropped.txt"
        dropped.write_text("from the desktop")
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(dropped))])
        drop = QDropEvent(
            QPointF(10, 10),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        window.dropEvent(drop)
        wait_until(
            qt_loop,
            lambda: any(m.text.startswith('/file {"id"') and "dropped.txt" in m.text
                        for m in bob.messages),
            "the dropped file shared",
        )  # fmt: skip

        # Ctrl+PgDown and Ctrl+PgUp step through the conversations.
        assert window.windows.current.name == "#general"
        qtbot.keyClick(window, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
        assert window.windows.current is window.windows.status
        qtbot.keyClick(window, Qt.Key.Key_PageUp, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
        assert window.windows.current.name == "#general"
    finally:
        bob.close()
        _close(qt_loop, window)


def test_the_rooms_recent_history_is_shown_at_sign_in(
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob = Peer(server.port, "Bob")
    for n in range(3):
        bob.call(bob.client.send("#general", f"said before {n}"))
    window, _ = _open(qt_loop, server, "Alice", monkeypatch)
    try:
        wait_until(qt_loop, lambda: "said before 2" in window.view.toPlainText(), "the history")
        bob.call(bob.client.send("#general", "said after"))
        wait_until(qt_loop, lambda: "said after" in window.view.toPlainText(), "the live line")
        shown = window.view.toPlainText()
        # Each once, oldest first, and the live line after them.
        assert [shown.count(f"said before {n}") for n in range(3)] == [1, 1, 1]
        positions = [shown.index(f"said before {n}") for n in range(3)]
        assert positions == sorted(positions)
        assert positions[-1] < shown.index("said after")
    finally:
        bob.close()
        _close(qt_loop, window)
