"""The SQL both backends run, written once.

Each field's default is the query in the shared form (parley.storage.dialect: ``$1``
placeholders, ``{greatest}``-style tokens); :func:`for_dialect` renders them all once, at
import, for a backend. Queries only one backend can run (PostgreSQL's arrays and COPY,
SQLite's statement-per-row loops) stay in that backend.
"""

from __future__ import annotations

import dataclasses

from parley.storage.dialect import Dialect
from parley.storage.records import (
    ACCOUNT_COLUMNS,
    AUDIT_COLUMNS,
    FILE_COLUMNS,
    MESSAGE_COLUMNS,
    ROOM_COLUMNS,
    SANCTION_COLUMNS,
)

_MESSAGES = f"SELECT {MESSAGE_COLUMNS} FROM messages "  # noqa: S608 (constants)
_ACCOUNTS = f"SELECT {ACCOUNT_COLUMNS} FROM accounts "  # noqa: S608
_ROOMS = f"SELECT {ROOM_COLUMNS} FROM rooms "  # noqa: S608
_FILES = f"SELECT {FILE_COLUMNS} FROM files "  # noqa: S608
# Whether the principal $2 is an account that is a member of the room a file (of the outer
# query's ``files``) was shared in: a room's files are its members', as its history is, also
# for those offline when it was shared.
_ROOM_ACCOUNT_MEMBER = (
    "(SELECT 1 FROM accounts a JOIN members m ON m.account_key = a.key "
    "WHERE a.id = $2 AND m.room_key = files.conversation)"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Queries:
    # --- messages ------------------------------------------------------------------------
    messages_after: str = _MESSAGES + "WHERE conversation = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    messages_before: str = (
        _MESSAGES + "WHERE conversation = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
    )
    message_by_identity: str = (
        _MESSAGES + "WHERE conversation = $1 AND sender_key = $2 AND msg_id = $3"
    )
    insert_message: str = (
        "INSERT INTO messages (conversation, seq, ts, sender, sender_key, recipient, text, "
        "msg_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    insert_participant: str = (
        "INSERT INTO participants (conversation, principal) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    )
    purge_default: str = (
        "DELETE FROM messages WHERE ts < $1 AND conversation NOT IN "
        "(SELECT key FROM rooms WHERE retention_days IS NOT NULL)"
    )

    # --- accounts and sessions -----------------------------------------------------------
    # The skeleton (parley.storage.skeletons) refuses a name that looks like a stored one.
    create_account: str = (
        "INSERT INTO accounts (key, name, password_hash, role, created_ms, id, skeleton) "
        "SELECT $1, $2, $3, $4, CAST($5 AS BIGINT), $6, $7 "
        "WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE skeleton = $7) "
        "ON CONFLICT DO NOTHING"
    )
    account: str = _ACCOUNTS + "WHERE key = $1"
    account_by_id: str = _ACCOUNTS + "WHERE id = $1"
    account_like: str = _ACCOUNTS + "WHERE skeleton = $1 ORDER BY look_alike LIMIT 1"
    accounts: str = _ACCOUNTS + "ORDER BY key"
    update_account: str = (
        "UPDATE accounts SET password_hash = COALESCE($1, password_hash), "
        "role = COALESCE($2, role) WHERE key = $3"
    )
    delete_account: str = "DELETE FROM accounts WHERE key = $1"
    record_change: str = "INSERT INTO account_changes (account_key, ts) VALUES ($1, $2)"
    account_changes: str = (
        "SELECT seq, account_key FROM account_changes WHERE seq > $1 ORDER BY seq LIMIT $2"
    )
    last_account_change: str = "SELECT COALESCE(MAX(seq), 0) AS seq FROM account_changes"
    forget_account_changes: str = "DELETE FROM account_changes WHERE ts < $1"
    create_session: str = (
        "INSERT INTO sessions (token_hash, account_key, expires_ms) VALUES ($1, $2, $3) "
        "ON CONFLICT (token_hash) "
        "DO UPDATE SET account_key = excluded.account_key, expires_ms = excluded.expires_ms"
    )
    session_account: str = (
        "SELECT account_key FROM sessions WHERE token_hash = $1 AND expires_ms > $2"
    )
    revoke_session: str = "DELETE FROM sessions WHERE token_hash = $1"
    revoke_sessions: str = (
        "DELETE FROM sessions WHERE account_key = $1 AND token_hash {is_distinct} $2"
    )

    # --- login throttling ----------------------------------------------------------------
    # One upsert per key: the row lock (PostgreSQL) or the single writer (SQLite) orders
    # concurrent attempts, and each sees the row as the one before left it.
    count_attempt: str = (
        "INSERT INTO login_attempts AS a (key, count, last_ms, previous_ms) "
        "VALUES ($1, 1, $2, 0) ON CONFLICT (key) DO UPDATE "
        "SET count = CASE WHEN a.last_ms < $3 THEN 1 ELSE a.count + 1 END, "
        "previous_ms = CASE WHEN a.last_ms < $3 THEN 0 ELSE a.last_ms END, "
        "last_ms = $2 RETURNING count, previous_ms"
    )
    refund_attempt: str = (
        "UPDATE login_attempts SET count = {greatest}(count - 1, 0) WHERE key = $1"
    )
    forget_attempts: str = "DELETE FROM login_attempts WHERE last_ms < $1"

    # --- limits per window ---------------------------------------------------------------
    # Run by the backends in one transaction per call, one key after another in sorted order.
    window_taken: str = (
        "SELECT COALESCE(SUM(count), 0) AS taken FROM window_events WHERE key = $1 AND at_ms > $2"
    )
    take_window_slot: str = (
        "INSERT INTO window_events AS w (key, at_ms, count) VALUES ($1, $2, 1) "
        "ON CONFLICT (key, at_ms) DO UPDATE SET count = w.count + 1"
    )
    forget_window_slots: str = "DELETE FROM window_events WHERE at_ms < $1"

    # --- file tokens and claims ----------------------------------------------------------
    # Stored only while the holder has fewer than $7 unexpired ones (the per-principal cap).
    insert_ticket: str = (
        "INSERT INTO file_tickets (token_hash, upload, file_id, holder, expires_ms) "
        "SELECT $1, CAST($2 AS BOOLEAN), $3, $4, CAST($5 AS BIGINT) "
        "WHERE (SELECT COUNT(*) FROM file_tickets WHERE holder = $4 AND expires_ms > $6) < $7"
    )
    tickets_held: str = (
        "SELECT COUNT(*) AS count FROM file_tickets WHERE holder = $1 AND expires_ms > $2"
    )
    # Deleted as it is read: of two nodes redeeming the same token at once, one gets the row.
    take_ticket: str = (
        "DELETE FROM file_tickets WHERE token_hash = $1 "
        "RETURNING upload, file_id, holder, expires_ms"
    )
    ticket: str = (
        "SELECT upload, file_id, holder, expires_ms FROM file_tickets "
        "WHERE token_hash = $1 AND expires_ms > $2"
    )
    forget_tickets: str = "DELETE FROM file_tickets WHERE expires_ms <= $1"
    # Taken when free or when the claim in force has run out; no row changes otherwise.
    claim_file: str = (
        "INSERT INTO file_claims AS c (file_id, kind, expires_ms) VALUES ($1, $2, $3) "
        "ON CONFLICT (file_id) DO UPDATE SET kind = excluded.kind, "
        "expires_ms = excluded.expires_ms WHERE c.expires_ms <= $4"
    )
    file_claim: str = "SELECT kind FROM file_claims WHERE file_id = $1 AND expires_ms > $2"
    renew_claim: str = "UPDATE file_claims SET expires_ms = $1 WHERE file_id = $2 AND kind = $3"
    release_claim: str = "DELETE FROM file_claims WHERE file_id = $1 AND kind = $2"

    # --- rooms ---------------------------------------------------------------------------
    create_room: str = (
        "INSERT INTO rooms (key, name, topic, topic_by, topic_ms, created_by, created_ms, "
        "retention_days, skeleton) "
        "SELECT $1, $2, $3, $4, CAST($5 AS BIGINT), $6, CAST($7 AS BIGINT), "
        "CAST($8 AS INTEGER), $9 "
        "WHERE NOT EXISTS (SELECT 1 FROM rooms WHERE skeleton = $9) "
        "ON CONFLICT DO NOTHING"
    )
    room: str = _ROOMS + "WHERE key = $1"
    room_like: str = _ROOMS + "WHERE skeleton = $1 ORDER BY look_alike LIMIT 1"
    # The primary key's own order (the database's collation), so a page is an index range
    # scan; the cursor is compared in that same order.
    rooms: str = _ROOMS + "WHERE key > $1 ORDER BY key LIMIT $2"
    room_count: str = "SELECT COUNT(*) AS count FROM rooms"
    set_topic: str = "UPDATE rooms SET topic = $1, topic_by = $2, topic_ms = $3 WHERE key = $4"
    set_retention: str = "UPDATE rooms SET retention_days = $1 WHERE key = $2"
    add_member: str = (
        "INSERT INTO members (room_key, account_key, operator) VALUES ($1, $2, $3) "
        "ON CONFLICT (room_key, account_key) "
        "DO UPDATE SET operator = members.operator OR excluded.operator"
    )
    remove_member: str = "DELETE FROM members WHERE room_key = $1 AND account_key = $2"
    memberships: str = "SELECT room_key, operator FROM members WHERE account_key = $1"
    is_operator: str = "SELECT operator FROM members WHERE room_key = $1 AND account_key = $2"

    # --- moderation ----------------------------------------------------------------------
    add_sanction: str = (
        f"INSERT INTO sanctions ({SANCTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "  # noqa: S608
        "ON CONFLICT (room_key, target_key, kind) DO UPDATE SET until_ms = excluded.until_ms, "
        "by_name = excluded.by_name, reason = excluded.reason, "
        "created_ms = excluded.created_ms"
    )
    remove_sanction: str = (
        "DELETE FROM sanctions WHERE room_key = $1 AND target_key = $2 AND kind = $3"
    )
    sanction: str = (
        f"SELECT {SANCTION_COLUMNS} FROM sanctions "  # noqa: S608 (constants)
        "WHERE room_key = $1 AND target_key = $2 AND kind = $3 "
        "AND (until_ms IS NULL OR until_ms > $4)"
    )
    record_audit: str = (
        "INSERT INTO audit (ts, actor, action, room, target, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6)"
    )
    audit_log: str = f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id DESC LIMIT $1"  # noqa: S608

    # --- read markers --------------------------------------------------------------------
    mark_read: str = (
        "INSERT INTO read_markers (account_key, conversation, seq) VALUES ($1, $2, $3) "
        "ON CONFLICT (account_key, conversation) "
        "DO UPDATE SET seq = {greatest}(read_markers.seq, excluded.seq)"
    )
    unread: str = (
        "SELECT c.id AS conversation, COALESCE(r.seq, 0) AS read_seq, c.last_seq AS last_seq "
        "FROM conversations c "
        "JOIN (SELECT room_key AS id FROM members WHERE account_key = $1 "
        "      UNION SELECT conversation FROM participants WHERE principal = "
        "        (SELECT id FROM accounts WHERE key = $1)) mine "
        "  ON mine.id = c.id "
        "LEFT JOIN read_markers r ON r.account_key = $1 AND r.conversation = c.id "
        "WHERE c.last_seq > COALESCE(r.seq, 0) AND c.id > $2 ORDER BY c.id LIMIT $3"
    )

    # --- shared files --------------------------------------------------------------------
    insert_file: str = (
        f"INSERT INTO files ({FILE_COLUMNS}) "  # noqa: S608 (constants)
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )
    file: str = _FILES + "WHERE file_id = $1"
    delete_file: str = "DELETE FROM files WHERE file_id = $1"
    complete_file: str = "UPDATE files SET complete = TRUE, expires_ms = $1 WHERE file_id = $2"
    may_read_file: str = (
        "SELECT 1 FROM files WHERE file_id = $1 AND (sender_key = $2 OR EXISTS "  # noqa: S608
        "(SELECT 1 FROM file_readers WHERE file_id = $1 AND principal = $2) OR EXISTS "
        f"{_ROOM_ACCOUNT_MEMBER})"
    )
    readable_file: str = (
        _FILES + "WHERE file_id = $1 AND complete AND expires_ms > $3 "  # noqa: S608 (constants)
        "AND (sender_key = $2 OR EXISTS "
        "(SELECT 1 FROM file_readers WHERE file_id = $1 AND principal = $2) OR EXISTS "
        f"{_ROOM_ACCOUNT_MEMBER})"
    )
    # Driven by the reader, sender and room member indexes: only this user's files are looked at.
    readable_files: str = (
        _FILES + "WHERE file_id IN "  # noqa: S608 (constants)
        "(SELECT file_id FROM file_readers WHERE principal = $1 UNION ALL "
        " SELECT file_id FROM files WHERE sender_key = $1 AND expires_ms > $2 UNION ALL "
        " SELECT f.file_id FROM accounts a JOIN members m ON m.account_key = a.key "
        " JOIN files f ON f.conversation = m.room_key WHERE a.id = $1 AND f.expires_ms > $2) "
        "AND complete AND expires_ms > $2 AND (CAST($3 AS TEXT) IS NULL OR conversation = $3) "
        "AND (created_ms < $5 OR (created_ms = $5 AND file_id > $6)) "
        "ORDER BY created_ms DESC, file_id LIMIT $4"
    )
    pending_upload: str = (
        _FILES + "WHERE sender_key = $1 AND expires_ms > $2 AND NOT complete "
        "AND conversation = $3 AND sha256 = $4 AND size = $5 AND name = $6 "
        "ORDER BY created_ms DESC, file_id LIMIT 1"
    )
    quota_bytes: str = (
        "SELECT COALESCE(SUM(size), 0) AS total FROM files WHERE quota_key = $1 AND expires_ms > $2"
    )
    uploads_in_progress: str = (
        "SELECT COUNT(*) AS count FROM files WHERE sender_key = $1 AND expires_ms > $2 "
        "AND NOT complete"
    )
    expired_files: str = _FILES + "WHERE expires_ms <= $1 ORDER BY expires_ms, file_id LIMIT $2"
    blob_in_use: str = "SELECT 1 FROM files WHERE sha256 = $1 LIMIT 1"


def for_dialect(dialect: Dialect) -> Queries:
    """Every query rendered for ``dialect``."""
    shared = Queries()
    return Queries(
        **{
            field.name: dialect.render(getattr(shared, field.name))
            for field in dataclasses.fields(Queries)
        }
    )
