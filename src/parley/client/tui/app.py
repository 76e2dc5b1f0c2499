"""The full-screen client: windows on the left, rooms and members on the right where the width
allows, a status bar, and the input line at the bottom.

Why prompt_toolkit rather than Textual: the client already used it for the line prompt, it
draws only what changed on a plain VT100 screen (so a terminal emulator in the tests reads it
exactly), and its input line (history, completion, bracketed paste, password input) is the
part a chat client lives in.

Three tasks share the loop with the screen: one follows the server's events into windows (and
reconnects when the connection is lost), one runs what the user typed, in order, and one sends
read markers. The input line belongs to prompt_toolkit alone, so nothing that arrives ever
touches what the user is typing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import DummyHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.layout import (
    ConditionalContainer,
    Dimension,
    HSplit,
    Layout,
    VSplit,
    Window,
)
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.layout.processors import BeforeInput, ConditionalProcessor, PasswordProcessor
from prompt_toolkit.mouse_events import MouseEvent, MouseEventType
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.utils import get_cwidth

from parley.client import windows as model
from parley.client.commands import (
    COMMANDS,
    HISTORY_PAGE,
    PASTE_CONFIRM_LINES,
    Chat,
    execute,
    parse_count,
    unsendable,
)
from parley.client.core import ChatClient, ClientEvent, ConnectionLost
from parley.client.front import WindowedFront, cancel_and_wait
from parley.client.read_markers import ReadMarkers
from parley.client.reconnect import Connect
from parley.client.render import describe_unread
from parley.client.settings import ClientSettings
from parley.client.tui.cells import ClusterCells, cells, install, terminal_output
from parley.client.tui.completion import ChatCompleter
from parley.client.tui.history import InputHistory
from parley.client.tui.render import (
    most_scroll,
    pane_fragments,
    sidebar_fragments,
    status_fragments,
    style_sheet,
)
from parley.protocol.errors import RequestRefused
from parley.protocol.limits import MAX_HISTORY_MESSAGES
from parley.protocol.messages import Message
from parley.protocol.names import nick_key
from parley.protocol.text import for_terminal

# The room and member list shows from this width up.
SIDEBAR_MIN_COLUMNS = 100
SIDEBAR_COLUMNS = 22
# Incoming traffic redraws the screen at most this often: at 1,000 lines/s it is drawn ~30
# times a second, not 1,000. Keys the user presses redraw at once, whatever arrives.
TRAFFIC_REDRAW_SECONDS = 0.03
# Commands that work without a connection.
_OFFLINE_COMMANDS = frozenset(
    {"exit", "quit", "help", "win", "window", "clear", "ignore", "unignore", "query"}
)
# Nicknames offered by completion, most recently active first, at most.
_RECENT_NICKS = 200


class _PaneControl(FormattedTextControl):
    """The message pane: scrolls with the mouse wheel through the screen's scrollback."""

    def __init__(self, screen: FullScreen) -> None:
        self._screen = screen
        super().__init__(
            screen.pane_text,
            focusable=False,
            show_cursor=False,
            get_cursor_position=screen.pane_anchor,
        )

    def mouse_handler(self, mouse_event: MouseEvent) -> None:
        if mouse_event.event_type is MouseEventType.SCROLL_UP:
            self._screen.scroll_by(3)
        elif mouse_event.event_type is MouseEventType.SCROLL_DOWN:
            self._screen.scroll_by(-3)


class FullScreen(WindowedFront):
    """The screen and what drives it. Also the :class:`~parley.client.commands.Screen` that
    window commands (/win, /close, /clear, /query) act on.
    """

    def __init__(
        self, chat: Chat, settings: ClientSettings, connect: Connect, history: Path | None
    ) -> None:
        super().__init__(chat, connect, settings.scrollback_lines)
        self.settings = settings
        self._alert = False
        self._scroll = 0
        self._pane_anchor = 0
        self._typed: asyncio.Queue[tuple[str, bool] | None] = asyncio.Queue()
        self._question: asyncio.Future[str | None] | None = None
        self._question_prompt = ""
        self._question_secret = False
        self._question_one_key = False
        self._recent: dict[str, str] = {}  # nick key -> nick, most recent last
        self._markers = ReadMarkers(chat.client)
        self._redraw: asyncio.TimerHandle | None = None
        # Transfers running, key -> how each is going, shown under the status bar.
        self._transfers: dict[str, str] = {}
        chat.out = self.out
        chat.ask_secret = self.ask_secret
        chat.screen = self

        self.input = Buffer(
            name="input",
            multiline=False,
            history=InputHistory(history) if history is not None else DummyHistory(),
            completer=ChatCompleter(lambda: COMMANDS, self._room_names, self._nicks),
            accept_handler=self._accept,
        )
        install()
        self.answer = Buffer(
            name="answer", multiline=False, history=DummyHistory(), accept_handler=self._answer
        )
        self.app: Application[None] = Application(
            layout=self._layout(),
            key_bindings=self._key_bindings(),
            style=style_sheet(settings.theme),
            full_screen=True,
            output=terminal_output(),
            mouse_support=True,
            color_depth=ColorDepth.MONOCHROME if not settings.colours else None,
            erase_when_done=True,
        )

    # --- layout --------------------------------------------------------------------------

    def _layout(self) -> Layout:
        asking = Condition(lambda: self._question is not None)
        wide = Condition(lambda: self.app.output.get_size().columns >= SIDEBAR_MIN_COLUMNS)
        has_topic = Condition(lambda: bool(self.windows.current.topic))
        self._input_window = Window(
            BufferControl(self.input, input_processors=[ClusterCells(), BeforeInput(self._prompt)]),
            height=1,
            get_horizontal_scroll=self._input_scroll,
        )
        self._answer_window = Window(
            BufferControl(
                self.answer,
                # Stars first: the prompt added after them must stay readable.
                input_processors=[
                    ConditionalProcessor(
                        PasswordProcessor(), filter=Condition(lambda: self._question_secret)
                    ),
                    ClusterCells(),
                    BeforeInput(lambda: self._question_prompt, style="class:question"),
                ],
            ),
            height=1,
        )
        pane = Window(_PaneControl(self), wrap_lines=True)
        sidebar = ConditionalContainer(
            VSplit(
                [
                    Window(width=1, char="│", style="class:event"),
                    Window(FormattedTextControl(self._sidebar_text), width=SIDEBAR_COLUMNS),
                ]
            ),
            filter=wide,
        )
        topic = ConditionalContainer(
            Window(FormattedTextControl(self._topic_text), height=1, style="class:topic"),
            filter=has_topic,
        )
        return Layout(
            HSplit(
                [
                    topic,
                    VSplit([pane, sidebar]),
                    ConditionalContainer(
                        Window(
                            FormattedTextControl(self._transfers_text),
                            height=Dimension(max=4),
                            style="class:status",
                        ),
                        filter=Condition(lambda: bool(self._transfers)),
                    ),
                    Window(FormattedTextControl(self._status_text), height=1, style="class:status"),
                    ConditionalContainer(self._input_window, filter=~asking),
                    ConditionalContainer(self._answer_window, filter=asking),
                ]
            ),
            focused_element=self._input_window,
        )

    def _input_scroll(self, window: Window) -> int:
        """prompt_toolkit keeps a line scrolled sideways after it shrinks (Ctrl+U on a long
        line), hiding the prompt: when the prompt and the text fit, nothing is scrolled.
        """
        info = window.render_info
        shown = get_cwidth(f"[{self.windows.current.name}] " + self.input.text)
        if info is None or shown < info.window_width:
            return 0
        return window.horizontal_scroll

    def _prompt(self) -> StyleAndTextTuples:
        window = self.windows.current
        return [("class:question", f"[{window.name}] ")]

    def _pane_width(self) -> int:
        columns = self.app.output.get_size().columns
        return columns - (SIDEBAR_COLUMNS + 1 if columns >= SIDEBAR_MIN_COLUMNS else 0)

    def pane_text(self) -> StyleAndTextTuples:
        fragments, self._pane_anchor = pane_fragments(
            self.windows.current,
            self.app.output.get_size().rows,
            self._scroll,
            self.settings.timestamp_format,
            self._pane_width(),
        )
        return cells(fragments)

    def pane_anchor(self) -> Point:
        return Point(x=0, y=self._pane_anchor)

    def _transfers_text(self) -> StyleAndTextTuples:
        return cells([("class:status", "\n".join(f" {text}" for text in self._transfers.values()))])

    def _status_text(self) -> StyleAndTextTuples:
        return cells(
            status_fragments(
                self.windows,
                self.chat.client.identity.server,
                for_terminal(self.chat.client.nick),
                self.state,
                self._alert,
                self._scroll,
            )
        )

    def _sidebar_text(self) -> StyleAndTextTuples:
        return cells(sidebar_fragments(self.windows, SIDEBAR_COLUMNS))

    def _topic_text(self) -> StyleAndTextTuples:
        return cells([("class:topic", f" {self.windows.current.topic}")])

    # --- keys ----------------------------------------------------------------------------

    def _key_bindings(self) -> KeyBindings:
        keys = KeyBindings()
        asking = Condition(lambda: self._question is not None)

        @keys.add("c-c", eager=True)
        @keys.add("c-d", filter=Condition(lambda: not self.input.text) & ~asking)
        def _leave(event: KeyPressEvent) -> None:
            if self._question is not None:
                self._settle_question(None)
            else:
                self._typed.put_nowait(None)

        @keys.add("pageup")
        def _page_up(event: KeyPressEvent) -> None:
            self.scroll_by(max(self.app.output.get_size().rows - 4, 1))

        @keys.add("pagedown")
        def _page_down(event: KeyPressEvent) -> None:
            self.scroll_by(-max(self.app.output.get_size().rows - 4, 1))

        @keys.add("c-n", eager=True)
        def _next(event: KeyPressEvent) -> None:
            self._select(step=1)

        @keys.add("c-p", eager=True)
        def _previous(event: KeyPressEvent) -> None:
            self._select(step=-1)

        for digit in "1234567890":

            @keys.add("escape", digit, eager=True)
            def _number(event: KeyPressEvent, number: int = int(digit) or 10) -> None:
                self.select(number)

        @keys.add(Keys.BracketedPaste, filter=~asking)
        def _paste(event: KeyPressEvent) -> None:
            self._paste(event.data)

        @keys.add("tab", filter=~asking)
        def _complete(event: KeyPressEvent) -> None:
            # The first Tab puts the first match in the line at once; more Tabs cycle.
            buffer = event.current_buffer
            if buffer.complete_state is not None:
                buffer.complete_next()
            else:
                buffer.start_completion(select_first=True)

        @keys.add(Keys.Any, filter=Condition(lambda: self._question_one_key))
        def _one_key(event: KeyPressEvent) -> None:
            self._settle_question(event.data)

        return keys

    # --- the Screen the commands see -----------------------------------------------------

    def show_conversation(self, target: str) -> None:
        window = self.windows.open(target)
        self._focus(window)
        if window.kind is model.Kind.ROOM and not window.members:
            self.spawn(self.refresh_room(target))

    def close_window(self, target: str) -> None:
        window = self.windows.find(target)
        if window is not None:
            self.windows.close(window)
            self._focus(self.windows.current)

    def select(self, number: int) -> bool:
        if not 1 <= number <= len(self.windows):
            return False
        self._focus(list(self.windows)[number - 1])
        return True

    def progress(self, key: str, text: str | None, share: float = 0.0) -> None:
        if text is None:
            self._transfers.pop(key, None)
        else:
            self._transfers[key] = text
        self._redraw_soon()

    def clear(self) -> None:
        self.windows.current.clear()
        self._scroll = 0
        self.app.invalidate()

    def _select(self, step: int) -> None:
        items = list(self.windows)
        index = items.index(self.windows.current)
        self._focus(items[(index + step) % len(items)])

    def _focus(self, window: model.Window) -> None:
        """Bring ``window`` into view; plain lines then go to its room or user."""
        self.windows.select(window)
        self._scroll = 0
        if window.kind is model.Kind.ROOM:
            self.chat.room, self.chat.query = window.name, ""
        elif window.kind is model.Kind.PRIVATE:
            self.chat.query = window.name
        seq = self.chat.client.conversations.last_seq(window.key) if window.key else 0
        if seq:
            self._markers.seen(window.key, window.name, seq)
        self.app.invalidate()

    def scroll_by(self, rows: int) -> None:
        # Never past the first line at the top of the pane: a page up in a short window
        # would otherwise leave it nearly empty.
        size = self.app.output.get_size()
        most = most_scroll(
            self.windows.current, size.rows - 3, self.settings.timestamp_format, self._pane_width()
        )
        self._scroll = min(max(self._scroll + rows, 0), most)
        self.app.invalidate()

    # --- output and questions ------------------------------------------------------------

    def out(self, text: str) -> None:
        """A line from the client itself (command output) in the window in view."""
        style = model.Style.ERROR if text.startswith("*** ") else model.Style.NOTICE
        self.add(self.windows.current, model.Line(_now(), text.removeprefix("*** "), style))

    async def ask_secret(self, prompt: str) -> str | None:
        return await self.ask(prompt, secret=True)

    async def ask(self, prompt: str, secret: bool = False, one_key: bool = False) -> str | None:
        """Ask on the input row (a password: hidden, kept nowhere; ``one_key``: the first key
        pressed is the answer, no Enter needed); None on Ctrl+C.
        """
        if self._question is not None:
            return None
        self._question = asyncio.get_running_loop().create_future()
        self._question_prompt, self._question_secret = prompt, secret
        self._question_one_key = one_key
        self.app.layout.focus(self._answer_window)
        self.app.invalidate()
        try:
            return await self._question
        finally:
            self._question = None
            self._question_one_key = False
            self.answer.reset()
            self.app.layout.focus(self._input_window)
            self.app.invalidate()

    def _answer(self, buffer: Buffer) -> bool:
        self._settle_question(buffer.text)
        return False

    def _settle_question(self, answer: str | None) -> None:
        if self._question is not None and not self._question.done():
            self._question.set_result(answer)

    # --- input ---------------------------------------------------------------------------

    def _accept(self, buffer: Buffer) -> bool:
        """Enter on the input line. True keeps the text there (not connected: nothing lost)."""
        line = buffer.text
        if not line.strip():
            return False
        name = line[1:].split(" ", 1)[0].lower() if line.startswith("/") else ""
        if self.state != "connected" and (
            not name or line.startswith("//") or name not in _OFFLINE_COMMANDS
        ):
            self.out("*** Not connected: your line is kept; press Enter again once reconnected.")
            return True
        problem = unsendable(line)
        if problem is not None:
            self.out(f"*** Not sent, your line is kept: {problem}")
            return True
        self._typed.put_nowait((line, False))
        return False

    def _paste(self, data: str) -> None:
        text = data.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            self.input.insert_text(text)
            return
        document = self.input.document
        text = document.text_before_cursor + text + document.text_after_cursor
        lines = [line for line in text.split("\n") if line.strip()]
        self.input.reset()
        if len(lines) <= PASTE_CONFIRM_LINES:
            self._send_pasted(lines)
        else:
            self.spawn(self._confirm_paste(lines))

    async def _confirm_paste(self, lines: list[str]) -> None:
        where = self.windows.current.name
        answer = await self.ask(
            f"Send {len(lines)} pasted lines to {where} one by one? [y/N] ", one_key=True
        )
        if answer is not None and answer.strip().lower() in ("y", "yes"):
            self._send_pasted(lines)
        else:
            self.out(f"The {len(lines)} pasted lines were not sent.")

    def _send_pasted(self, lines: list[str]) -> None:
        if self.state != "connected":
            self.out("*** Not connected: the pasted lines were not sent.")
            return
        for line in lines:
            self._typed.put_nowait((line, True))

    async def _run_input(self) -> None:
        """Run typed lines one at a time, in order, until the user leaves."""
        while True:
            item = await self._typed.get()
            if item is None:
                return
            line, pasted = item
            if pasted and line.startswith("/"):
                line = "/" + line  # pasted text is text, never a command
            is_text = not line.startswith("/") or line.startswith("//")
            if self.windows.current is self.windows.status and line.strip().lower() == "/close":
                self.out("*** The status window stays open: /part leaves a room.")
                continue
            if await self._history(line):
                continue
            if is_text and self.windows.current is self.windows.status:
                self.out(
                    "*** This is the status window: /win N or Alt+N chooses a conversation, "
                    "/join #room or /query USER opens one."
                )
                continue
            if is_text and self._scroll:
                # Saying something brings the view back to the newest lines, where it appears.
                self._scroll = 0
                self.app.invalidate()
            try:
                if not await execute(self.chat, line):
                    return
            except ConnectionLost:
                self.out("*** Not sent: the connection was lost. It is reconnecting.")
                if is_text and not pasted and not self.input.text:
                    self.input.text = line
                    self.input.cursor_position = len(line)

    async def _history(self, line: str) -> bool:
        """``/history [N]`` in a conversation's window: earlier messages go above the first one
        shown, and the view moves up to them. False for any other line (and for a wrong count,
        whose usage the command itself shows).
        """
        name, _, args = line.partition(" ")
        window = self.windows.current
        if name.lower() != "/history" or window.kind is model.Kind.STATUS:
            return False
        count = parse_count(args.strip(), HISTORY_PAGE, MAX_HISTORY_MESSAGES)
        if count is None:
            return False
        try:
            added = await self.load_earlier(window, count)
        except RequestRefused as refusal:
            self.out(f"*** {for_terminal(refusal.message)}")
            return True
        if not added:
            # Said where it is true: above the first message.
            what = "history of" if window.kind is model.Kind.ROOM else "conversation with"
            text = f"The {what} {for_terminal(window.name)} starts here."
            if not window.lines or window.lines[0].text != text:
                window.prepend([model.Line(time.time(), text, model.Style.NOTICE)])
        # Show the first of the lines read back at the top of the pane.
        rows = self.app.output.get_size().rows
        self._scroll = max(len(window.lines) - max(rows - 3, 1), 0)
        self.app.invalidate()
        return True

    # --- events --------------------------------------------------------------------------

    def added(self, window: model.Window, line: model.Line, event: ClientEvent | None) -> None:
        current = window is self.windows.current
        if current and self._scroll:
            self._scroll += 1  # keep the lines being read where they are
        if isinstance(event, Message):
            self._recent.pop(nick_key(event.sender), None)
            self._recent[nick_key(event.sender)] = event.sender
            if len(self._recent) > _RECENT_NICKS:
                del self._recent[next(iter(self._recent))]
            if current:
                self._markers.shown(event)
        if line.mention and not current:
            self.app.output.bell()
        self._redraw_soon()

    def _redraw_soon(self) -> None:
        if self._redraw is None:
            self._redraw = asyncio.get_running_loop().call_later(
                TRAFFIC_REDRAW_SECONDS, self._redraw_now
            )

    def _redraw_now(self) -> None:
        self._redraw = None
        self.app.invalidate()

    def refreshed(self, window: model.Window) -> None:
        self.app.invalidate()

    # --- the connection ------------------------------------------------------------------

    def state_changed(self, alert: bool) -> None:
        self._alert = alert
        self.app.invalidate()

    def reconnected(self, client: ChatClient) -> None:
        self._markers = ReadMarkers(client)

    def cleared(self, window: model.Window) -> None:
        if window is self.windows.current:
            self._scroll = 0
        self.app.invalidate()

    # --- running -------------------------------------------------------------------------

    async def run(self) -> bool:
        """Until the user leaves (True) or the connection ends for good and the user closes
        the screen (False).
        """
        self._open_windows()
        screen = asyncio.create_task(self.app.run_async(), name="screen")
        events = asyncio.create_task(self.follow_events(), name="events")
        typed = asyncio.create_task(self._run_input(), name="input")
        marking = asyncio.create_task(self._mark_read(), name="read-markers")
        self.spawn(self._greet())
        try:
            done, _ = await asyncio.wait(
                {screen, events, typed}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await cancel_and_wait(events, typed, marking, *self.cancel_background())
            await self.chat.transfers.cancel()
            if not screen.done():
                self.app.exit()
            with contextlib.suppress(asyncio.CancelledError):
                await screen
        if screen in done:
            screen.result()  # the screen failed: let its error out
        return typed in done

    async def leave(self) -> None:
        """Tell the server what was read, then say goodbye."""
        with contextlib.suppress(ConnectionLost, TimeoutError):
            await asyncio.wait_for(self._markers.flush(), 5.0)
        await self.chat.client.bye()

    async def _mark_read(self) -> None:
        while True:
            await self._markers.run()  # returns when its connection is lost
            await asyncio.sleep(1.0)

    def _open_windows(self) -> None:
        client = self.chat.client
        for name in client.rooms.values():
            self.windows.open(name)
            self.spawn(self.refresh_room(name))
        first = self.windows.open(self.chat.room)
        self._focus(first)
        # Where the user is, not only in the status window: the first screen says where they
        # are and how to get around.
        welcome = [f"Connected to {client.identity.server} as {for_terminal(client.nick)}."]
        if client.welcome is not None:
            welcome.append(f"Server: {for_terminal(client.welcome.server)}")
        welcome.append(
            "Alt+1..9 or Ctrl+N/Ctrl+P switch windows, PageUp/PageDown scroll, Tab completes, "
            "/help lists the commands."
        )
        for text in welcome:
            self.note(text)
            self.add(first, model.Line(time.time(), text, model.Style.NOTICE))

    async def _greet(self) -> None:
        """An account comes back to unread messages: count them on each window."""
        if not self.chat.client.is_account:
            return
        with contextlib.suppress(RequestRefused, ConnectionLost):
            unread = await self.chat.client.unread()
            for entry in unread.conversations:
                window = self.windows.open(entry.to)
                if window is not self.windows.current:
                    window.unread = max(window.unread, entry.count)
            if unread.conversations:
                self.note(describe_unread(unread))
            self.app.invalidate()

    # --- completion ----------------------------------------------------------------------

    def _room_names(self) -> list[str]:
        rooms = [w.name for w in self.windows if w.kind is model.Kind.ROOM]
        return rooms + list(self.chat.client.rooms.values())

    def _nicks(self) -> list[str]:
        current = self.windows.current
        recent = list(reversed(self._recent.values()))
        others = sorted(current.members.values(), key=str.casefold)
        private = [w.name for w in self.windows if w.kind is model.Kind.PRIVATE]
        me = nick_key(self.chat.client.nick)
        return [nick for nick in recent + others + private if nick_key(nick) != me]


def _now() -> float:
    return time.time()
