"""What the window shows, against a real server over TLS: the sidebar's sections and badges,
the header, the members with presence and roles, mentions, day separators, scrolling that
follows the bottom, wrapping, emoji, /help, reconnecting, and the keys.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from desktop_support import (
    Peer,
    ServerProcess,
    close_window,
    open_window,
    type_line,
    wait_until,
)
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontDatabase
from PySide6.QtWidgets import QApplication

from parley.client import windows as model
from parley.client.transfer import upload
from parley.gui import emoji, help
from parley.gui.message_view import FILE_LINK
from parley.gui.theme import DARK, LIGHT

PASSWORD = "correct horse 42"


def test_sidebar_header_and_members_with_presence_and_roles(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob = Peer(server.port, "Bob")
    bob.call(bob.client.register(PASSWORD))
    bob.close()
    server.admin("role", "Bob", "moderator")
    bob = Peer(server.port, "Bob", PASSWORD)
    carol = Peer(server.port, "Carol")
    carol.call(carol.client.away('<img src="file:///etc/passwd"> lunch'))
    window, _ = open_window(qt_loop, server, "Alice", monkeypatch)
    try:
        wait_until(
            qt_loop,
            lambda: (
                window.members_pane.rows()
                == ["Bob  · mod [online]", "Alice [online]", "Carol [away]"]
            ),
            "staff first, then the others, with presence",
        )
        assert window.conversations.sections() == {"ROOMS": ["#general"]}
        assert window.header.name.text() == "#general"
        assert window.header.count.text() == "3 members"
        assert window.members_pane.heading.text() == "Members — 3"
        # Carol's away text is a tooltip: shown as typed, never an image.
        tip = window.members.item(2).toolTip()
        assert "<img" not in tip and "&lt;img src=&quot;file:///etc/passwd&quot;&gt;" in tip

        # A private conversation: under Direct messages, with a badge while out of view, and
        # no members pane.
        bob.call(bob.client.send("Alice", "a word in private"))
        wait_until(qt_loop, lambda: "Bob [1]" in window.conversations.names(), "a badge")
        assert window.conversations.sections() == {
            "ROOMS": ["#general"],
            "DIRECT MESSAGES": ["Bob"],
        }
        qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
        assert window.windows.current.name == "Bob"
        assert window.header.name.text() == "Bob" and window.header.count.text() == ""
        assert window.members_pane.isHidden()
        assert "Bob" in window.conversations.names()  # read: no badge any more
        # The server's own window has no members pane either.
        qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
        assert window.header.name.text() == "Server messages"
        assert window.members_pane.isHidden()
    finally:
        bob.close()
        carol.close()
        close_window(qt_loop, window)


def test_mentions_day_separators_wrapping_and_emoji(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, _ = open_window(qt_loop, server, "Alice", monkeypatch)
    window.resize(1000, 640)
    bob = Peer(server.port, "Bob")
    try:
        room = window.windows.current
        yesterday = time.time() - 86400
        window.add(room, model.Line(yesterday, "from yesterday", model.Style.MESSAGE, "Bob"))
        words = " ".join(f"operators{n}" for n in range(60))
        bob.call(bob.client.send("#general", "alice: are you there?"))
        bob.call(bob.client.send("#general", words))
        bob.call(bob.client.send("#general", "x" * 3000))
        wait_until(qt_loop, lambda: "x" * 3000 in window.view.toPlainText(), "the lines")
        shown = window.view.toPlainText()
        assert shown.index("Yesterday") < shown.index("from yesterday") < shown.index("Today")

        document = window.view.document()
        mention = document.find("are you there?").block()
        background = mention.blockFormat().background().color()
        assert background == QColor(window.theme.mention_background)
        assert background != window.palette().color(window.palette().ColorRole.Highlight)
        plain = document.find("from yesterday").block()
        assert plain.blockFormat().background().style() == Qt.BrushStyle.NoBrush

        # Wrapped at word boundaries, every wrapped line indented under the text.
        block = document.find("operators0 ").block()
        layout = block.layout()
        assert layout.lineCount() > 2
        indent = block.blockFormat().leftMargin()
        assert indent > 0
        for number in range(1, layout.lineCount()):
            line = layout.lineAt(number)
            assert block.text()[line.textStart() - 1] == " ", block.text()[line.textStart() :]
            assert abs(line.x() - indent) < 1
        # A word longer than the view is broken (nothing else is): no sideways scrolling.
        assert window.view.horizontalScrollBar().maximum() == 0

        # Emoji: a :shortcode: is sent as the emoji, Tab completes one, the picker inserts one,
        # and there is a font to draw them with.
        type_line(qtbot, window, "ship it :rocket:")
        wait_until(
            qt_loop, lambda: any(m.text == "ship it 🚀" for m in bob.messages), "the emoji sent"
        )
        window.input.setText("yes :thumbs_u")
        qtbot.keyClick(window.input, Qt.Key.Key_Tab)  # type: ignore[attr-defined]
        assert window.input.text() == "yes 👍"
        window.input.clear()
        grid = window.emoji_button.menu().actions()[0].defaultWidget()  # type: ignore[attr-defined]
        first = grid.layout().itemAt(0).widget()
        qtbot.mouseClick(first, Qt.MouseButton.LeftButton)  # type: ignore[attr-defined]
        assert window.input.text() == emoji.picker()[0][0]
        assert any("emoji" in family.lower() for family in QFontDatabase.families())
    finally:
        bob.close()
        close_window(qt_loop, window)


def test_the_view_follows_the_bottom_unless_scrolled_up(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, _ = open_window(qt_loop, server, "Alice", monkeypatch)
    window.resize(1000, 640)
    bob = Peer(server.port, "Bob")
    view, bar = window.view, window.view.verticalScrollBar()
    try:
        for n in range(120):
            bob.call(bob.client.send("#general", f"line {n}"))
        wait_until(qt_loop, lambda: "line 119" in view.toPlainText(), "the lines")
        wait_until(qt_loop, lambda: bar.maximum() > 0 and view.at_end(), "at the bottom")
        assert view.jump.isHidden()

        # A shared file's line, with its link, comes into view once laid out.
        shared = tmp_path / "notes.txt"
        shared.write_text("notes")
        bob.call(upload(bob.client, shared, "#general"))
        wait_until(qt_loop, lambda: FILE_LINK in view.toPlainText(), "the file's link")
        wait_until(qt_loop, view.at_end, "the link in view")

        # Scrolled up, the view stays put and offers the jump.
        bar.setValue(bar.maximum() // 2)
        where = bar.value()
        bob.call(bob.client.send("#general", "while you read"))
        wait_until(qt_loop, lambda: "while you read" in view.toPlainText(), "the new line")
        qt_loop.run_until_complete(asyncio.sleep(0.2))
        assert bar.value() == where
        assert view.jump.isVisible()
        qtbot.mouseClick(view.jump, Qt.MouseButton.LeftButton)  # type: ignore[attr-defined]
        assert view.at_end() and view.jump.isHidden()
        # PgUp in the input line scrolls the messages, Ctrl+End comes back.
        window.input.setFocus()
        qtbot.keyClick(window.input, Qt.Key.Key_PageUp)  # type: ignore[attr-defined]
        assert not view.at_end()
        qtbot.keyClick(window, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
        assert view.at_end()
    finally:
        bob.close()
        close_window(qt_loop, window)


def test_help_is_a_list_of_the_desktop_s_own_keys(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, _ = open_window(qt_loop, server, "Alice", monkeypatch)
    try:
        type_line(qtbot, window, "/help")
        wait_until(qt_loop, lambda: "Ctrl+K" in window.view.toPlainText(), "the help")
        shown = window.view.toPlainText()
        assert "• /join" in shown and "• Ctrl+PgUp / Ctrl+PgDn" in shown
        assert "Alt+N" not in shown and "You waves" not in shown
        assert shown.count("  • ") == len(help.lines()) - 3  # a line each, and three more
    finally:
        close_window(qt_loop, window)


def test_reconnecting_is_in_the_header_and_greys_the_members(
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, _ = open_window(qt_loop, server, "Alice", monkeypatch)
    try:
        wait_until(qt_loop, lambda: window.members.count() == 1, "the members")
        assert window.header.state.text() == "" and window.members_pane.isEnabled()
        server.stop()
        wait_until(qt_loop, lambda: "Reconnecting" in window.header.state.text(), "shown")
        assert not window.members_pane.isEnabled()
        server.start()
        wait_until(qt_loop, lambda: window.header.state.text() == "", "reconnected", 30)
        assert window.members_pane.isEnabled()
    finally:
        close_window(qt_loop, window)


def test_f6_and_escape_move_the_focus(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, _ = open_window(qt_loop, server, "Alice", monkeypatch)
    window.activateWindow()
    try:
        wait_until(qt_loop, lambda: window.members.count() == 1, "the members")
        window.input.setFocus()
        seen = []
        for _ in range(4):
            qtbot.keyClick(window, Qt.Key.Key_F6)  # type: ignore[attr-defined]
            seen.append(QApplicationFocus.name())
        assert seen == ["Members", "Conversations", "Messages", "Message"], seen
        qtbot.keyClick(window, Qt.Key.Key_Escape)  # type: ignore[attr-defined]
        assert QApplicationFocus.name() == "Message"
        # In the sidebar, the arrow keys choose a conversation (the headings are skipped).
        window.conversations.setFocus()
        qtbot.keyClick(window.conversations, Qt.Key.Key_Up)  # type: ignore[attr-defined]
        assert window.windows.current is window.windows.status
        qtbot.keyClick(window.conversations, Qt.Key.Key_Down)  # type: ignore[attr-defined]
        assert window.windows.current.name == "#general"
        assert [item.text(0) for item in window.conversations.selectedItems()] == ["#general"]
        # Ctrl+K: a conversation by name.
        qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
        wait_until(qt_loop, lambda: QApplication.activeModalWidget() is not None, "the chooser")
        chooser = QApplication.activeModalWidget()
        assert chooser is not None and chooser.parent() is window
        typed = chooser.focusWidget()
        qtbot.keyClick(typed, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
        qtbot.keyClicks(typed, "Server messages")  # type: ignore[attr-defined]
        qtbot.keyClick(typed, Qt.Key.Key_Return)  # type: ignore[attr-defined]
        wait_until(qt_loop, lambda: window.windows.current is window.windows.status, "the jump")
    finally:
        close_window(qt_loop, window)


class QApplicationFocus:
    @staticmethod
    def name() -> str:
        widget = QApplication.focusWidget()
        while widget is not None and not widget.accessibleName():
            widget = widget.parentWidget()
        return widget.accessibleName() if widget is not None else ""


@pytest.mark.parametrize("theme", [LIGHT, DARK], ids=["light", "dark"])
def test_every_text_colour_meets_wcag_aa(theme: object) -> None:
    from parley.gui.theme import AA_TEXT, Theme, contrast

    assert isinstance(theme, Theme)
    low = {
        what: round(contrast(fore, back), 2)
        for what, (fore, back) in theme.text_pairs().items()
        if contrast(fore, back) < AA_TEXT
    }
    assert low == {}
    # A mention is marked with the accent, never with the selection's colour.
    assert theme.mention_background != theme.selection
    assert theme.mention_text != theme.selection


def test_contrast_is_computed_as_wcag_defines_it() -> None:
    from parley.gui.theme import contrast

    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#777777") == pytest.approx(1.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the AA edge grey
    assert contrast("#ffffff", "#767676") == contrast("#767676", "#ffffff")


def test_an_error_in_a_task_is_shown_and_logged_and_the_app_goes_on(
    qtbot: object,
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    window, _ = open_window(qt_loop, server, "Alice", monkeypatch)
    bob = Peer(server.port, "Bob")
    try:

        async def broken_refresh(room: str) -> None:
            raise RuntimeError("a bug in a background task")

        monkeypatch.setattr(window, "refresh_room", broken_refresh)
        type_line(qtbot, window, "/join #elsewhere")
        wait_until(
            qt_loop,
            lambda: "Unexpected error: RuntimeError: a bug" in window.view.toPlainText(),
            "the error shown",
        )
        assert any(
            record.exc_info and "a bug in a background task" in str(record.exc_info[1])
            for record in caplog.records
        )
        # The window still works.
        bob.call(bob.client.join("#elsewhere"))
        type_line(qtbot, window, "still here")
        wait_until(
            qt_loop, lambda: any(m.text == "still here" for m in bob.messages), "a line sent"
        )
    finally:
        bob.close()
        close_window(qt_loop, window)


def test_the_connect_dialog_shows_its_whole_password_hint(qtbot: object) -> None:
    from parley.gui.app import ConnectDialog

    dialog = ConnectDialog({"host": "chat.example.org", "port": 7000, "nick": "Alice"})
    dialog.show()
    field = dialog.password
    needed = field.fontMetrics().horizontalAdvance(field.placeholderText())
    assert needed + 12 < field.width(), (needed, field.width())
    assert (dialog.host.text(), dialog.port.value()) == ("chat.example.org", 7000)
    dialog.close()
