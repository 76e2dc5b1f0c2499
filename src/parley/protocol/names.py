"""Nickname and room name rules, shared by server and clients, and how names compare.

Two names are one name when their keys are equal (NFKC and case folding: 'Alice', 'ALICE') or
when they look alike: their skeletons are equal (Unicode TR39: 'Alice', and 'Alice' spelt
with a Cyrillic A, U+0410). The Unicode data (confusables, scripts, default-ignorable
characters) is ICU's, through PyICU: ICU is the reference implementation of TR39.
"""

from __future__ import annotations

import unicodedata

import icu

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError

GENERAL_ROOM = "#general"

# TR39's restriction levels, from strictest: ASCII-only, single script, highly restrictive,
# moderately restrictive, minimally restrictive. Moderately restrictive lets people write
# their names in any one script, Latin with Han and kana or Hangul, or Latin with one other
# script; but never Latin with Cyrillic or Greek, the mixes that make look-alikes of Latin
# names. Digits must be of one numbering system (no Latin 1 beside Arabic-Indic ٣), and a
# combining mark may not be repeated (a doubled mark renders as one).
_SPOOF_CHECKS = (
    icu.USpoofChecks.RESTRICTION_LEVEL | icu.USpoofChecks.MIXED_NUMBERS | icu.USpoofChecks.INVISIBLE
)
_SPOOF = icu.SpoofChecker()
_SPOOF.setRestrictionLevel(icu.URestrictionLevel.MODERATELY_RESTRICTIVE)
_SPOOF.setChecks(_SPOOF_CHECKS)

# The data skeletons come from, which is the ICU PyICU was built against: stored skeletons are
# computed again when it changes (parley.storage.skeletons).
SKELETON_DATA = f"ICU {icu.ICU_VERSION}, Unicode {icu.UNICODE_VERSION}"

# Zero-width spaces and joiners, the combining grapheme joiner, variation selectors, Hangul
# fillers, tags...: characters that show nothing, so a name with one looks like another name.
_DEFAULT_IGNORABLE = icu.UnicodeSet("[:Default_Ignorable_Code_Point:]")

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
    _refuse_invisible(nick, ErrorCode.INVALID_NICK, "Nicknames")
    for position, char in enumerate(nick):
        category = unicodedata.category(char)
        if not (
            char in _NICK_PUNCTUATION
            or category in _NICK_CATEGORIES
            or (position > 0 and category in _MARK_CATEGORIES)
        ):
            raise PeerError(ErrorCode.INVALID_NICK)
    _check_scripts(nick, ErrorCode.INVALID_NICK, "Nicknames")
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
    _refuse_invisible(name, ErrorCode.INVALID_ROOM, "Room names")
    for position, char in enumerate(name[1:]):
        category = unicodedata.category(char)
        if not (
            char in _ROOM_PUNCTUATION
            or category in _NICK_CATEGORIES
            or (position > 0 and category in _MARK_CATEGORIES)
        ):
            raise PeerError(ErrorCode.INVALID_ROOM)
    _check_scripts(name[1:], ErrorCode.INVALID_ROOM, "Room names")
    return name


def room_key(name: str) -> str:
    """The key rooms are compared by: '#Python' and '#python' are one room."""
    return nick_key(name)


def _refuse_invisible(name: str, code: ErrorCode, what: str) -> None:
    for char in name:
        if _DEFAULT_IGNORABLE.contains(char):
            raise PeerError(
                code, f"{what} may not contain invisible characters (U+{ord(char):04X})."
            )


def _check_scripts(name: str, code: ErrorCode, what: str) -> None:
    """Refuse the script mixes TR39's moderately restrictive level does not allow, digits of
    two numbering systems and repeated combining marks. ``name`` is NFKC-normalised and has
    passed the character rules.
    """
    failed = _SPOOF.check(name) & _SPOOF_CHECKS
    if failed & icu.USpoofChecks.RESTRICTION_LEVEL:
        raise PeerError(
            code,
            f"{what} may not mix scripts, except Latin with one other (not Cyrillic or Greek) "
            "or with Han, kana or Hangul.",
        )
    if failed & icu.USpoofChecks.MIXED_NUMBERS:
        raise PeerError(code, f"{what} may not mix digits of different scripts.")
    if failed:
        raise PeerError(code, f"{what} may not repeat a combining mark on one letter.")


def skeleton(text: str) -> str:
    """The TR39 skeleton of ``text`` (NFD, each character mapped to its prototype from
    confusables.txt, NFD again): two strings that look alike have the same skeleton.
    Case-sensitive, as TR39 defines it: 'I' and 'l' share one, 'A' and 'a' do not.
    """
    result: str = _SPOOF.getSkeleton(0, text)
    return result


def name_skeleton(name: str) -> str:
    """The key look-alike names share: a nickname (or a room name) may not have the same one
    as another. 'Alice', 'Alice' with a Cyrillic A (U+0410) and 'aIice' (capital I) share one.

    The skeleton is taken before case folding, so that 'I' meets 'l', and after it, so that
    look-alikes among small letters meet too. Costs two ICU skeleton calls.
    """
    return skeleton(nick_key(skeleton(name)))


def is_room(target: str) -> bool:
    """Whether a ``send`` target names a room (rooms start with '#', nicknames cannot)."""
    return target.startswith("#")
