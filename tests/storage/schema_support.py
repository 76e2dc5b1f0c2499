"""A database's schema as data (tables, columns with types and nullability, primary keys,
indexes, foreign keys), read from SQLite or PostgreSQL or made from parley.storage.schema, in
one shape so that they compare with ==.
"""

from __future__ import annotations

import dataclasses
import sqlite3

import asyncpg

from parley.storage import schema
from parley.storage.dialect import Dialect


@dataclasses.dataclass(frozen=True)
class TableShape:
    columns: dict[str, tuple[str, bool]]  # name -> (type, not null)
    primary_key: tuple[str, ...]
    indexes: dict[str, tuple[tuple[str, ...], bool]]  # name -> (columns, unique)
    foreign_keys: frozenset[tuple[str, str, str, str]]  # (column, table, column, on delete)


Shape = dict[str, TableShape]

# How PostgreSQL's catalog names the types the dialect writes.
_PG_TYPE_NAMES = {"BIGSERIAL": "bigint"}


def expected(dialect: Dialect) -> Shape:
    """What parley.storage.schema says a database of ``dialect`` holds."""
    shape = {}
    for table in schema.TABLES:
        columns = {}
        foreign_keys = set()
        for column in table.columns:
            declared = dialect.types[column.type]
            if dialect.name == "postgresql":
                declared = _PG_TYPE_NAMES.get(declared, declared.lower())
            primary = column.name in table.primary_key
            columns[column.name] = (declared, column.not_null or primary)
            if column.references is not None:
                ref_table, ref_column = column.references.replace(")", "").split(" (")
                foreign_keys.add((column.name, ref_table, ref_column, "CASCADE"))
        shape[table.name] = TableShape(
            columns,
            table.primary_key,
            {index.name: (index.columns, index.unique) for index in table.indexes},
            frozenset(foreign_keys),
        )
    return shape


def of_sqlite(path: str) -> Shape:
    db = sqlite3.connect(path)
    try:
        shape = {}
        tables = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        for (table,) in tables:
            info = db.execute(f"PRAGMA table_info({table})").fetchall()
            columns = {
                name: (kind.upper(), bool(notnull or pk)) for _, name, kind, notnull, _, pk in info
            }
            primary_key = tuple(
                name for *_, name in sorted((pk, name) for _, name, _, _, _, pk in info if pk)
            )
            indexes = {}
            for _, name, unique, origin, _ in db.execute(f"PRAGMA index_list({table})"):
                if origin == "pk":
                    continue
                index_columns = db.execute(f"PRAGMA index_info({name})").fetchall()
                indexes[name] = (tuple(c for *_, c in sorted(index_columns)), bool(unique))
            foreign_keys = frozenset(
                (row[3], row[2], row[4], row[6].upper())
                for row in db.execute(f"PRAGMA foreign_key_list({table})")
            )
            shape[table] = TableShape(columns, primary_key, indexes, foreign_keys)
        return shape
    finally:
        db.close()


async def of_postgres(url: str, namespace: str) -> Shape:
    db = await asyncpg.connect(url)
    try:
        shape = {}
        tables = await db.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = $1 AND table_name != 'schema_version'",
            namespace,
        )
        for (table,) in tables:
            columns = {
                row["column_name"]: (row["data_type"], row["is_nullable"] == "NO")
                for row in await db.fetch(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                    "WHERE table_schema = $1 AND table_name = $2",
                    namespace,
                    table,
                )
            }
            primary_key: tuple[str, ...] = ()
            indexes = {}
            for row in await db.fetch(
                "SELECT i.relname AS name, x.indisunique AS is_unique, "
                "x.indisprimary AS is_primary, "
                "array_agg(a.attname::text ORDER BY k.ord) AS columns "
                "FROM pg_index x "
                "JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
                "WHERE n.nspname = $1 AND t.relname = $2 "
                "GROUP BY i.relname, x.indisunique, x.indisprimary",
                namespace,
                table,
            ):
                if row["is_primary"]:
                    primary_key = tuple(row["columns"])
                else:
                    indexes[row["name"]] = (tuple(row["columns"]), row["is_unique"])
            foreign_keys = frozenset(
                (
                    row["col"],
                    row["ref_table"],
                    row["ref_col"],
                    "CASCADE" if row["del"] == "c" else row["del"],
                )
                for row in await db.fetch(
                    "SELECT a.attname::text AS col, f.relname::text AS ref_table, "
                    "fa.attname::text AS ref_col, c.confdeltype::text AS del "
                    "FROM pg_constraint c "
                    "JOIN pg_class t ON t.oid = c.conrelid "
                    "JOIN pg_namespace n ON n.oid = t.relnamespace "
                    "JOIN pg_class f ON f.oid = c.confrelid "
                    "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                    "JOIN pg_attribute fa ON fa.attrelid = c.confrelid "
                    "  AND fa.attnum = c.confkey[1] "
                    "WHERE c.contype = 'f' AND n.nspname = $1 AND t.relname = $2",
                    namespace,
                    table,
                )
            )
            shape[table] = TableShape(columns, primary_key, indexes, foreign_keys)
        return shape
    finally:
        await db.close()


def differences(left: Shape, right: Shape) -> list[str]:
    """What differs, table by table, in words (empty when nothing)."""
    found = []
    for table in sorted(set(left) | set(right)):
        if table not in left or table not in right:
            found.append(f"table {table} only in {'right' if table not in left else 'left'}")
            continue
        for part in ("columns", "primary_key", "indexes", "foreign_keys"):
            a, b = getattr(left[table], part), getattr(right[table], part)
            if a != b:
                found.append(f"{table}.{part}: {a} != {b}")
    return found
