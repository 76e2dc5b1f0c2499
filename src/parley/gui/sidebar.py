"""The sidebar: the server's own messages, then the Rooms and Direct messages sections, each
conversation with a badge (the count of unread messages, red with the count of mentions when
there are any). The headings cannot be selected, so the arrow keys move from conversation to
conversation.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from parley.client import windows as model
from parley.gui.theme import Theme

SERVER_LABEL = "Server messages"
_WINDOW = Qt.ItemDataRole.UserRole
_UNREAD = Qt.ItemDataRole.UserRole + 1
_MENTIONS = Qt.ItemDataRole.UserRole + 2


def label(window: model.Window) -> str:
    """How the sidebar and the header name a window."""
    return SERVER_LABEL if window.kind is model.Kind.STATUS else window.name


class _Badges(QStyledItemDelegate):
    """Draws a conversation's name, then its badge at the right edge."""

    def __init__(self, theme: Callable[[], Theme], parent: QWidget) -> None:
        super().__init__(parent)
        self._theme = theme

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        unread, mentions = int(index.data(_UNREAD) or 0), int(index.data(_MENTIONS) or 0)
        if not unread and not mentions:
            super().paint(painter, option, index)
            return
        theme = self._theme()
        text = f"@{mentions}" if mentions else str(min(unread, 999))
        metrics = option.fontMetrics
        width = max(metrics.horizontalAdvance(text) + 12, 22)
        rect: QRect = option.rect
        badge = QRect(rect.right() - width - 6, rect.top() + 3, width, rect.height() - 6)
        narrowed = QStyleOptionViewItem(option)
        narrowed.rect = QRect(rect.left(), rect.top(), rect.width() - width - 10, rect.height())
        super().paint(painter, narrowed, index)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(theme.mention_badge if mentions else theme.badge))
        painter.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
        font = QFont(option.font)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor(theme.mention_badge_text if mentions else theme.badge_text))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width(), max(size.height(), 26))


class Sidebar(QTreeWidget):
    """Shows :class:`~parley.client.windows.Windows`; ``picked(window)`` when the user chooses
    one (click, or arrow keys and Enter).
    """

    def __init__(self, theme: Callable[[], Theme], picked: Callable[[model.Window], None]) -> None:
        super().__init__()
        self._picked = picked
        self._windows: dict[int, model.Window] = {}
        self._items: dict[int, QTreeWidgetItem] = {}
        self.setHeaderHidden(True)
        self.setRootIsDecorated(False)
        self.setIndentation(10)
        self.setItemDelegate(_Badges(theme, self))
        self.setAccessibleName("Conversations")
        self.setFrameShape(QTreeWidget.Shape.NoFrame)
        self.currentItemChanged.connect(self._changed)

    def show_windows(self, windows: model.Windows) -> None:
        """Show ``windows``: O(windows). The rows are rebuilt only when a conversation came or
        went; otherwise badges and the selection change in place (this runs from the selection
        signal too, where deleting the row being selected would pull it from under Qt).
        """
        self.blockSignals(True)
        shape = [id(window) for window in windows]
        if shape != list(self._items):
            self._rebuild(windows)
        for window in windows:
            item = self._items[id(window)]
            item.setText(0, label(window))
            item.setData(0, _UNREAD, window.unread)
            item.setData(0, _MENTIONS, window.mentions)
            font = QFont(self.font())
            font.setBold(bool(window.unread))
            item.setFont(0, font)
            if window is windows.current and self.currentItem() is not item:
                self.setCurrentItem(item)
        self.blockSignals(False)

    def _rebuild(self, windows: model.Windows) -> None:
        self.clear()
        self._windows, self._items = {}, {}
        rooms = self._heading("Rooms")
        direct = self._heading("Direct messages")
        for window in windows:
            item = QTreeWidgetItem([label(window)])
            item.setData(0, _WINDOW, id(window))
            if window.kind is model.Kind.STATUS:
                self.insertTopLevelItem(0, item)
            else:
                (rooms if window.kind is model.Kind.ROOM else direct).addChild(item)
            self._windows[id(window)] = window
            self._items[id(window)] = item
        for heading in (rooms, direct):
            heading.setHidden(heading.childCount() == 0)
        self.expandAll()

    def names(self) -> list[str]:
        """The conversations as listed, with their badges: what a user reads (for tests too)."""
        shown = []
        for top in self._tops():
            for item in [top] if top.data(0, _WINDOW) else _children(top):
                unread, mentions = item.data(0, _UNREAD), item.data(0, _MENTIONS)
                badge = f" [@{mentions}]" if mentions else f" [{unread}]" if unread else ""
                shown.append(item.text(0) + badge)
        return shown

    def sections(self) -> dict[str, list[str]]:
        """Heading -> the conversations under it."""
        return {
            top.text(0): [item.text(0) for item in _children(top)]
            for top in self._tops()
            if not top.data(0, _WINDOW) and not top.isHidden()
        }

    def _tops(self) -> list[QTreeWidgetItem]:
        found = [self.topLevelItem(i) for i in range(self.topLevelItemCount())]
        return [item for item in found if item is not None]

    def _heading(self, title: str) -> QTreeWidgetItem:
        heading = QTreeWidgetItem([title.upper()])
        # Enabled (a disabled item disables its children) but not selectable; moveCursor skips it.
        heading.setFlags(Qt.ItemFlag.ItemIsEnabled)
        font = QFont(heading.font(0))
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 0.85)
        heading.setFont(0, font)
        heading.setForeground(0, self.palette().color(self.palette().ColorRole.PlaceholderText))
        self.addTopLevelItem(heading)
        return heading

    def moveCursor(
        self, action: QAbstractItemView.CursorAction, modifiers: Qt.KeyboardModifier
    ) -> QModelIndex:
        """The arrow keys go from conversation to conversation, over the headings."""
        index = super().moveCursor(action, modifiers)
        if index.isValid() and not index.flags() & Qt.ItemFlag.ItemIsSelectable:
            up = action in (
                QAbstractItemView.CursorAction.MoveUp,
                QAbstractItemView.CursorAction.MovePageUp,
                QAbstractItemView.CursorAction.MoveHome,
            )
            beyond = self.indexAbove(index) if up else self.indexBelow(index)
            return beyond if beyond.isValid() else self.currentIndex()
        return index

    def _changed(self, item: QTreeWidgetItem | None) -> None:
        window = self._windows.get(item.data(0, _WINDOW)) if item is not None else None
        if window is not None:
            self._picked(window)

    def drawBranches(
        self, painter: QPainter, rect: QRect, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        """No expand arrows: the sections are always open."""


def _children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    found = [item.child(i) for i in range(item.childCount())]
    return [child for child in found if child is not None]
