"""The current schema, described once for both backends.

A new database is made from this description at the latest version; a database made by an
earlier release is brought to it by its backend's migrations (``MIGRATIONS`` in sqlite.py and
postgres.py: never edit a shipped step, add one). tests/storage/test_schema.py checks that
both ways end in this schema, column for column and index for index, on each backend, so the
two backends cannot drift apart unnoticed.

Column types are the schema's own names (``text``, ``int``, ``bigint``, ``bool``, ``serial``),
which each dialect turns into its own (parley.storage.dialect).
"""

from __future__ import annotations

import dataclasses

from parley.storage import skeletons
from parley.storage.dialect import Dialect


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    not_null: bool = True
    # SQL for the default, the same in both dialects.
    default: str | None = None
    # "table (column)" this column refers to; the row goes when that one does.
    references: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _text(name: str, *, default: str | None = None, references: str | None = None) -> Column:
    return Column(name, "text", default=default, references=references)


def _bigint(name: str, *, not_null: bool = True, default: str | None = None) -> Column:
    return Column(name, "bigint", not_null=not_null, default=default)


_ACCOUNT_KEY = _text("account_key", references="accounts (key)")
# Name skeletons (parley.storage.skeletons): unique per (skeleton, look_alike).
_SKELETON = (_text("skeleton", default="''"), Column("look_alike", "int", default="0"))

TABLES: tuple[Table, ...] = (
    Table(
        "conversations",
        (_text("id"), _bigint("last_seq", default="0")),
        primary_key=("id",),
    ),
    Table(
        "messages",
        (_text("conversation"), _bigint("seq"), _bigint("ts"), _text("sender"),
         _text("sender_key"), _text("recipient"), _text("text"), _text("msg_id")),
        primary_key=("conversation", "seq"),
        indexes=(Index("messages_retry", ("conversation", "sender_key", "msg_id"), unique=True),
                 Index("messages_ts", ("ts",))),
    ),
    Table(
        "participants",
        (_text("conversation"), _text("principal")),
        primary_key=("conversation", "principal"),
        indexes=(Index("participants_by_nick", ("principal",)),),
    ),
    Table(
        "accounts",
        (_text("key"), _text("name"), _text("password_hash"), _text("role"),
         _bigint("created_ms"), _text("id"), *_SKELETON),
        primary_key=("key",),
        indexes=(Index("accounts_by_id", ("id",), unique=True),
                 Index("accounts_by_skeleton", ("skeleton", "look_alike"), unique=True)),
    ),
    Table(
        "sessions",
        (_text("token_hash"), _ACCOUNT_KEY, _bigint("expires_ms")),
        primary_key=("token_hash",),
        indexes=(Index("sessions_by_account", ("account_key",)),),
    ),
    Table(
        "rooms",
        (_text("key"), _text("name"), _text("topic"), _text("topic_by"), _bigint("topic_ms"),
         _text("created_by"), _bigint("created_ms"),
         Column("retention_days", "int", not_null=False), *_SKELETON),
        primary_key=("key",),
        indexes=(Index("rooms_by_skeleton", ("skeleton", "look_alike"), unique=True),),
    ),
    Table(
        "members",
        (_text("room_key"), _ACCOUNT_KEY, Column("operator", "bool")),
        primary_key=("room_key", "account_key"),
        indexes=(Index("members_by_account", ("account_key",)),),
    ),
    Table(
        "sanctions",
        (_text("room_key"), _text("target_key"), _text("kind"),
         _bigint("until_ms", not_null=False), _text("by_name"), _text("reason"),
         _bigint("created_ms")),
        primary_key=("room_key", "target_key", "kind"),
    ),
    Table(
        "audit",
        (Column("id", "serial"), _bigint("ts"), _text("actor"), _text("action"), _text("room"),
         _text("target"), _text("detail")),
        primary_key=("id",),
    ),
    Table(
        "read_markers",
        (_ACCOUNT_KEY, _text("conversation"), _bigint("seq")),
        primary_key=("account_key", "conversation"),
    ),
    Table(
        "files",
        (_text("file_id"), _text("sha256"), _text("name"), _bigint("size"),
         _text("sender_key"), _text("sender"), _text("conversation"), _text("recipient"),
         _bigint("created_ms"), _bigint("expires_ms"), Column("complete", "bool"),
         _text("quota_key", default="''")),
        primary_key=("file_id",),
        indexes=(Index("files_by_sender", ("sender_key", "expires_ms")),
                 Index("files_by_conversation", ("conversation", "created_ms")),
                 Index("files_by_expiry", ("expires_ms",)),
                 Index("files_by_sha256", ("sha256",)),
                 Index("files_by_quota", ("quota_key", "expires_ms"))),
    ),
    Table(
        "file_readers",
        (_text("file_id", references="files (file_id)"), _text("principal")),
        primary_key=("file_id", "principal"),
        indexes=(Index("file_readers_by_nick", ("principal",)),),
    ),
    # One-time tokens that open a file connection, by their SHA-256 (a stolen copy of the
    # database opens nothing): any node redeems a token another issued.
    Table(
        "file_tickets",
        (_text("token_hash"), Column("upload", "bool"), _text("file_id"), _text("holder"),
         _bigint("expires_ms")),
        primary_key=("token_hash",),
        indexes=(Index("file_tickets_by_expiry", ("expires_ms",)),
                 Index("file_tickets_by_holder", ("holder", "expires_ms"))),
    ),
    # Files in use by one upload or by a purge, on whichever node, until expires_ms (a lease:
    # a node that dies holding one does not hold it for ever).
    Table(
        "file_claims",
        (_text("file_id"), _text("kind"), _bigint("expires_ms")),
        primary_key=("file_id",),
    ),
    Table(
        "login_attempts",
        # previous_ms: the attempt before the last (0 when none); its time decides the next
        # wait.
        (_text("key"), _bigint("count"), _bigint("last_ms"), _bigint("previous_ms")),
        primary_key=("key",),
        indexes=(Index("login_attempts_by_time", ("last_ms",)),),
    ),
    # Events limited per key and window (registrations, rooms created), one row per key and
    # millisecond: every node counts the same ones.
    Table(
        "window_events",
        (_text("key"), _bigint("at_ms"), Column("count", "int")),
        primary_key=("key", "at_ms"),
        indexes=(Index("window_events_by_time", ("at_ms",)),),
    ),
    Table(
        "account_changes",
        (Column("seq", "serial"), _text("account_key"), _bigint("ts")),
        primary_key=("seq",),
    ),
    # Which Unicode data the stored skeletons come from: one row.
    Table("skeleton_data", (_text("data"),)),
    # One row. ``epoch``: the history epoch clients are told at hello, raised when a run whose
    # last commits a crash could take back did not stop cleanly (their seqs may then be given
    # to other messages). ``running``: how the run in progress commits ("full", "normal"),
    # "" once it stopped cleanly.
    Table("history_epoch", (_bigint("epoch", default="0"), _text("running", default="''"))),
)  # fmt: skip

BY_NAME = {table.name: table for table in TABLES}


def _column_sql(column: Column, dialect: Dialect) -> str:
    if column.type == "serial":
        # The only column of its table's primary key, numbered by the database.
        suffix = "PRIMARY KEY AUTOINCREMENT" if dialect.name == "sqlite" else "PRIMARY KEY"
        return f"{column.name} {dialect.types['serial']} {suffix}"
    sql = f"{column.name} {dialect.types[column.type]}"
    if column.not_null:
        sql += " NOT NULL"
    if column.default is not None:
        sql += f" DEFAULT {column.default}"
    if column.references is not None:
        sql += f" REFERENCES {column.references} ON DELETE CASCADE"
    return sql


def create_statements(dialect: Dialect) -> list[str]:
    """The statements that make the whole schema, empty but for its one-row tables."""
    statements = []
    for table in TABLES:
        parts = [_column_sql(column, dialect) for column in table.columns]
        serial = any(column.type == "serial" for column in table.columns)
        if table.primary_key and not serial:
            parts.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        sql = f"CREATE TABLE {table.name} ({', '.join(parts)})"
        if dialect.name == "sqlite" and table.primary_key and not serial:
            sql += " WITHOUT ROWID"  # the primary key is the table: no second lookup
        statements.append(sql)
        for index in table.indexes:
            unique = "UNIQUE " if index.unique else ""
            statements.append(
                f"CREATE {unique}INDEX {index.name} ON {table.name} ({', '.join(index.columns)})"
            )
    data = skeletons.DATA.replace("'", "''")
    statements.append(f"INSERT INTO skeleton_data (data) VALUES ('{data}')")  # noqa: S608
    statements.append("INSERT INTO history_epoch (epoch) VALUES (0)")
    return statements
