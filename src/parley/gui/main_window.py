"""The chat window, laid out as people know it from Slack or Element: the sidebar on the left
(Rooms and Direct messages, with unread and mention badges), the header over the messages
(name, member count, topic, and the connection's state while it is not connected), the members
of a room on the right (hidden where there are none), the input line with the emoji picker and
the file button below, transfers in the status bar.

Everything works from the keyboard (see help.KEYS, which /help lists).

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
    QKeyEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QSystemTrayIcon,
    QToolButton,
    QVBoxLayout,
    QWidget,
    QWidgetAction,
)

from parley.client import transfer
from parley.client import windows as model
from parley.client.commands import COMMANDS, Chat, execute, unsendable
from parley.client.core import ClientEvent, ConnectionLost
from parley.client.front import CONNECTED, WindowedFront
from parley.client.reconnect import Connect
from parley.client.settings import ClientSettings
from parley.client.timeline import place
from parley.client.tui.completion import candidates
from parley.gui import dialogs, emoji, help, notify
from parley.gui import theme as themes
from parley.gui.header import Header
from parley.gui.members import MembersPane, Presence
from parley.gui.message_view import FILE_SCHEME, MessageView
from parley.gui.sidebar import Sidebar, label
from parley.protocol.errors import RequestRefused
from parley.protocol.messages import Joined, Left, Message
from parley.protocol.names import nick_key
from parley.protocol.text import for_terminal

# Members whose presence is asked at once when a room is shown; more wait for the next time.
PRESENCE_BATCH = 100
# Plain messages and these commands get their :shortcodes: turned into emoji.
_EMOJI_COMMANDS = ("/me ", "/msg ", "/query ", "/topic ", "/away ")
log = logging.getLogger("parley.gui")


class ChatInput(QLineEdit):
    """The input line: Up/Down recall what was sent, Tab completes like the terminal client
    (and a started :shortcode: to its emoji), PgUp/PgDn scroll the messages.
    """

    def __init__(self, complete: Any, page: Any) -> None:
        super().__init__()
        self._complete = complete
        self._page = page
        self.setAccessibleName("Message")
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
        elif key in (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
            self._page(-1 if key == Qt.Key.Key_PageUp else 1)
        elif key == Qt.Key.Key_Tab:
            before = self.text()[: self.cursorPosition()]
            word = emoji.started(before)
            words = emoji.complete(word) if word else []
            if not words:
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
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        self.theme = themes.apply(app, "")  # the palette the app was given: its accents
        # What notifications were raised (title, text): shown by the tray, kept for tests.
        self.notifications: list[tuple[str, str]] = []
        # Role and away state by nickname key, asked with whois.
        self.presence: dict[str, Presence] = {}
        self._asking: set[str] = set()
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
        self.conversations = Sidebar(lambda: self.theme, self._focus)
        self.header = Header()
        self.view = MessageView()
        self.view.set_theme(self.theme)
        self.view.anchorClicked.connect(self._anchor)
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled)
        self._loading_history = self._rebuilding = False
        self.members_pane = MembersPane()
        self.members = self.members_pane.list
        # Activated: a double-click, or Enter from the keyboard.
        self.members.itemActivated.connect(self._talk_to)
        self.input = ChatInput(self._complete, self.view.page)
        self.input.returnPressed.connect(self._entered)
        self.emoji_button = QToolButton()
        self.emoji_button.setText(emoji.emojize(":slightly_smiling_face:"))
        self.emoji_button.setToolTip("Emoji (Ctrl+E)")
        self.emoji_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.emoji_button.setMenu(self._emoji_menu())
        self.send_file_button = QPushButton("Send file…")
        self.send_file_button.setToolTip("Send a file to this conversation (or drop it here)")
        self.send_file_button.clicked.connect(self._choose_file)

        middle = QWidget()
        column = QVBoxLayout(middle)
        column.setContentsMargins(0, 0, 0, 6)
        column.setSpacing(0)
        column.addWidget(self.header)
        self.rule = _rule()
        column.addWidget(self.rule)
        column.addWidget(self.view, 1)
        row = QHBoxLayout()
        row.setContentsMargins(8, 6, 8, 0)
        row.addWidget(self.emoji_button)
        row.addWidget(self.input, 1)
        row.addWidget(self.send_file_button)
        column.addLayout(row)
        self.splitter = QSplitter()
        self.splitter.addWidget(self.conversations)
        self.splitter.addWidget(middle)
        self.splitter.addWidget(self.members_pane)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([200, 620, 180])
        self.setCentralWidget(self.splitter)
        self.state_label = QLabel()
        self.statusBar().addPermanentWidget(self.state_label)
        self.header.restyle(self.theme)
        self.view.setFrameShape(QFrame.Shape.NoFrame)
        self.rule.setStyleSheet(f"background: {self.theme.button};")
        self.conversations.setStyleSheet(
            f"QTreeWidget {{ background: {self.theme.window}; }}"
            " QTreeWidget::item { padding: 3px 2px; }"
            f" QTreeWidget::item:selected {{ background: {self.theme.selection};"
            f" color: {self.theme.selection_text}; }}"
        )
        self.members.setStyleSheet(f"QListWidget {{ background: {self.theme.window}; }}")
        self.input.setFocus()

        keys: list[tuple[str, Any]] = [
            ("Ctrl+K", self._jump),
            ("Ctrl+PgDown", lambda: self._step(1)),
            ("Ctrl+PgUp", lambda: self._step(-1)),
            ("Ctrl+End", self.view.scroll_to_end),
            ("Ctrl+E", self._pick_emoji),
            ("F6", self._next_pane),
            ("Escape", self.input.setFocus),
            ("Ctrl+Q", self.close),
        ]
        keys += [(f"Ctrl+{n}", lambda n=n: self.select(n)) for n in range(1, 10)]
        for sequence, act in keys:
            QShortcut(QKeySequence(sequence), self, act)

    def _emoji_menu(self) -> QMenu:
        menu = QMenu(self)
        grid = QWidget()
        layout = QGridLayout(grid)
        layout.setSpacing(2)
        for index, (character, code) in enumerate(emoji.picker()):
            button = QToolButton()
            button.setText(character)
            button.setToolTip(code)
            button.setAutoRaise(True)
            button.setMinimumSize(34, 34)
            button.clicked.connect(lambda _=False, c=character: self._insert_emoji(c, menu))
            layout.addWidget(button, index // 8, index % 8)
        action = QWidgetAction(menu)
        action.setDefaultWidget(grid)
        menu.addAction(action)
        return menu

    def _insert_emoji(self, character: str, menu: QMenu) -> None:
        menu.close()
        self.input.insert(character)
        self.input.setFocus()

    def _pick_emoji(self) -> None:
        self.emoji_button.showMenu()

    def _next_pane(self) -> None:
        panes = [self.conversations, self.view, self.input]
        if self.members_pane.isVisible():
            panes.append(self.members)
        current = next((i for i, pane in enumerate(panes) if pane.hasFocus()), len(panes) - 1)
        panes[(current + 1) % len(panes)].setFocus()

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
        """Run ``work`` in the background, owned by the window (cancelled when it closes); an
        exception it raises is reported, never lost.
        """
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            self.report(error)

    # --- conversations -----------------------------------------------------------------------

    def _focus(self, window: model.Window) -> None:
        self.windows.select(window)
        if window.kind is model.Kind.ROOM:
            self.chat.room, self.chat.query = window.name, ""
        elif window.kind is model.Kind.PRIVATE:
            self.chat.query = window.name
        self._redraw(window)
        self._show_header(window)
        self._show_members(window)
        self._list_conversations()
        if window.kind is model.Kind.ROOM:
            self.spawn(self._ask_presence(window))

    def _list_conversations(self) -> None:
        self.conversations.show_windows(self.windows)

    def _show_header(self, window: model.Window) -> None:
        room = window.kind is model.Kind.ROOM
        self.header.show_conversation(
            label(window), window.member_count if room else None, window.topic if room else ""
        )
        self.header.show_state(self.state, self.state == CONNECTED, self.theme)

    def _show_members(self, window: model.Window) -> None:
        shown = window.kind is model.Kind.ROOM and bool(window.members)
        self.members_pane.setVisible(shown)
        if shown:
            self.members_pane.show_members(
                window.members, self.presence, self.theme, window.member_count
            )
        self.members_pane.setEnabled(self.state == CONNECTED)

    async def _ask_presence(self, window: model.Window) -> None:
        """Role and away state of the room's members not known or no longer fresh."""
        wanted = [
            nick
            for key, nick in window.members.items()
            if key not in self._asking and (key not in self.presence or self.presence[key].stale())
        ][:PRESENCE_BATCH]
        for nick in wanted:
            key = nick_key(nick)
            self._asking.add(key)
            try:
                info = await self.chat.client.whois(nick)
            except (RequestRefused, ConnectionLost):
                continue
            finally:
                self._asking.discard(key)
            self.presence[key] = Presence(info.role, info.away, time.monotonic())
        if wanted and window is self.windows.current:
            self._show_members(window)

    def _talk_to(self, item: QListWidgetItem) -> None:
        nick = str(item.data(Qt.ItemDataRole.UserRole))
        if nick_key(nick) != nick_key(self.chat.client.nick):
            self.chat.switch_to(nick)

    def _step(self, by: int) -> None:
        items = list(self.windows)
        self._focus(items[(items.index(self.windows.current) + by) % len(items)])

    def _jump(self) -> None:
        self.spawn(self._jump_to())

    async def _jump_to(self) -> None:
        names = [label(w) for w in self.windows]
        name = await dialogs.choose(self, "Jump to", "Conversation:", names)
        for window in self.windows:
            if label(window) == name:
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
        problem = unsendable(line)
        if problem is not None:
            self.out(f"*** Not sent, your line is kept: {problem}")
            return
        self.input.remember(line)
        self.input.clear()
        if not line.startswith("/") or line.startswith(("//", *_EMOJI_COMMANDS)):
            line = emoji.emojize(line)
        self._typed.put_nowait(line)

    async def _run_input(self) -> None:
        while True:
            line = await self._typed.get()
            if line is None:
                return
            if line.strip().lower() == "/help":
                self._show_help()
                continue
            if self.windows.current is self.windows.status and not line.startswith("/"):
                self.out("*** Choose a conversation on the left to write to it.")
                continue
            try:
                if not await execute(self.chat, line):
                    self.close()
                    return
            except ConnectionLost:
                self.out("*** Not sent: the connection was lost. It is reconnecting.")

    def _show_help(self) -> None:
        for text in help.lines():
            self.add(self.windows.current, model.Line(_now(), text, model.Style.NOTICE))

    # --- files -------------------------------------------------------------------------------

    def _choose_file(self) -> None:
        self.spawn(self._choose_and_send())

    async def _choose_and_send(self) -> None:
        chooser = QFileDialog(self, "Send a file")
        chooser.setFileMode(QFileDialog.FileMode.ExistingFile)
        chosen = await dialogs.shown(chooser) == QFileDialog.DialogCode.Accepted
        if chosen and chooser.selectedFiles():
            self.send_file(Path(chooser.selectedFiles()[0]))

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
        if url.scheme() == FILE_SCHEME:
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
                    self.view.following = False
                    bar.setValue(bar.maximum() - below)  # the lines read stay in view
        finally:
            self._loading_history = False

    # --- events ------------------------------------------------------------------------------

    def added(self, window: model.Window, line: model.Line, event: ClientEvent | None) -> None:
        private = isinstance(event, Message) and window.kind is model.Kind.PRIVATE
        wanted = event is not None and not line.own and (line.mention or private)
        if wanted and not self.isActiveWindow():
            where = "direct message" if private else f"in {label(window)}"
            self._notify(f"{line.sender}, {where}", line.text)
        if isinstance(event, Joined) and window.kind is model.Kind.ROOM:
            self.spawn(self._ask_presence(window))
        if window is self.windows.current:
            self.view.append_line(line, self.settings.timestamp_format)
            if isinstance(event, (Joined, Left)) and window.kind is model.Kind.ROOM:
                # Only a join or a leave changes who is there: O(members) to redraw.
                self._show_header(window)
                self._show_members(window)
        else:
            self._list_conversations()

    def _notify(self, title: str, text: str) -> None:
        title, text = notify.plain(title, 80), notify.plain(text)
        self.notifications.append((title, text))
        QApplication.alert(self)
        if self._tray is not None:
            self._tray.showMessage(title, text)

    def refreshed(self, window: model.Window) -> None:
        if window is self.windows.current:
            self._show_header(window)
            self._show_members(window)
            if window.kind is model.Kind.ROOM:
                self.spawn(self._ask_presence(window))

    def cleared(self, window: model.Window) -> None:
        if window is self.windows.current:
            self._redraw(window)

    def state_changed(self, alert: bool) -> None:
        self.state_label.setText(self.state)
        current = self.windows.current
        self._show_header(current)
        self._show_members(current)

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


def _rule() -> QFrame:
    """A thin line between the header and the messages."""
    line = QFrame()
    line.setFixedHeight(1)
    return line


def _progress_text(progress: transfer.Progress) -> str:
    share = progress.done * 100 // progress.total if progress.total else 100
    return f"{progress.name} {share}%"


def _now() -> float:
    return time.time()
