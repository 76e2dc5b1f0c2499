"""The header above the messages: the conversation's name, its member count, its topic, and
the connection's state when it is not plain "connected" (reconnecting, offline), so a lost
connection shows where the user is looking, not only in the status bar.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from parley.gui.theme import Theme


class Header(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.name = QLabel()
        self.count = QLabel()
        self.state = QLabel()
        self.topic = QLabel()
        for label in (self.name, self.count, self.state, self.topic):
            label.setTextFormat(Qt.TextFormat.PlainText)  # names and topics are never markup
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = QFont(self.name.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.name.setFont(font)
        self.topic.setWordWrap(True)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.name)
        top.addSpacing(10)
        top.addWidget(self.count)
        top.addStretch(1)
        top.addWidget(self.state)
        column = QVBoxLayout(self)
        column.setContentsMargins(12, 8, 12, 8)
        column.setSpacing(2)
        column.addLayout(top)
        column.addWidget(self.topic)

    def show_conversation(self, name: str, members: int | None, topic: str) -> None:
        """``members`` None: not a room (no count is shown)."""
        self.name.setText(name)
        self.count.setText(
            "" if members is None else f"{members} member{'' if members == 1 else 's'}"
        )
        self.topic.setText(topic)
        self.topic.setVisible(bool(topic))

    def show_state(self, state: str, connected: bool, theme: Theme) -> None:
        self.state.setText("" if connected else state[0].upper() + state[1:])
        self.state.setStyleSheet(f"color: {theme.error}; font-weight: bold;")

    def restyle(self, theme: Theme) -> None:
        for label in (self.count, self.topic):
            label.setStyleSheet(f"color: {theme.muted};")
