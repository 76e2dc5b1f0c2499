"""The message view: lines of the window model as formatted text, written with
``QTextCursor.insertText`` only. Peer text is never handed to ``setHtml`` or any other
markup parser, so ``<img src=…>`` or ``<a href="javascript:…">`` shows as those characters.
Web links (http, https) become clickable anchors set by us, and only those are opened; a shared
file gets a "Download and open" link of our own scheme, which the window handles.

Each line is a paragraph with a hanging indent: it wraps at word boundaries (a word longer than
the whole width is the only thing ever broken), and the wrapped lines start under the text, not
under the time. A day separator comes before the first line of each day. A mention's line has
the accent background and an accent "@" mark, never the selection colour.

The view follows the bottom while the user is there: lines that arrive (and a file link, and
history read in) scroll into view once laid out. Scrolled up, it stays put and shows a "Jump to
latest" button.
"""

from __future__ import annotations

import datetime
import re
import time
import zlib

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QFontMetrics,
    QResizeEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import QPushButton, QTextBrowser, QWidget

from parley.client.windows import Line, Style, Window
from parley.gui.theme import LIGHT, Theme
from parley.protocol.names import nick_key

DIVIDER = "──── new messages ────"
JUMP = "Jump to latest ↓"
FILE_LINK = "Download and open"
FILE_SCHEME = "parley-file"
_URL = re.compile(r"https?://[^\s<>\"']{1,2000}")


def nick_colour(nick: str, theme: Theme) -> QColor:
    """The same colour for a nickname on every run (CRC-32 of its key), as in the terminal."""
    return QColor(theme.nicks[zlib.crc32(nick_key(nick).encode()) % len(theme.nicks)])


def day_label(ts: float, today: datetime.date | None = None) -> str:
    """ "Today", "Yesterday", or the date (with the year when it is not this year)."""
    day = datetime.date.fromtimestamp(ts)
    today = today or datetime.date.today()
    if day == today:
        return "Today"
    if day == today - datetime.timedelta(days=1):
        return "Yesterday"
    shown = f"{day:%A} {day.day} {day:%B}"
    return shown if day.year == today.year else f"{shown} {day.year}"


class MessageView(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._open)
        self.setUndoRedoEnabled(False)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setAccessibleName("Messages")
        self.document().setMaximumBlockCount(5000)
        self.document().setDocumentMargin(10)
        self.theme = LIGHT
        self.time_format = "%H:%M"
        self._last_day: datetime.date | None = None
        # True while the user is at the bottom: new lines scroll into view.
        self.following = True
        self.jump = QPushButton(JUMP, self)
        self.jump.setCursor(Qt.CursorShape.PointingHandCursor)
        self.jump.clicked.connect(self.scroll_to_end)
        self.jump.hide()
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._grew)
        bar.valueChanged.connect(self._moved)

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.jump.setStyleSheet(
            f"QPushButton {{ background: {theme.selection}; color: {theme.selection_text};"
            " border-radius: 12px; padding: 4px 14px; font-weight: bold; }"
        )

    def show_window(self, window: Window, time_format: str) -> None:
        """Everything ``window`` holds, with its divider, from the bottom."""
        self.time_format = time_format
        self.clear()
        self._last_day = None
        self.following = True
        divider = window.divider_index()
        for index, line in enumerate(window.lines):
            if index == divider:
                self._write_divider()
            self.append_line(line, time_format)
        self.scroll_to_end()

    def append_line(self, line: Line, time_format: str) -> None:
        self.time_format = time_format
        day = datetime.date.fromtimestamp(line.ts)
        if day != self._last_day:
            self._last_day = day
            self._write_day(line.ts)
        theme = self.theme
        cursor = self._new_block(self._indented(line.mention))
        base = QTextCharFormat()
        if line.history:
            base.setFontItalic(True)
        base.setForeground(QColor(theme.text))
        stamp = QTextCharFormat(base)
        stamp.setForeground(QColor(theme.mention_text if line.mention else theme.muted))
        if line.mention:
            stamp.setFontWeight(QFont.Weight.Bold)
        cursor.insertText(self._stamp(line.ts), stamp)
        body = QTextCharFormat(base)
        if line.own:
            body.setFontWeight(QFont.Weight.DemiBold)
        if line.style in (Style.MESSAGE, Style.ACTION):
            who = QTextCharFormat(base)
            who.setForeground(nick_colour(line.sender, theme))
            who.setFontWeight(QFont.Weight.Bold)
            prefix = "* " if line.style is Style.ACTION else ""
            cursor.insertText(f"{prefix}{line.sender}", who)
            cursor.insertText(" " if line.style is Style.ACTION else "  ", base)
            self._insert_with_links(cursor, line.text, body)
        else:
            note = QTextCharFormat(base)
            note.setForeground(QColor(theme.error if line.style is Style.ERROR else theme.muted))
            self._insert_with_links(cursor, line.text, note)
        if line.file_id:
            link = QTextCharFormat(base)
            link.setAnchor(True)
            link.setAnchorHref(f"{FILE_SCHEME}:{line.file_id}")
            link.setForeground(QColor(theme.link))
            link.setFontUnderline(True)
            cursor.insertText("  ", base)
            cursor.insertText(f"⬇ {FILE_LINK}", link)
        self._update_jump()

    def append_divider(self) -> None:
        self._write_divider()

    def scroll_to_end(self) -> None:
        self.following = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
        self._update_jump()

    def at_end(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def page(self, by: int) -> None:
        """Scroll a page up (-1) or down (1), as PgUp/PgDn do in the input line."""
        bar = self.verticalScrollBar()
        bar.setValue(bar.value() + by * bar.pageStep())

    # --- layout ----------------------------------------------------------------------------

    def _stamp(self, ts: float) -> str:
        return time.strftime(self.time_format, time.localtime(ts)) + "  "

    def _indented(self, mention: bool) -> QTextBlockFormat:
        """A paragraph whose wrapped lines start where the text after the time starts."""
        indent = QFontMetrics(self.font()).horizontalAdvance(self._stamp(0))
        block = QTextBlockFormat()
        block.setLeftMargin(indent)
        block.setTextIndent(-indent)
        block.setTopMargin(2)
        block.setBottomMargin(2)
        if mention:
            block.setBackground(QColor(self.theme.mention_background))
        return block

    def _new_block(self, block: QTextBlockFormat) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if self.document().isEmpty():
            cursor.setBlockFormat(block)
        else:
            cursor.insertBlock(block, QTextCharFormat())
        return cursor

    def _write_day(self, ts: float) -> None:
        block = QTextBlockFormat()
        block.setAlignment(Qt.AlignmentFlag.AlignCenter)
        block.setTopMargin(10)
        block.setBottomMargin(6)
        cursor = self._new_block(block)
        mark = QTextCharFormat()
        mark.setForeground(QColor(self.theme.muted))
        mark.setFontWeight(QFont.Weight.Bold)
        cursor.insertText(f"──── {day_label(ts)} ────", mark)

    def _write_divider(self) -> None:
        block = QTextBlockFormat()
        block.setAlignment(Qt.AlignmentFlag.AlignCenter)
        cursor = self._new_block(block)
        mark = QTextCharFormat()
        mark.setForeground(QColor(self.theme.error))
        cursor.insertText(DIVIDER, mark)

    def _insert_with_links(self, cursor: QTextCursor, text: str, form: QTextCharFormat) -> None:
        position = 0
        for match in _URL.finditer(text):
            cursor.insertText(text[position : match.start()], form)
            link = QTextCharFormat(form)
            link.setAnchor(True)
            link.setAnchorHref(match.group())
            link.setForeground(QColor(self.theme.link))
            link.setFontUnderline(True)
            cursor.insertText(match.group(), link)
            position = match.end()
        cursor.insertText(text[position:], form)

    # --- following the bottom --------------------------------------------------------------

    def _grew(self, low: int, high: int) -> None:
        # The range changes once the new text is laid out: only then is the bottom known.
        if self.following:
            self.verticalScrollBar().setValue(high)
        self._update_jump()

    def _moved(self, value: int) -> None:
        self.following = self.at_end()
        self._update_jump()

    def _update_jump(self) -> None:
        self.jump.setVisible(not self.at_end())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.jump.adjustSize()
        area = self.viewport().geometry()
        self.jump.move(
            area.right() - self.jump.width() - 16, area.bottom() - self.jump.height() - 12
        )

    def _open(self, url: QUrl) -> None:
        # Only the web links we made anchors of; never javascript:, file: or anything else.
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)
