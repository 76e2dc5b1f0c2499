"""What differs in SQL between SQLite and PostgreSQL, so that a query is written once.

Queries (parley.storage.queries) are written with PostgreSQL's numbered placeholders (``$1``)
and a few ``{name}`` tokens for the words that differ; :meth:`Dialect.render` turns them into
either backend's SQL. SQLite understands ``?1``-style numbered placeholders, so the arguments
are passed in the same order to both. Everything else the two share: ``ON CONFLICT`` upserts,
``RETURNING``, ``TRUE``/``FALSE``, ``CAST``.
"""

from __future__ import annotations

import dataclasses
import re

_PLACEHOLDER = re.compile(r"\$(\d+)")


@dataclasses.dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    # "$1" in a query becomes this with the number in it.
    placeholder: str
    # The larger of two values (SQLite's two-argument max()).
    greatest: str
    # "a is not b", where NULL is a value like any other.
    is_distinct: str
    # The LIMIT argument that means "no limit".
    no_limit: int | None
    # Column types by the schema's names for them (see parley.storage.schema).
    types: dict[str, str]

    def render(self, template: str) -> str:
        """``template`` in this dialect."""
        sql = template.format(greatest=self.greatest, is_distinct=self.is_distinct)
        return _PLACEHOLDER.sub(lambda m: self.placeholder.format(m.group(1)), sql)


SQLITE = Dialect(
    name="sqlite",
    placeholder="?{}",
    greatest="MAX",
    is_distinct="IS NOT",
    no_limit=-1,
    # SQLite keeps integers of any size in INTEGER, and booleans as 0 and 1.
    types={"text": "TEXT", "int": "INTEGER", "bigint": "INTEGER", "bool": "INTEGER",
           "serial": "INTEGER"},
)  # fmt: skip

POSTGRES = Dialect(
    name="postgresql",
    placeholder="${}",
    greatest="GREATEST",
    is_distinct="IS DISTINCT FROM",
    no_limit=None,
    types={"text": "TEXT", "int": "INTEGER", "bigint": "BIGINT", "bool": "BOOLEAN",
           "serial": "BIGSERIAL"},
)  # fmt: skip
