"""Nickname and room name rules, shared by server and clients."""

from __future__ import annotations

import unicodedata

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError

GENERAL_ROOM = "#general"

# Unicode letters and decimal digits, so that people can chat under their own script's names;
# combining marks too (many scripts need them), but not as the first character.
_NICK_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"})
_MARK_CATEGORIES = frozenset({"Mn", "Mc"})
_NICK_PUNCTUATION = frozenset("_-")


def normalize_nick(raw: str) -> str:
    """The nickname as it will be shown: NFKC-normalised and checked.

    Rules: after normalisation, 1 to MAX_NICK_CHARS characters, each a letter, a decimal digit,
    '_' or '-', or a combining mark after the first character. Raises PeerError(INVALID_NICK).
    """
    nick = unicodedata.normalize("NFKC", raw)
    if not 1 <= len(nick) <= limits.MAX_NICK_CHARS:
        raise PeerError(ErrorCode.INVALID_NICK)
    for position, char in enumerate(nick):
        category = unicodedata.category(char)
        if not (
            char in _NICK_PUNCTUATION
            or category in _NICK_CATEGORIES
            or (position > 0 and category in _MARK_CATEGORIES)
        ):
            raise PeerError(ErrorCode.INVALID_NICK)
    return nick


def nick_key(nick: str) -> str:
    """The key two nicknames are compared by: 'Alice', 'ALICE' and the
    full-width form of 'alice' are one name.

    Case folding can undo NFKC form, hence the second normalisation.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", nick).casefold())


_ROOM_PUNCTUATION = frozenset("_-.")


def normalize_room(raw: str) -> str:
    """The room name as it will be shown: NFKC-normalised and checked.

    Rules: '#' then 1 to MAX_ROOM_CHARS - 1 characters, each a letter, a decimal digit, '_',
    '-' or '.', or a combining mark after the first. Raises PeerError(INVALID_ROOM).
    """
    name = unicodedata.normalize("NFKC", raw)
    if not (2 <= len(name) <= limits.MAX_ROOM_CHARS and name.startswith("#")):
        raise PeerError(ErrorCode.INVALID_ROOM)
    for position, char in enumerate(name[1:]):
        category = unicodedata.category(char)
        if not (
            char in _ROOM_PUNCTUATION
            or category in _NICK_CATEGORIES
            or (position > 0 and category in _MARK_CATEGORIES)
        ):
            raise PeerError(ErrorCode.INVALID_ROOM)
    return name


def room_key(name: str) -> str:
    """The key rooms are compared by: '#Python' and '#python' are one room."""
    return nick_key(name)


def is_room(target: str) -> bool:
    """Whether a ``send`` target names a room (rooms start with '#', nicknames cannot)."""
    return target.startswith("#")
