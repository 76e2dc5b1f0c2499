"""Typing must not wear anything out: Qt for Python 6.12.0 dropped a reference to None on every
key press, and on Python 3.11 (where None is counted like any object) the desktop app aborted
at exit ("Fatal Python error: none_dealloc") once a user had typed a few thousand keys.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from parley.gui.main_window import ChatInput

KEYS = 500


def test_key_presses_in_the_input_line_leave_none_as_it_was(qtbot: object) -> None:
    line = ChatInput(lambda before: ("", []), lambda pages: None)
    qtbot.addWidget(line)  # type: ignore[attr-defined]
    line.show()
    for _ in range(10):  # whatever the first presses set up once
        QTest.keyClick(line, Qt.Key.Key_X)
    before = sys.getrefcount(None)
    for _ in range(KEYS):
        QTest.keyClick(line, Qt.Key.Key_X)
    # A few references come and go with the widget's own work; one lost per key is the bug.
    assert sys.getrefcount(None) - before > -KEYS // 10
    assert line.text() == "x" * (KEYS + 10)
