"""How windows, lines and the status bar look: styled text for prompt_toolkit, built from the
window model. Colours come from the theme by class name, so ``NO_COLOR`` and the light theme
change the style sheet, never this code.
"""

from __future__ import annotations

import time
import zlib

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.formatted_text.utils import fragment_list_width
from prompt_toolkit.styles import Style as StyleSheet

from parley.client.windows import Kind, Line, Style, Window, Windows
from parley.protocol.names import nick_key

# Twelve nickname colours, told apart on dark and light backgrounds alike.
NICK_COLOURS = 12
DIVIDER = "─── new messages ───"

_COMMON = {
    "history": "italic",
    "own": "bold",
    "mention": "bold reverse",
    "divider": "fg:ansibrightred",
    "error": "fg:ansired bold",
    "topic": "reverse",
    "sidebar.current": "reverse",
    "sidebar.heading": "bold underline",
    "sidebar.unread": "bold",
    "status.alert": "bold fg:ansired",
    "status.mention": "bold fg:ansiyellow",
    "question": "bold",
}
_DARK = {
    **_COMMON,
    "status": "reverse",
    "time": "fg:ansibrightblack",
    "event": "fg:ansibrightblack",
    "notice": "fg:ansicyan",
    "action": "fg:ansimagenta",
    "sidebar": "fg:ansiwhite",
}
_LIGHT = {
    **_COMMON,
    "status": "bg:ansiblue fg:ansiwhite",
    "time": "fg:ansigray",
    "event": "fg:ansigray",
    "notice": "fg:ansiblue",
    "action": "fg:ansimagenta",
    "sidebar": "",
}
_NICK_DARK = [
    "ansired", "ansigreen", "ansiyellow", "ansiblue", "ansimagenta", "ansicyan",
    "ansibrightred", "ansibrightgreen", "ansibrightyellow", "ansibrightblue",
    "ansibrightmagenta", "ansibrightcyan",
]  # fmt: skip
_NICK_LIGHT = [
    "ansired", "ansigreen", "ansibrown", "ansiblue", "ansimagenta", "ansiteal",
    "#af0000", "#008700", "#875f00", "#005faf", "#870087", "#005f5f",
]  # fmt: skip


def style_sheet(theme: str) -> StyleSheet:
    rules = dict(_LIGHT if theme == "light" else _DARK)
    colours = _NICK_LIGHT if theme == "light" else _NICK_DARK
    for number, colour in enumerate(colours):
        rules[f"nick.c{number}"] = f"fg:{colour}"
    return StyleSheet.from_dict(rules)


def nick_class(nick: str) -> str:
    """The same colour for a nickname on every run and every computer (CRC-32 of its key)."""
    return f"class:nick.c{zlib.crc32(nick_key(nick).encode()) % NICK_COLOURS}"


def stamp(line: Line, time_format: str, now: float | None = None) -> str:
    when = time.localtime(line.ts)
    text = time.strftime(time_format, when)
    if line.history:
        today = time.localtime(time.time() if now is None else now)
        if (when.tm_year, when.tm_yday) != (today.tm_year, today.tm_yday):
            text = time.strftime("%Y-%m-%d ", when) + text
    return text


def line_fragments(line: Line, time_format: str) -> StyleAndTextTuples:
    extra = " class:history" if line.history else ""
    fragments: StyleAndTextTuples = [("class:time" + extra, stamp(line, time_format) + " ")]
    body = "class:own" if line.own else "class:mention" if line.mention else ""
    match line.style:
        case Style.MESSAGE:
            nick = nick_class(line.sender)
            fragments += [
                (nick + extra, "<"),
                (nick + " class:own" * line.own + extra, line.sender),
                (nick + extra, "> "),
                (body + extra, line.text),
            ]
        case Style.ACTION:
            fragments += [
                ("class:action" + extra, "* "),
                (nick_class(line.sender) + extra, line.sender),
                ("class:action " + body + extra, f" {line.text}"),
            ]
        case Style.EVENT:
            fragments.append(("class:event " + body, f"-- {line.text}"))
        case Style.NOTICE:
            fragments.append(("class:notice", f"*** {line.text}"))
        case Style.ERROR:
            fragments.append(("class:error", f"*** {line.text}"))
    return fragments


def pane_fragments(
    window: Window, rows: int, scroll: int, time_format: str, width: int
) -> tuple[StyleAndTextTuples, int]:
    """The lines of ``window`` that end ``scroll`` lines above its last one, enough to fill
    ``rows`` rows; and the number of the last fragment line (the view is anchored there).
    """
    lines = window.lines
    end = max(0, len(lines) - scroll)
    begin = max(0, end - rows)
    divider = window.divider_index()
    fragments: StyleAndTextTuples = []
    count = 0
    for index in range(begin, end):
        if index == divider:
            fragments.append(("class:divider", DIVIDER.center(max(width - 1, len(DIVIDER)), "─")))
            fragments.append(("", "\n"))
            count += 1
        fragments += line_fragments(lines[index], time_format)
        fragments.append(("", "\n"))
        count += 1
    if fragments:
        fragments.pop()  # no newline after the last line
    return fragments, max(count - 1, 0)


def most_scroll(window: Window, rows: int, time_format: str, width: int) -> int:
    """How far up ``window`` can scroll with ``rows`` rows ``width`` columns wide still full:
    its first line at the top. 0 when all its lines fit.
    """
    filled = 0
    for index, line in enumerate(window.lines):
        columns = fragment_list_width(line_fragments(line, time_format))
        filled += max(1, -(-columns // max(width, 1)))
        if filled >= rows:
            return len(window.lines) - index - 1
    return 0


def window_label(windows: Windows, window: Window) -> str:
    return f"{windows.number(window)}:{window.name}"


def status_fragments(
    windows: Windows, server: str, nick: str, state: str, alert: bool, scroll: int
) -> StyleAndTextTuples:
    current = windows.current
    fragments: StyleAndTextTuples = [
        ("class:status", f" {server} │ {nick} │ {window_label(windows, current)} │ "),
        ("class:status class:status.alert" if alert else "class:status", state),
    ]
    active = [
        (window, f"{window_label(windows, window)}({window.unread}{'!' * bool(window.mentions)})")
        for _, window in windows.with_unread()
    ]
    if active:
        fragments.append(("class:status", " │ Act: "))
        for position, (window, label) in enumerate(active):
            tone = "class:status class:status.mention" if window.mentions else "class:status"
            fragments.append((tone, label + (" " if position < len(active) - 1 else "")))
    if scroll:
        fragments.append(("class:status", f" │ -- scrolled up {scroll} --"))
    fragments.append(("class:status", " "))
    return fragments


def sidebar_fragments(windows: Windows, width: int) -> StyleAndTextTuples:
    """The windows, numbered with their unread counts, then the members of the room in view."""
    fragments: StyleAndTextTuples = [("class:sidebar.heading", "Windows"), ("", "\n")]
    for window in windows:
        label = window_label(windows, window)
        if window.unread:
            label += f" ({window.unread})"
        tone = "class:sidebar.current" if window is windows.current else "class:sidebar"
        if window.unread and window is not windows.current:
            tone += " class:sidebar.unread"
        fragments += [(tone, label[:width]), ("", "\n")]
    current = windows.current
    if current.kind is Kind.ROOM and current.members:
        fragments += [("", "\n"), ("class:sidebar.heading", f"Members ({current.member_count})")]
        for nick in sorted(current.members.values(), key=str.casefold):
            fragments += [("", "\n"), (nick_class(nick), nick[:width])]
        if current.member_count > len(current.members):
            fragments += [("", "\n"), ("class:sidebar", "...")]
    return fragments
