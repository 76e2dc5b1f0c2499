"""Pages of names (who is online, who is in a room) for ``list`` and ``who`` replies.

Such a list grows with the users, so a reply holds one page: the first ``limit`` names in key
order after the key of the name the client asks after (the last of the page it has), and that
last name as ``next`` when more follow. No state is kept between pages: a user who comes or
goes meanwhile is listed or not, but nobody listed is repeated or skipped for it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.names import nick_key, normalize_nick


def after_key(after: str) -> str:
    """The key to list after for a request's ``after`` ("" from the first). Raises
    PeerError(INVALID_NICK) for what cannot be a name.
    """
    if not after:
        return ""
    try:
        return nick_key(normalize_nick(after))
    except PeerError as refused:
        raise PeerError(
            ErrorCode.INVALID_NICK, f"The list cannot go on after {after!r}: {refused.detail}"
        ) from None


def name_page(names: Iterable[tuple[str, str]], after: str, limit: int) -> tuple[list[str], str]:
    """From ``names`` ((key, name) pairs, unique keys), the names of the first ``limit`` with a
    key after ``after``, in key order, and the ``next`` to ask after ("" on the last page).
    O(names log limit).
    """
    first = heapq.nsmallest(limit + 1, (pair for pair in names if pair[0] > after))
    page = [name for _, name in first[:limit]]
    return page, page[-1] if len(first) > limit else ""
