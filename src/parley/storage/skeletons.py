"""Look-alike names in storage: each account and room row keeps its name's skeleton
(parley.protocol.names.name_skeleton) with a unique index, so no two names that look alike can
be stored, whichever node or process stores them.

Databases from before skeletons were kept may hold look-alikes already. The upgrade keeps them
all: the oldest of each group keeps ``look_alike = 0`` and the later ones count up from 1, so
the unique index on ``(skeleton, look_alike)`` holds; a new row always has ``look_alike = 0``
and is refused while any row has its skeleton.

Skeletons depend on the Unicode data of the ICU that PyICU was built against. The table
``skeleton_data`` records which data the stored ones come from; a server opening the database
with other data computes them all again (the same way, so names that now look alike are kept).
"""

from __future__ import annotations

from collections.abc import Iterable

from parley.protocol.names import SKELETON_DATA, name_skeleton

# The tables whose names must not look alike. Fixed names, never user input, so they may be
# formatted into SQL.
TABLES = ("accounts", "rooms")

# Which data the stored skeletons must come from.
DATA = SKELETON_DATA


def numbered(rows: Iterable[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """(skeleton, look_alike, key) for each (key, name) row, given oldest first: 0 for the
    first name with a skeleton, then 1, 2... for the later ones that look like it.
    """
    seen: dict[str, int] = {}
    result = []
    for key, name in rows:
        skeleton = name_skeleton(name)
        count = seen.get(skeleton, 0)
        seen[skeleton] = count + 1
        result.append((skeleton, count, key))
    return result
