"""Rows into the dataclasses of parley.storage, by column name, for both backends.

Every read names its columns (the ``*_COLUMNS`` lists here) and every row is read by name
(``sqlite3.Row`` and ``asyncpg.Record`` both allow it), so a column that a migration adds, or
a table whose columns are in another order, changes nothing that is read.
"""

from __future__ import annotations

from typing import Any

from parley.storage import (
    Account,
    AuditEntry,
    FileRecord,
    Role,
    Room,
    Sanction,
    SanctionKind,
    StoredMessage,
    Unread,
)

# A row of either backend: sqlite3.Row or asyncpg.Record, indexed by column name.
Row = Any

MESSAGE_COLUMNS = "conversation, seq, ts, sender, recipient, text, msg_id"
ACCOUNT_COLUMNS = "key, name, password_hash, role, created_ms, id"
ROOM_COLUMNS = "key, name, topic, topic_by, topic_ms, created_by, created_ms, retention_days"
SANCTION_COLUMNS = "room_key, target_key, kind, until_ms, by_name, reason, created_ms"
AUDIT_COLUMNS = "id, ts, actor, action, room, target, detail"
FILE_COLUMNS = (
    "file_id, sha256, name, size, sender_key, sender, conversation, recipient, created_ms, "
    "expires_ms, complete, quota_key"
)
UNREAD_COLUMNS = "conversation, read_seq, last_seq"


def message(row: Row) -> StoredMessage:
    return StoredMessage(
        conversation=row["conversation"],
        seq=row["seq"],
        ts=row["ts"],
        sender=row["sender"],
        to=row["recipient"],
        text=row["text"],
        msg_id=row["msg_id"],
    )


def account(row: Row) -> Account:
    return Account(
        key=row["key"],
        name=row["name"],
        password_hash=row["password_hash"],
        role=Role(row["role"]),
        created_ms=row["created_ms"],
        id=row["id"],
    )


def room(row: Row) -> Room:
    return Room(
        key=row["key"],
        name=row["name"],
        topic=row["topic"],
        topic_by=row["topic_by"],
        topic_ms=row["topic_ms"],
        created_by=row["created_by"],
        created_ms=row["created_ms"],
        retention_days=row["retention_days"],
    )


def sanction(row: Row) -> Sanction:
    return Sanction(
        room_key=row["room_key"],
        target_key=row["target_key"],
        kind=SanctionKind(row["kind"]),
        until_ms=row["until_ms"],
        by=row["by_name"],
        reason=row["reason"],
        created_ms=row["created_ms"],
    )


def audit_entry(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        ts=row["ts"],
        actor=row["actor"],
        action=row["action"],
        room=row["room"],
        target=row["target"],
        detail=row["detail"],
    )


def file(row: Row) -> FileRecord:
    return FileRecord(
        file_id=row["file_id"],
        sha256=row["sha256"],
        name=row["name"],
        size=row["size"],
        sender_key=row["sender_key"],
        sender=row["sender"],
        conversation=row["conversation"],
        to=row["recipient"],
        created_ms=row["created_ms"],
        expires_ms=row["expires_ms"],
        # SQLite has no boolean: it comes back as 0 or 1.
        complete=bool(row["complete"]),
        quota_key=row["quota_key"],
    )


def unread(row: Row) -> Unread:
    return Unread(
        conversation=row["conversation"], read_seq=row["read_seq"], last_seq=row["last_seq"]
    )


def file_values(record: FileRecord) -> tuple[Any, ...]:
    """``record`` in the order of FILE_COLUMNS."""
    return (record.file_id, record.sha256, record.name, record.size, record.sender_key,
            record.sender, record.conversation, record.to, record.created_ms, record.expires_ms,
            record.complete, record.quota_key)  # fmt: skip
