"""Desktop notifications (a mention, a private message while the window is in the background)
in plain text. The system's notification service reads markup in a notification's body
(``<b>``, ``<a href>``, ``<img src>`` on freedesktop servers), and Qt's own balloon reads a
title as markup when it looks like some, so a peer's ``<img src=…>`` could load a file or hide
the real text. Here the characters that start markup or an entity are replaced by look-alikes
that no parser reads, and the text is shortened to what a notification shows.
"""

from __future__ import annotations

PREVIEW_CHARACTERS = 200
# Full-width forms: read the same, never taken for markup or for an entity.
_INERT = str.maketrans({"<": "\uff1c", ">": "\uff1e", "&": "\uff06"})


def plain(text: str, limit: int = PREVIEW_CHARACTERS) -> str:
    """``text`` safe for any notification service: no markup, one line, at most ``limit``."""
    flat = " ".join(text.split()).translate(_INERT)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
