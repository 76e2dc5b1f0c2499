"""The chat window: conversations with unread badges on the left, the message view with its
topic bar in the middle, the members on the right, the input line below, the connection
state and transfers in the status bar.

It is a front end like the terminal one, on the same pieces: the client core for the
protocol, the window model and timeline for what goes where, the commands for what is typed,
reconnect for lost connections and transfer for files. Network work runs as asyncio tasks on
the Qt event loop (qasync), so the window never waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QFont,
    QKeyEvent,
    QKeySequence,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from parley.client import transfer
from parley.client import windows as model
from parley.client.commands import COMMANDS, Chat, execute
from parley.client.core import ClientEvent, ConnectionLost
from parley.client.front import WindowedFront
from parley.client.reconnect import Connect
from parley.client.settings import ClientSettings
from parley.client.timeline import place
from parley.client.tui.completion import candidates
from parley.gui import dialogs
from parley.gui.message_view import MessageView
from parley.protocol.errors import RequestRefused
from parley.protocol.messages import Message
from parley.protocol.names import nick_key
from parley.protocol.text import for_terminal

_ROLE_WINDOW = Qt.ItemDataRole.UserRole
log = logging.getLogger("parley.gui")


class ChatInput(QLineEdit):
    """The input line: Up/Down recall what was sent, Tab completes like the terminal client."""

    def __init__(self, complete: Any) -> None:
        super().__init__()
        self._complete = complete
        self.history: list[str] = []
        self._recall = 0
        self.setPlaceholderText("Message, or /help")

    def remember(self, line: str) -> None:
        self.history.append(line)
        del self.history[:-1000]
        self._recall = len(self.history)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Up and self.history:
            self._recall = max(self._recall - 1, 0)
            self.setText(self.history[self._recall])
        elif key == Qt.Key.Key_Down and self.history:
            self._recall = min(self._recall + 1, len(self.history))
            self.setText(self.history[self._recall] if self._recall < len(self.history) else "")
        elif key == Qt.Key.Key_Tab:
            before = self.text()[: self.cursorPosition()]
            word, words = self._complete(before)
            if words:
                start = len(before) - len(word)
                self.setText(self.text()[:start] + words[0] + self.text()[len(before) :])
                self.setCursorPosition(start + len(words[0]))
        else:
            super().keyPressEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:
        return False  # Tab completes here; it does not move the focus


class MainWindow(WindowedFront, QMainWindow):
    """Also the :class:`~parley.client.commands.Screen` window commands act on."""

    closed = Signal()

    def __init__(self, chat: Chat, settings: ClientSettings, connect: Connect) -> None:
        # WindowedFront first in the bases: QMainWindow's cooperative __init__ must not reach it.
        WindowedFront.__init__(self, chat, connect, settings.scrollback_lines)
        QMainWindow.__init__(self)
        self.settings = settings
        # What notifications were raised (title, text): shown by the tray, kept for tests.
        self.notifications: list[tuple[str, str]] = []
        self._typed: asyncio.Queue[str | None] = asyncio.Queue()
        self._bars: dict[str, QProgressBar] = {}
        chat.out = self.out
        chat.ask_secret = self.ask_secret
        chat.screen = self
        self._build()
        self._tray = QSystemTrayIcon(self) if QSystemTrayIcon.isSystemTrayAvailable() else None

    # --- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.setWindowTitle(f"Parley — {self.chat.client.nick}")
        self.resize(1000, 640)
        self.setAcceptDrops(True)
        self.conversations = QListWidget()
        self.conversations.setMinimumWidth(170)
        self.conversations.currentItemChanged.connect(self._picked)
        self.topic = QLabel()
        self.topic.setTextFormat(Qt.TextFormat.PlainText)  # a topic is never markup
        self.topic.setWordWrap(True)
        self.view = MessageView()
        self.view.anchorClicked.connect(self._anchor)
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled)
        self._loading_history = self._rebuilding = False
        self.members = QListWidget()
        self.members.setMinimumWidth(150)
        self.members.itemDoubleClicked.connect(self._talk_to)
        self.input = ChatInput(self._complete)
        self.input.returnPressed.connect(self._entered)
        self.send_file_button = QPushButton("Send file…")
        self.send_file_button.clicked.connect(self._choose_file)

        middle = QWidget()
        column = QVBoxLayout(middle)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.topic)
        column.addWidget(self.view, 1)
        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        row.addWidget(self.send_file_button)
        column.addLayout(row)
        self.members_heading = QLabel("Members")
        splitter = QSplitter()
        splitter.addWidget(_titled("Conversations", self.conversations))
        splitter.addWidget(middle)
        splitter.addWidget(_titled(self.members_heading, self.members))
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)
        self.state_label = QLabel()
        self.statusBar().addPermanentWidget(self.state_label)
        self.input.setFocus()

        QShortcut(QKeySequence("Ctrl+K"), self, self._jump)
        QShortcut(QKeySequence("Ctrl+PgDown"), self, lambda: self._step(1))
        QShortcut(QKeySequence("Ctrl+PgUp"), self, lambda: self._step(-1))

    # --- the Screen the commands see ---------------------------------------------------------

    def show_conversation(self, target: str) -> None:
        window = self.windows.open(target)
        self._focus(window)
        if window.kind is model.Kind.ROOM and not window.members:
            self.spawn(self.refresh_room(target))

    def close_window(self, target: str) -> None:
        window = self.windows.find(target)
        if window is not None and self.windows.close(window):
            self._focus(self.windows.current)

    def select(self, number: int) -> bool:
        if not 1 <= number <= len(self.windows):
            return False
        self._focus(list(self.windows)[number - 1])
        return True

    def clear(self) -> None:
        self.windows.current.clear()
        self._redraw(self.windows.current)

    def progress(self, key: str, text: str | None, share: float = 0.0) -> None:
        bar = self._bars.get(key)
        if text is None:
            if bar is not None:
                self.statusBar().removeWidget(bar)
                bar.deleteLater()
                del self._bars[key]
            return
        if bar is None:
            bar = self._bars[key] = QProgressBar()
            bar.setRange(0, 100)
            bar.setMinimumWidth(260)
            self.statusBar().addWidget(bar)
        bar.setFormat(text)
        bar.setValue(round(share * 100))

    # --- output and questions ----------------------------------------------------------------

    def out(self, text: str) -> None:
        style = model.Style.ERROR if text.startswith("*** ") else model.Style.NOTICE
        self.add(self.windows.current, model.Line(_now(), text.removeprefix("*** "), style))

    async def ask_secret(self, prompt: str) -> str | None:
        return await dialogs.ask_secret(self, "Password", prompt)

    def report(self, error: BaseException) -> None:
        """An unexpected error: logged with its traceback, and a line in the window."""
        log.error("Unexpected error in the desktop app", exc_info=error)
        self.out(
            f"*** Unexpected error: {type(error).__name__}: {for_terminal(str(error))} "
            "(the details are in the log; the app carries on)"
        )

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background; an exception it raises is reported, never lost."""
        super().spawn(self._reported(work))

    async def _reported(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as error:  # any bug in a task is shown, never fatal
            self.report(error)

    # --- conversations -----------------------------------------------------------------------

    def _focus(self, window: model.Window) -> None:
        self.windows.select(window)
        if window.kind is model.Kind.ROOM:
            self.chat.room, self.chat.query = window.name, ""
        elif window.kind is model.Kind.PRIVATE:
            self.chat.query = window.name
        self._redraw(window)
        self.topic.setText(window.topic)
        self.topic.setVisible(bool(window.topic))
        self._show_members(window)
        self._list_conversations()

    def _list_conversations(self) -> None:
        self.conversations.blockSignals(True)
        self.conversations.clear()
        for window in self.windows:
            label = window.name if window.kind is not model.Kind.STATUS else "Server"
            if window.unread:
                label += f"  ({window.unread}{' @' if window.mentions else ''})"
            item = QListWidgetItem(label)
            item.setData(_ROLE_WINDOW, id(window))
            if window.unread:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            self.conversations.addItem(item)
            if window is self.windows.current:
                self.conversations.setCurrentItem(item)
        self.conversations.blockSignals(False)

    def _picked(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        for window in self.windows:
            if id(window) == item.data(_ROLE_WINDOW):
                self._focus(window)
                return

    def _show_members(self, window: model.Window) -> None:
        self.members.clear()
        for nick in sorted(window.members.values(), key=str.casefold):
            self.members.addItem(nick)
        count = len(window.members)
        self.members_heading.setText(f"Members ({count})" if count else "Members")

    def _talk_to(self, item: QListWidgetItem) -> None:
        if nick_key(item.text()) != nick_key(self.chat.client.nick):
            self.chat.switch_to(item.text())

    def _step(self, by: int) -> None:
        items = list(self.windows)
        self._focus(items[(items.index(self.windows.current) + by) % len(items)])

    def _jump(self) -> None:
        self.spawn(self._jump_to())

    async def _jump_to(self) -> None:
        names = [w.name for w in self.windows]
        name = await dialogs.choose(self, "Jump to", "Conversation:", names)
        for window in self.windows:
            if window.name == name:
                self._focus(window)

    def _complete(self, before: str) -> tuple[str, list[str]]:
        current = self.windows.current
        nicks = sorted(current.members.values(), key=str.casefold) + [
            w.name for w in self.windows if w.kind is model.Kind.PRIVATE
        ]
        rooms = [w.name for w in self.windows if w.kind is model.Kind.ROOM]
        return candidates(before, COMMANDS, rooms, nicks)

    # --- input -------------------------------------------------------------------------------

    def _entered(self) -> None:
        line = self.input.text()
        if not line.strip():
            return
        if self.state != "connected" and not line.startswith("/"):
            self.out("*** Not connected: your line is kept; press Enter again once reconnected.")
            return
        self.input.remember(line)
        self.input.clear()
        self._typed.put_nowait(line)

    async def _run_input(self) -> None:
        while True:
            line = await self._typed.get()
            if line is None:
                return
            if self.windows.current is self.windows.status and not line.startswith("/"):
                self.out("*** Choose a conversation on the left to write to it.")
                continue
            try:
                if not await execute(self.chat, line):
                    self.close()
                    return
            except ConnectionLost:
                self.out("*** Not sent: the connection was lost. It is reconnecting.")

    # --- files -------------------------------------------------------------------------------

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Send a file")
        if path:
            self.send_file(Path(path))

    def send_file(self, path: Path) -> None:
        """Share ``path`` with the conversation in view, with a progress bar."""
        if self.windows.current is self.windows.status:
            self.out("*** Choose a conversation to send the file to.")
            return
        self._typed.put_nowait(f"/send {self.chat.target} {path}")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile() and Path(url.toLocalFile()).is_file():
                self.send_file(Path(url.toLocalFile()))
        event.acceptProposedAction()

    def _anchor(self, url: QUrl) -> None:
        if url.scheme() == "parley-file":
            self.spawn(self._fetch_and_open(url.path()))

    async def _fetch_and_open(self, file_id: str) -> None:
        key = f"down:{file_id}"
        try:
            saved = await transfer.download(
                self.chat.client,
                file_id,
                self.chat.downloads,
                progress=lambda p: self.progress(key, _progress_text(p), p.done / (p.total or 1)),
            )
        except (RequestRefused, transfer.TransferFailed, OSError) as exc:
            self.out(f"*** The download failed: {for_terminal(str(exc))}")
            return
        finally:
            self.progress(key, None)
        self.out(f"Saved {saved} (SHA-256 checked).")
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(saved)))

    def _redraw(self, window: model.Window) -> None:
        """The view shows ``window`` afresh (not a scroll by the user: no history loaded)."""
        self._rebuilding = True
        try:
            self.view.show_window(window, self.settings.timestamp_format)
        finally:
            self._rebuilding = False

    # --- history -----------------------------------------------------------------------------

    def _scrolled(self, value: int) -> None:
        window = self.windows.current
        busy = self._loading_history or self._rebuilding
        if value == 0 and window.kind is not model.Kind.STATUS and not busy:
            self._loading_history = True
            self.spawn(self._load_earlier(window))

    async def _load_earlier(self, window: model.Window) -> None:
        """At the top of a conversation: read back the page before its first message."""
        try:
            conversations = self.chat.client.conversations
            first = conversations.first_seq(window.key)
            if first == 1:
                return
            with contextlib.suppress(RequestRefused, ConnectionLost):
                page = await self.chat.client.history(window.name, before=first or None)
                me = self.chat.client.nick
                older = []
                for message in page.messages:
                    conversations.accept(window.key, window.name, message.seq)
                    placed = place(message, me)
                    if placed is not None:
                        older.append(placed[1])
                if window.prepend(older) and window is self.windows.current:
                    bar = self.view.verticalScrollBar()
                    below = bar.maximum() - bar.value()
                    self._redraw(window)
                    bar.setValue(bar.maximum() - below)  # the lines read stay in view
        finally:
            self._loading_history = False

    # --- events ------------------------------------------------------------------------------

    def added(self, window: model.Window, line: model.Line, event: ClientEvent | None) -> None:
        private = isinstance(event, Message) and window.kind is model.Kind.PRIVATE
        wanted = event is not None and not line.own and (line.mention or private)
        if wanted and not self.isActiveWindow():
            self._notify(f"{line.sender} in {window.name}", line.text)
        if window is self.windows.current:
            following = self.view.at_end()
            self.view.append_line(line, self.settings.timestamp_format)
            if line.file_id:
                self._offer_file(line.file_id)
            if following:
                self.view.scroll_to_end()
            if window.kind is model.Kind.ROOM:
                self._show_members(window)
        else:
            self._list_conversations()

    def _offer_file(self, file_id: str) -> None:
        """A link after a file's announcement: a click downloads it and opens it."""
        cursor = QTextCursor(self.view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        link = QTextCharFormat()
        link.setAnchor(True)
        link.setAnchorHref(f"parley-file:{file_id}")
        link.setFontUnderline(True)
        cursor.insertText("  ", QTextCharFormat())
        cursor.insertText("Download and open", link)

    def _notify(self, title: str, text: str) -> None:
        self.notifications.append((title, text))
        QApplication.alert(self)
        if self._tray is not None:
            self._tray.showMessage(title, text)

    def refreshed(self, window: model.Window) -> None:
        if window is self.windows.current:
            self.topic.setText(window.topic)
            self.topic.setVisible(bool(window.topic))
            self._show_members(window)

    def state_changed(self, alert: bool) -> None:
        self.state_label.setText(self.state)

    # --- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the windows of the rooms the user is in and start following the server."""
        client = self.chat.client
        self.state_label.setText(self.state)
        self.note(f"Connected to {client.identity.server} as {client.nick}.")
        for name in client.rooms.values():
            self.windows.open(name)
            self.spawn(self.refresh_room(name))
        self._focus(self.windows.open(self.chat.room))
        self.spawn(self.follow_events())
        self.spawn(self._run_input())

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_background()
        self.closed.emit()
        super().closeEvent(event)

    async def leave(self) -> None:
        """After the window closed: say goodbye to the server (a few seconds at most)."""
        with contextlib.suppress(ConnectionLost, TimeoutError):
            await asyncio.wait_for(self.chat.client.bye(), 5.0)


def _titled(title: str | QLabel, content: QWidget) -> QWidget:
    """``content`` under a bold heading."""
    heading = title if isinstance(title, QLabel) else QLabel(title)
    font = QFont(heading.font())
    font.setBold(True)
    heading.setFont(font)
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(4, 4, 4, 0)
    column.addWidget(heading)
    column.addWidget(content, 1)
    return box


def _progress_text(progress: transfer.Progress) -> str:
    share = progress.done * 100 // progress.total if progress.total else 100
    return f"{progress.name} {share}%"


def _now() -> float:
    return time.time()
