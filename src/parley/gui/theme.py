"""The desktop app's colours, light and dark, and how to check them.

Every colour text is drawn in is chosen against the background it is drawn on, for a contrast
ratio of at least 4.5:1 (WCAG 2.1 AA for normal text); :meth:`Theme.text_pairs` lists those
pairs so a test can compute each ratio. Mentions use an accent (amber) that is neither the
selection colour (blue) nor the error colour (red), so a mention never reads as selected text.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

AA_TEXT = 4.5  # WCAG 2.1 AA, normal-size text


@dataclasses.dataclass(frozen=True, slots=True)
class Theme:
    name: str
    window: str  # the sidebar, header and members pane
    base: str  # the message view and the input line
    text: str
    muted: str  # timestamps, events, the topic, section headings
    button: str
    selection: str
    selection_text: str
    link: str
    error: str
    mention_background: str  # the whole line of a mention
    mention_text: str  # its timestamp and the "@" mark: the accent
    badge: str  # an unread count
    badge_text: str
    mention_badge: str  # a count of mentions
    mention_badge_text: str
    online: str
    away: str
    nicks: tuple[str, ...]  # nicknames, chosen by a hash of the name

    def text_pairs(self) -> dict[str, tuple[str, str]]:
        """Every (text colour, background colour) the app draws text with, by what it is."""
        pairs = {
            "text on the message view": (self.text, self.base),
            "text on the panes": (self.text, self.window),
            "muted on the message view": (self.muted, self.base),
            "muted on the panes": (self.muted, self.window),
            "links": (self.link, self.base),
            "errors": (self.error, self.base),
            "selected text": (self.selection_text, self.selection),
            "a mention's text": (self.text, self.mention_background),
            "a mention's accent": (self.mention_text, self.mention_background),
            "a mention's link": (self.link, self.mention_background),
            "unread badges": (self.badge_text, self.badge),
            "mention badges": (self.mention_badge_text, self.mention_badge),
            "online members": (self.online, self.window),
            "away members": (self.away, self.window),
            "button labels": (self.text, self.button),
        }
        for colour in self.nicks:
            pairs[f"nickname {colour}"] = (colour, self.base)
            pairs[f"nickname {colour} in a mention"] = (colour, self.mention_background)
        return pairs

    def palette(self) -> QPalette:
        palette = QPalette()
        roles = {
            QPalette.ColorRole.Window: self.window,
            QPalette.ColorRole.WindowText: self.text,
            QPalette.ColorRole.Base: self.base,
            QPalette.ColorRole.AlternateBase: self.window,
            QPalette.ColorRole.Text: self.text,
            QPalette.ColorRole.Button: self.button,
            QPalette.ColorRole.ButtonText: self.text,
            QPalette.ColorRole.Highlight: self.selection,
            QPalette.ColorRole.HighlightedText: self.selection_text,
            QPalette.ColorRole.PlaceholderText: self.muted,
            QPalette.ColorRole.Link: self.link,
            QPalette.ColorRole.ToolTipBase: self.base,
            QPalette.ColorRole.ToolTipText: self.text,
        }
        for role, colour in roles.items():
            palette.setColor(role, QColor(colour))
        # Disabled widgets (the members while reconnecting) are greyed, still readable.
        for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText):
            palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(self.muted))
        return palette


LIGHT = Theme(
    name="light",
    window="#f3f4f6",
    base="#ffffff",
    text="#1d1f23",
    muted="#5b6067",
    button="#e4e6ea",
    selection="#2a63c4",
    selection_text="#ffffff",
    link="#1a5bb0",
    error="#b3261e",
    mention_background="#fff1cc",
    mention_text="#8a4b00",
    badge="#5b6067",
    badge_text="#ffffff",
    mention_badge="#c4281c",
    mention_badge_text="#ffffff",
    online="#1e7a34",
    away="#8a5300",
    nicks=(
        "#b3261e", "#1e7a34", "#7d5a00", "#1a5bb0", "#8e2f8c", "#0f6f78",
        "#a8430f", "#4c7a12", "#ad1457", "#3949ab", "#00695c", "#6d4c41",
    ),
)  # fmt: skip

DARK = Theme(
    name="dark",
    window="#1f2227",
    base="#16181c",
    text="#e6e7e9",
    muted="#a0a6ae",
    button="#2c3038",
    selection="#2f5fa8",
    selection_text="#ffffff",
    link="#8ab4f8",
    error="#f28b82",
    mention_background="#3a3020",
    mention_text="#f5c469",
    badge="#5d636c",
    badge_text="#ffffff",
    mention_badge="#c4281c",
    mention_badge_text="#ffffff",
    online="#6ccf7f",
    away="#f0b455",
    nicks=(
        "#f28b82", "#81c995", "#fdd663", "#8ab4f8", "#e59bf0", "#78d9e3",
        "#fcad70", "#b5de7c", "#f48fb1", "#a4b0f5", "#6fd6c0", "#d7b8a8",
    ),
)  # fmt: skip


def luminance(colour: str) -> float:
    """Relative luminance of an sRGB colour ``#rrggbb`` (WCAG 2.1)."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two colours, from 1 (none) to 21 (black on white)."""
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def apply(app: QApplication, name: str) -> Theme:
    """``light`` or ``dark`` sets that palette (with the Fusion style, which follows it);
    anything else keeps the system's palette and takes the accents of whichever of the two is
    closer to it.
    """
    if name in ("light", "dark"):
        theme = DARK if name == "dark" else LIGHT
        app.setStyle("Fusion")
        app.setPalette(theme.palette())
        return theme
    window = app.palette().color(QPalette.ColorRole.Window)
    return DARK if window.lightness() < 128 else LIGHT
