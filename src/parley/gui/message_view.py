"""The message view: lines of the window model as formatted text, written with
``QTextCursor.insertText`` only. Peer text is never handed to ``setHtml`` or any other
markup parser, so ``<img src=…>`` or ``<a href="javascript:…">`` shows as those characters.
Web links (http, https) become clickable anchors set by us, and only those are opened.
"""

from __future__ import annotations

import re
import time
import zlib

from PySide6.QtCore import QUrl
from PySide6.QtGui import QColor, QDesktopServices, QFont, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextBrowser, QWidget

from parley.client.windows import Line, Style, Window
from parley.protocol.names import nick_key

DIVIDER = "──────── new messages ────────"
_URL = re.compile(r"https?://[^\s<>\"']{1,2000}")
# Nickname colours readable on light and dark backgrounds.
_NICK_COLOURS = [
    "#d0362c", "#2e8b57", "#b8860b", "#1e6fd9", "#a0399f", "#168a94",
    "#e2571e", "#5c9e1c", "#c2185b", "#3f51b5", "#00897b", "#8d6e63",
]  # fmt: skip


def nick_colour(nick: str) -> QColor:
    """The same colour for a nickname on every run (CRC-32 of its key), as in the terminal."""
    return QColor(_NICK_COLOURS[zlib.crc32(nick_key(nick).encode()) % len(_NICK_COLOURS)])


class MessageView(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._open)
        self.setUndoRedoEnabled(False)
        self.document().setMaximumBlockCount(5000)

    def show_window(self, window: Window, time_format: str) -> None:
        """Everything ``window`` holds, with its divider."""
        self.clear()
        divider = window.divider_index()
        for index, line in enumerate(window.lines):
            if index == divider:
                self._write_divider()
            self.append_line(line, time_format)
        self.scroll_to_end()

    def append_line(self, line: Line, time_format: str) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if not self.document().isEmpty():
            cursor.insertBlock()
        palette = self.palette()
        muted = palette.color(QPalette.ColorRole.PlaceholderText)
        base = QTextCharFormat()
        if line.history:
            base.setFontItalic(True)
        stamp = QTextCharFormat(base)
        stamp.setForeground(muted)
        cursor.insertText(time.strftime(time_format, time.localtime(line.ts)) + "  ", stamp)
        body = QTextCharFormat(base)
        if line.own:
            body.setFontWeight(QFont.Weight.Bold)
        if line.mention:
            body.setBackground(palette.color(QPalette.ColorRole.Highlight))
            body.setForeground(palette.color(QPalette.ColorRole.HighlightedText))
        if line.style in (Style.MESSAGE, Style.ACTION):
            who = QTextCharFormat(base)
            who.setForeground(nick_colour(line.sender))
            who.setFontWeight(QFont.Weight.Bold)
            prefix = "* " if line.style is Style.ACTION else ""
            cursor.insertText(f"{prefix}{line.sender}", who)
            cursor.insertText(" " if line.style is Style.ACTION else ": ", base)
            self._insert_with_links(cursor, line.text, body)
        else:
            note = QTextCharFormat(base)
            colour = "#c62828" if line.style is Style.ERROR else None
            note.setForeground(QColor(colour) if colour else muted)
            cursor.insertText(line.text, note)

    def append_divider(self) -> None:
        self._write_divider()

    def scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def at_end(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def _write_divider(self) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if not self.document().isEmpty():
            cursor.insertBlock()
        mark = QTextCharFormat()
        mark.setForeground(QColor("#e53935"))
        cursor.insertText(DIVIDER, mark)

    def _insert_with_links(self, cursor: QTextCursor, text: str, form: QTextCharFormat) -> None:
        position = 0
        for match in _URL.finditer(text):
            cursor.insertText(text[position : match.start()], form)
            link = QTextCharFormat(form)
            link.setAnchor(True)
            link.setAnchorHref(match.group())
            link.setFontUnderline(True)
            cursor.insertText(match.group(), link)
            position = match.end()
        cursor.insertText(text[position:], form)

    def _open(self, url: QUrl) -> None:
        # Only the web links we made anchors of; never javascript:, file: or anything else.
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)
