"""Emoji for the input line: ``:shortcode:`` turned into the emoji when a line is sent, Tab
completion of a started ``:shortc``, and the few emoji the picker offers. The names are the
``emoji`` package's (CLDR names and the common GitHub/Slack aliases), not a table kept here.
"""

from __future__ import annotations

import functools
import re

import emoji as emoji_data

# The picker's emoji, by shortcode, in the order shown (a grid of 8 columns).
PICKER = (
    ":thumbs_up:", ":smile:", ":joy:", ":heart:", ":tada:", ":eyes:", ":pray:", ":fire:",
    ":thinking_face:", ":wave:", ":clap:", ":rocket:", ":white_check_mark:", ":x:",
    ":warning:", ":bulb:", ":coffee:", ":sunglasses:", ":slightly_smiling_face:", ":cry:",
    ":ok_hand:", ":muscle:", ":100:", ":sparkles:",
)  # fmt: skip
_STARTED = re.compile(r":[a-z0-9_+\-]{2,40}$")


@functools.cache
def shortcodes() -> dict[str, str]:
    """Shortcode -> emoji, for every fully qualified emoji: built once, about 5,000 entries."""
    found: dict[str, str] = {}
    for character, data in emoji_data.EMOJI_DATA.items():
        if data.get("status") != emoji_data.STATUS["fully_qualified"]:
            continue
        for name in [data["en"], *data.get("alias", [])]:
            found.setdefault(name.lower(), character)
    return found


def emojize(text: str) -> str:
    """``text`` with every known ``:shortcode:`` replaced by its emoji; others left alone."""
    return emoji_data.emojize(text, language="alias")


def started(before: str) -> str:
    """The ``:shortc`` being typed at the end of ``before``, or ""."""
    match = _STARTED.search(before)
    return match.group() if match else ""


def complete(word: str, limit: int = 10) -> list[str]:
    """Emoji whose shortcode begins with ``word`` (``:thu``), the shortest names first."""
    prefix = word.lower()
    names = sorted((name for name in shortcodes() if name.startswith(prefix)), key=len)
    chosen: list[str] = []
    for name in names:
        character = shortcodes()[name]
        if character not in chosen:
            chosen.append(character)
        if len(chosen) == limit:
            break
    return chosen


def picker() -> list[tuple[str, str]]:
    """(emoji, shortcode) for the picker."""
    return [(emojize(code), code) for code in PICKER if emojize(code) != code]
