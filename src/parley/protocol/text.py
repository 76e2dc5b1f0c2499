"""Chat text rules: what the server accepts, and how a client makes peer text safe to print."""

from __future__ import annotations

import re

import icu

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError

# A message whose text starts with this is an action ("/me waves" reads "* Alice waves"). It
# is a convention between clients, as IRC's CTCP ACTION is: the server stores and relays the
# text as it is, so history and every client agree on it.
ACTION_PREFIX = "/me "

# C0 controls except TAB, DEL, and C1 controls: these drive terminals (ESC starts an ANSI
# sequence, CR rewrites a line, U+009B is a one-character CSI) and never belong in a chat line.
# U+2028/U+2029 break lines in some front ends, which would let a message fake a second line.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


# Characters that show nothing: white space, controls and format characters (zero-width space,
# joiners, bidi marks), the other default-ignorable ones (the combining grapheme joiner,
# variation selectors, Hangul fillers, tags), and the blank Braille pattern, which fonts draw
# empty. ICU's data, so it follows Unicode.
_INVISIBLE = icu.UnicodeSet(r"[[:Default_Ignorable_Code_Point:][:White_Space:][:Cc:][:Cf:]\u2800]")


def is_invisible(text: str) -> bool:
    """Whether ``text`` would show nothing at all: it is empty, or every character in it is
    invisible (see _INVISIBLE). O(len(text)).
    """
    result: bool = _INVISIBLE.containsAll(text)
    return result


def check_message_text(text: str) -> str:
    """Return ``text`` if a server may store and relay it; raise PeerError(INVALID_TEXT) if not.

    A message is one line of 1 to MAX_TEXT_CHARS characters, with at least one visible
    character, and no control characters other than TAB. Costs one regex scan and one set scan.
    """
    if len(text) > limits.MAX_TEXT_CHARS or _FORBIDDEN.search(text):
        raise PeerError(ErrorCode.INVALID_TEXT)
    if is_invisible(text):
        raise PeerError(
            ErrorCode.INVALID_TEXT,
            "The message shows nothing: it is empty or only blank, zero-width or other "
            "invisible characters.",
        )
    return text


def check_topic(text: str) -> str:
    """Return ``text`` if it may be a room topic (empty clears it); else raise
    PeerError(INVALID_TOPIC). The same characters as a message, at most MAX_TOPIC_CHARS.
    """
    if len(text) > limits.MAX_TOPIC_CHARS or _FORBIDDEN.search(text):
        raise PeerError(ErrorCode.INVALID_TOPIC)
    return text


def check_reason(text: str) -> str:
    """Return ``text`` if it may be the reason given for a kick, ban or mute (may be empty);
    else raise PeerError(INVALID_TEXT). The same characters as a message.
    """
    if len(text) > limits.MAX_REASON_CHARS or _FORBIDDEN.search(text):
        raise PeerError(ErrorCode.INVALID_TEXT, "Reasons are one line of at most 300 characters.")
    return text


def check_away(text: str) -> str:
    """Return ``text`` if it may be an away message (empty means back); else raise
    PeerError(INVALID_TEXT). The same characters as a message, at most MAX_AWAY_CHARS.
    """
    if len(text) > limits.MAX_AWAY_CHARS or _FORBIDDEN.search(text):
        raise PeerError(
            ErrorCode.INVALID_TEXT,
            f"Away messages are one line of at most {limits.MAX_AWAY_CHARS} characters.",
        )
    return text


def _build_terminal_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x20):
        # U+2400 CONTROL PICTURES: ESC shows as '␛', visible but inert.
        table[code] = chr(0x2400 + code)
    table[0x09] = " "
    table[0x7F] = "\u2421"
    for code in range(0x80, 0xA0):
        table[code] = "\ufffd"
    # Bidi embeddings, overrides and isolates can make a line read differently from what it is.
    for code in [0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        table[code] = "\ufffd"
    return table


_TERMINAL_TABLE = _build_terminal_table()


def for_terminal(text: str) -> str:
    """Text from a peer, made safe to write to a terminal: no character in the result is a
    control character or a bidi override, so no escape sequence can reach the terminal.
    """
    return text.translate(_TERMINAL_TABLE)
