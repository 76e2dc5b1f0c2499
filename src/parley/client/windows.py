"""The windows of the full-screen client: one per room and per private conversation, plus the
status window (number 1) for the server's notices. Pure bookkeeping, no I/O and no drawing:
which window an event belongs in, what each window holds, unread counts, mentions, and where
the "new messages" divider goes.

The divider works as in WeeChat: while a window is out of view, the first line that arrives
there puts the divider above itself; it stays while the user reads, and goes when they leave
the window again. History sent after a join ends with a divider too, above the first live line.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections import deque
from collections.abc import Iterator

from parley.protocol.names import is_room, nick_key, room_key

STATUS_NAME = "status"


class Kind(enum.Enum):
    STATUS = "status"
    ROOM = "room"
    PRIVATE = "private"


class Style(enum.Enum):
    """How a line reads; the screen picks the colours."""

    MESSAGE = "message"  # <nick> text
    ACTION = "action"  # * nick waves
    EVENT = "event"  # joins, parts, topics: dim
    NOTICE = "notice"  # from the server, or the client's own answers
    ERROR = "error"


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    """One line of a window. ``text`` and ``sender`` are already safe for a terminal."""

    ts: float
    text: str
    style: Style = Style.NOTICE
    sender: str = ""
    own: bool = False
    mention: bool = False
    history: bool = False
    # A shared file's id, when the line announces one (a windowed client can offer it).
    file_id: str = ""


class Window:
    def __init__(self, kind: Kind, name: str, scrollback: int) -> None:
        self.kind = kind
        self.name = name
        self.lines: deque[Line] = deque(maxlen=scrollback)
        # Lines ever added; with len(lines) it turns a divider position into an index.
        self.added = 0
        self.unread = 0
        self.mentions = 0
        # Position (in ``added`` terms) of the first line not seen; None when none.
        self.divider_at: int | None = None
        # Rooms: who is in it, key -> nickname as spelt, kept up to date by events. In a quiet
        # room (too big for the server to announce each join) only the first page of names.
        self.members: dict[str, str] = {}
        self.quiet = False
        # How many are in a quiet room, as the server last said.
        self.total = 0
        self.topic = ""

    @property
    def member_count(self) -> int:
        """How many are in the room: counted by the server in a quiet room, else listed."""
        return self.total if self.quiet else len(self.members)

    @property
    def key(self) -> str:
        if self.kind is Kind.ROOM:
            return room_key(self.name)
        if self.kind is Kind.PRIVATE:
            return nick_key(self.name)
        return ""

    def add(self, line: Line, in_view: bool) -> None:
        # The user's own lines are never news to them, even when their echo arrives late.
        unseen = not in_view and not line.own
        # Speaking first after the history means it was read: no divider above one's own line.
        after_history = (
            bool(self.lines) and self.lines[-1].history and not line.history and not line.own
        )
        if (unseen or after_history) and self.divider_at is None:
            self.divider_at = self.added
        self.lines.append(line)
        self.added += 1
        if unseen and line.style in (Style.MESSAGE, Style.ACTION):
            self.unread += 1
            self.mentions += line.mention

    def prepend(self, older: list[Line]) -> int:
        """Put earlier lines (history read back) before the first; returns how many fitted
        (the scrollback keeps the newest).
        """
        room = self.lines.maxlen - len(self.lines) if self.lines.maxlen else len(older)
        kept = older[-room:] if room > 0 else []
        self.lines.extendleft(reversed(kept))
        self.added += len(kept)
        if self.divider_at is not None:
            self.divider_at += len(kept)
        return len(kept)

    def divider_index(self) -> int | None:
        """Where the divider goes in :attr:`lines`, or None."""
        if self.divider_at is None:
            return None
        index = self.divider_at - (self.added - len(self.lines))
        return index if 0 < index < len(self.lines) else None

    def seen(self) -> None:
        """The user is looking at this window."""
        self.unread = self.mentions = 0

    def left(self) -> None:
        """The user looked elsewhere: what they saw is read, the divider goes."""
        self.divider_at = None

    def clear(self) -> None:
        self.lines.clear()
        self.divider_at = None


class Windows:
    """The open windows, in the order they were opened; the first is the status window."""

    def __init__(self, scrollback: int = 5000) -> None:
        self.scrollback = scrollback
        self._all: list[Window] = [Window(Kind.STATUS, STATUS_NAME, scrollback)]
        self._current = 0

    def __iter__(self) -> Iterator[Window]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    @property
    def current(self) -> Window:
        return self._all[self._current]

    @property
    def status(self) -> Window:
        return self._all[0]

    def number(self, window: Window) -> int:
        """A window's number as the user types it: 1 for the status window."""
        return self._all.index(window) + 1

    def find(self, target: str) -> Window | None:
        """The window of a room or a private conversation, by name."""
        kind = Kind.ROOM if is_room(target) else Kind.PRIVATE
        key = room_key(target) if kind is Kind.ROOM else nick_key(target)
        for window in self._all:
            if window.kind is kind and window.key == key:
                return window
        return None

    def open(self, target: str) -> Window:
        """The window of ``target``, opened at the end if it is not open yet."""
        window = self.find(target)
        if window is None:
            kind = Kind.ROOM if is_room(target) else Kind.PRIVATE
            window = Window(kind, target, self.scrollback)
            self._all.append(window)
        else:
            window.name = target  # the server's spelling wins
        return window

    def select(self, window: Window) -> None:
        if window is not self.current:
            self.current.left()
        self._current = self._all.index(window)
        window.seen()

    def select_number(self, number: int) -> bool:
        if not 1 <= number <= len(self._all):
            return False
        self.select(self._all[number - 1])
        return True

    def step(self, by: int) -> None:
        """Next (1) or previous (-1) window, wrapping around."""
        self.select(self._all[(self._current + by) % len(self._all)])

    def close(self, window: Window) -> bool:
        """Close ``window`` (never the status window); False if it cannot be closed."""
        if window is self.status or window not in self._all:
            return False
        index = self._all.index(window)
        if window is self.current:
            self._all.pop(index)
            self._current = min(index, len(self._all) - 1)
            self.current.seen()
        else:
            self._all.pop(index)
            if index < self._current:
                self._current -= 1
        return True

    def add(self, window: Window, line: Line) -> None:
        window.add(line, in_view=window is self.current)

    def with_unread(self) -> list[tuple[int, Window]]:
        """(number, window) of every window with unread messages."""
        return [(i + 1, w) for i, w in enumerate(self._all) if w.unread]


def mentions(text: str, nick: str) -> bool:
    """``nick`` appears in ``text`` as a word of its own, in any case."""
    if not nick:
        return False
    pattern = rf"(?<![\w-]){re.escape(nick)}(?![\w-])"
    return re.search(pattern, text, re.IGNORECASE) is not None
