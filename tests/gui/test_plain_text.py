"""Notifications and message boxes are plain text: a peer's markup is shown as typed, never
read (no image loaded, no link made, no text hidden).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from desktop_support import Peer, ServerProcess, close_window, open_window, wait_until
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from parley.gui import dialogs, notify

HOSTILE = '<img src="file:///etc/passwd"><b>hi</b> &amp; <a href="javascript:x">go</a>'


def test_a_notification_of_peer_markup_carries_none(
    qt_loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, _ = open_window(qt_loop, server, "Alice", monkeypatch)
    monkeypatch.setattr(window, "isActiveWindow", lambda: False)
    bob = Peer(server.port, "Bob")
    try:
        bob.call(bob.client.send("Alice", HOSTILE))
        wait_until(qt_loop, lambda: bool(window.notifications), "a notification")
        title, text = window.notifications[-1]
        assert title == "Bob, direct message"
        for mark in "<>&":
            assert mark not in text
        # Every character still reads the same.
        assert text == HOSTILE.replace("<", "＜").replace(">", "＞").replace("&", "＆")
    finally:
        bob.close()
        close_window(qt_loop, window)


def test_a_plain_message_stays_as_it_is_in_a_notification() -> None:
    assert notify.plain("lunch at 12:30?") == "lunch at 12:30?"
    assert notify.plain("two\nlines") == "two lines"
    long = notify.plain("w" * 500)
    assert len(long) == notify.PREVIEW_CHARACTERS and long.endswith("…")


def test_message_boxes_show_markup_as_text(
    qtbot: object, qt_loop: asyncio.AbstractEventLoop
) -> None:
    parent = QWidget()
    box = dialogs.message_box(parent, QMessageBox.Icon.Warning, HOSTILE, HOSTILE, HOSTILE)
    labels = box.findChildren(QLabel)
    texts = [label for label in labels if label.text() == HOSTILE]
    assert len(texts) == 2  # the text and the detail, each exactly as given
    assert all(label.textFormat() == Qt.TextFormat.PlainText for label in texts)
    assert box.parent() is parent


def test_the_password_prompt_is_parented_plain_and_awaitable(
    qtbot: object, qt_loop: asyncio.AbstractEventLoop
) -> None:
    parent = QWidget()
    parent.show()

    async def answer() -> str | None:
        asking = asyncio.ensure_future(dialogs.ask_secret(parent, "Password", HOSTILE))
        await asyncio.sleep(0.2)
        [prompt] = [w for w in parent.findChildren(QWidget) if w.isWindow() and w.isVisible()]
        labels = [label for label in prompt.findChildren(QLabel) if label.text() == HOSTILE]
        assert labels and labels[0].textFormat() == Qt.TextFormat.PlainText
        qtbot.keyClicks(prompt.focusWidget(), "s3cret")  # type: ignore[attr-defined]
        qtbot.keyClick(prompt.focusWidget(), Qt.Key.Key_Return)  # type: ignore[attr-defined]
        return await asking

    assert qt_loop.run_until_complete(answer()) == "s3cret"
    parent.close()
