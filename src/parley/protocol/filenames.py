"""File names from other people, made safe to show and to save: the server cleans the name a
sender gives before anyone sees it, and the receiving client cleans it again before it touches
the disk (it must not trust a server either).

What is removed or replaced: directories (``../../etc/passwd`` becomes ``passwd``), control
characters, bidi overrides and line separators (a name that reads backwards can disguise
``exe`` as ``txt``), characters Windows refuses in names, leading dots (hidden files) and
trailing dots and spaces. Windows' reserved device names (``CON``, ``NUL.txt``...) get a ``_``
in front. Names are cut to MAX_FILE_NAME_CHARS characters, keeping the extension. A name that
would show nothing (only zero-width or other invisible characters, dots and underscores) is
refused.
"""

from __future__ import annotations

import re
import unicodedata

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.text import is_invisible

# Controls, bidi marks and overrides, line separators, and what Windows forbids in names.
_UNSAFE = re.compile(
    '[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069<>:"|?*]'
)
_RESERVED = re.compile(r"(?i)^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$")
_LONGEST_EXTENSION = 16


def clean_file_name(raw: str) -> str:
    """A name safe to show and to use in a directory. Raises PeerError (INVALID_FILE) when
    nothing usable is left.
    """
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name)
    name = name.strip(" ").lstrip(".").rstrip(". ")
    if not name or not name.strip("_"):
        raise PeerError(ErrorCode.INVALID_FILE, "The file has no usable name.")
    if is_invisible(name.replace("_", "").replace(".", "")):
        raise PeerError(
            ErrorCode.INVALID_FILE,
            "The file's name shows nothing: rename it with at least one visible character.",
        )
    if _RESERVED.match(name):
        name = "_" + name
    return _shorten(name, limits.MAX_FILE_NAME_CHARS)


def _shorten(name: str, most: int) -> str:
    if len(name) <= most:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension) <= _LONGEST_EXTENSION:
        return stem[: most - len(extension) - 1] + "." + extension
    return name[:most]
