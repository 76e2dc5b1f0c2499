"""The members pane of a room: who is in it, server staff first, each with a presence dot
(online, or away with the away text on hover) and a role. A private conversation or the server
window has no members pane at all. While reconnecting the list is greyed: who is there is not
known until the room is read again.

Presence and role come from ``whois`` (see :class:`Presence`), asked once per member and again
when a room is shown after a while; the member list itself follows the join and leave events.
"""

from __future__ import annotations

import dataclasses
import html
import time

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from parley.gui.theme import Theme
from parley.protocol.names import nick_key

STAFF = {"admin": "admin", "moderator": "mod"}
_RANK = {"admin": 0, "moderator": 1}
STALE_SECONDS = 60.0
_AWAY = Qt.ItemDataRole.UserRole + 1


@dataclasses.dataclass(frozen=True, slots=True)
class Presence:
    role: str = ""  # "admin", "moderator", "user", or "" for a guest
    away: str = ""  # the away text; empty when not away
    at: float = 0.0  # when it was asked (time.monotonic())

    def stale(self) -> bool:
        return time.monotonic() - self.at > STALE_SECONDS


class MembersPane(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.heading = QLabel("Members")
        self.heading.setTextFormat(Qt.TextFormat.PlainText)
        font = self.heading.font()
        font.setBold(True)
        self.heading.setFont(font)
        self.list = QListWidget()
        self.list.setAccessibleName("Members")
        self.list.setFrameShape(QListWidget.Shape.NoFrame)
        self.list.setIconSize(QSize(10, 10))
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 10, 4, 0)
        column.addWidget(self.heading)
        column.addWidget(self.list, 1)

    def show_members(
        self,
        members: dict[str, str],
        presence: dict[str, Presence],
        theme: Theme,
        count: int | None = None,
    ) -> None:
        """``members`` key -> nickname; ``presence`` by the same keys (missing: not asked yet,
        shown online without a role). ``count``: how many are in the room, when the names are
        only the first of them (a room too big for the server to announce each join).
        """
        self.list.clear()

        def order(nick: str) -> tuple[int, str]:
            known = presence.get(nick_key(nick), Presence())
            return _RANK.get(known.role, 2), nick.casefold()

        for nick in sorted(members.values(), key=order):
            known = presence.get(nick_key(nick), Presence())
            role = STAFF.get(known.role, "")
            text = f"{nick}  · {role}" if role else nick
            item = QListWidgetItem(_dot(theme.away if known.away else theme.online), text)
            item.setData(Qt.ItemDataRole.UserRole, nick)
            item.setData(_AWAY, bool(known.away))
            state = f"away: {known.away}" if known.away else "online"
            item.setToolTip(tooltip(f"{nick}: {state}" + (f", {known.role}" if known.role else "")))
            self.list.addItem(item)
        self.heading.setText(f"Members — {len(members) if count is None else count}")

    def nicks(self) -> list[str]:
        """The nicknames in the order shown."""
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def rows(self) -> list[str]:
        """The rows as shown (nickname and role) with presence in brackets: for tests."""
        shown = []
        for index in range(self.list.count()):
            item = self.list.item(index)
            away = bool(item.data(_AWAY))
            shown.append(f"{item.text()} [{'away' if away else 'online'}]")
        return shown


def tooltip(text: str) -> str:
    """``text`` for a tooltip, which Qt reads as markup whenever it looks like some: always
    markup, with every character of ``text`` escaped, so it shows as typed.
    """
    return f"<p>{html.escape(text)}</p>"


def _dot(colour: str) -> QIcon:
    pixmap = QPixmap(20, 20)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(2, 2, 16, 16)
    painter.end()
    return QIcon(pixmap)
