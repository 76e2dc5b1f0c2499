"""SQLite storage: the embedded default, one file in the data directory, no server to run.

Writes run on one worker thread that owns the writing connection, so the event loop never
waits on the disk and SQLite never sees two threads on a connection. Reads of a database file
run on a second thread with a read-only connection of their own: WAL lets them go on while a
write waits for a lock (held by another process), so logins and joins never queue behind it.
WAL mode also lets other readers (``parley admin``, another process) work while the server
writes; ``synchronous=FULL`` makes each commit durable before
``append`` returns, so an acknowledged message survives a crash or a power cut. Text is stored
as given (NUL and all): only parameterised queries touch the database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from parley.protocol.names import name_skeleton
from parley.storage import (
    Account,
    AuditEntry,
    FileRecord,
    NewMessage,
    Role,
    Room,
    Sanction,
    SanctionKind,
    StorageUnavailable,
    StoredMessage,
    Unread,
    skeletons,
)

T = TypeVar("T")


def _keep_skeletons(db: sqlite3.Connection) -> None:
    """Each account's and room's name skeleton, unique (see parley.storage.skeletons)."""
    for table in skeletons.TABLES:
        db.execute(f"ALTER TABLE {table} ADD COLUMN skeleton TEXT NOT NULL DEFAULT ''")
        db.execute(f"ALTER TABLE {table} ADD COLUMN look_alike INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE TABLE skeleton_data (data TEXT NOT NULL)")
    db.execute("INSERT INTO skeleton_data VALUES ('')")
    _compute_skeletons(db)


def _compute_skeletons(db: sqlite3.Connection) -> None:
    """Compute every stored skeleton with this Parley's data. O(accounts + rooms)."""
    for table in skeletons.TABLES:
        db.execute(f"DROP INDEX IF EXISTS {table}_by_skeleton")
        select = f"SELECT key, name FROM {table} ORDER BY created_ms, key"  # noqa: S608
        rows = db.execute(select).fetchall()
        db.executemany(
            f"UPDATE {table} SET skeleton = ?, look_alike = ? WHERE key = ?",  # noqa: S608
            skeletons.numbered(rows),
        )
        db.execute(f"CREATE UNIQUE INDEX {table}_by_skeleton ON {table} (skeleton, look_alike)")
    db.execute("UPDATE skeleton_data SET data = ?", (skeletons.DATA,))


def _skeletons_stale(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT data FROM skeleton_data").fetchone()
    return bool(row[0] != skeletons.DATA)


# Each step upgrades the schema by one version (PRAGMA user_version); never edit a shipped one.
# A step is SQL, or a function for what SQL cannot compute (it runs in the step's transaction).
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE messages (
        conversation TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        sender TEXT NOT NULL,
        sender_key TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        msg_id TEXT NOT NULL,
        PRIMARY KEY (conversation, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX messages_retry ON messages (conversation, sender_key, msg_id);
    CREATE INDEX messages_ts ON messages (ts);
    CREATE TABLE participants (
        conversation TEXT NOT NULL,
        nick_key TEXT NOT NULL,
        PRIMARY KEY (conversation, nick_key)
    ) WITHOUT ROWID;
    CREATE INDEX participants_by_nick ON participants (nick_key);
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        account_key TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        expires_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_account ON sessions (account_key);
    CREATE TABLE rooms (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        topic TEXT NOT NULL,
        topic_by TEXT NOT NULL,
        topic_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        retention_days INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE members (
        room_key TEXT NOT NULL,
        account_key TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        operator INTEGER NOT NULL,
        PRIMARY KEY (room_key, account_key)
    ) WITHOUT ROWID;
    CREATE INDEX members_by_account ON members (account_key);
    CREATE TABLE sanctions (
        room_key TEXT NOT NULL,
        target_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        until_ms INTEGER,
        by TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (room_key, target_key, kind)
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        room TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE read_markers (
        account_key TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        conversation TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (account_key, conversation)
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE files (
        file_id TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        sender_key TEXT NOT NULL,
        sender TEXT NOT NULL,
        conversation TEXT NOT NULL,
        recipient TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        complete INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX files_by_sender ON files (sender_key, expires_ms);
    CREATE INDEX files_by_conversation ON files (conversation, created_ms);
    CREATE INDEX files_by_expiry ON files (expires_ms);
    CREATE INDEX files_by_sha256 ON files (sha256);
    CREATE TABLE file_readers (
        file_id TEXT NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
        nick_key TEXT NOT NULL,
        PRIMARY KEY (file_id, nick_key)
    ) WITHOUT ROWID;
    CREATE INDEX file_readers_by_nick ON file_readers (nick_key);
    """,
    # Principals: every account gets an id no later account of its name will have, and what
    # belonged to a nickname key now belongs to a principal id. Keys with no account (guests
    # of the previous release, deleted accounts) become dead principals ('x' and the key) that
    # no one can ever log in as: their private conversations and files are no one's to take.
    """
    ALTER TABLE accounts ADD COLUMN id TEXT NOT NULL DEFAULT '';
    UPDATE accounts SET id = lower(hex(randomblob(16)));
    CREATE UNIQUE INDEX accounts_by_id ON accounts (id);
    CREATE TEMP TABLE principal_map (key TEXT PRIMARY KEY, principal TEXT NOT NULL);
    INSERT INTO principal_map SELECT key, id FROM accounts;
    INSERT OR IGNORE INTO principal_map
        SELECT nick_key, 'x' || nick_key FROM participants
        UNION SELECT sender_key, 'x' || sender_key FROM files
        UNION SELECT nick_key, 'x' || nick_key FROM file_readers
        UNION SELECT target_key, 'x' || target_key FROM sanctions
        UNION SELECT created_by, 'x' || created_by FROM rooms WHERE created_by != '';
    CREATE TEMP TABLE dm_map (old TEXT PRIMARY KEY, new TEXT NOT NULL);
    INSERT INTO dm_map
        SELECT old, 'dm:' || min(p1.principal, p2.principal) || ':'
                    || max(p1.principal, p2.principal)
        FROM (
            SELECT old, substr(old, 4, instr(substr(old, 4), ':') - 1) AS k1,
                   substr(old, 4 + instr(substr(old, 4), ':')) AS k2
            FROM (SELECT id AS old FROM conversations WHERE id LIKE 'dm:%'
                  UNION SELECT conversation FROM files WHERE conversation LIKE 'dm:%'
                  UNION SELECT conversation FROM read_markers WHERE conversation LIKE 'dm:%')
        ) pairs
        JOIN principal_map p1 ON p1.key = pairs.k1
        JOIN principal_map p2 ON p2.key = pairs.k2;
    UPDATE conversations SET id = (SELECT new FROM dm_map WHERE old = conversations.id)
        WHERE id IN (SELECT old FROM dm_map);
    UPDATE messages SET conversation = (SELECT new FROM dm_map WHERE old = messages.conversation)
        WHERE conversation IN (SELECT old FROM dm_map);
    ALTER TABLE participants RENAME COLUMN nick_key TO principal;
    UPDATE participants
        SET conversation = (SELECT new FROM dm_map WHERE old = participants.conversation),
            principal = (SELECT principal FROM principal_map m WHERE m.key = participants.principal)
        WHERE conversation IN (SELECT old FROM dm_map);
    UPDATE read_markers
        SET conversation = (SELECT new FROM dm_map WHERE old = read_markers.conversation)
        WHERE conversation IN (SELECT old FROM dm_map);
    ALTER TABLE files ADD COLUMN quota_key TEXT NOT NULL DEFAULT '';
    UPDATE files
        SET sender_key = (SELECT principal FROM principal_map WHERE key = files.sender_key);
    UPDATE files SET quota_key = sender_key,
        conversation = COALESCE((SELECT new FROM dm_map WHERE old = files.conversation),
                                conversation);
    CREATE INDEX files_by_quota ON files (quota_key, expires_ms);
    ALTER TABLE file_readers RENAME COLUMN nick_key TO principal;
    UPDATE file_readers
        SET principal =
            (SELECT principal FROM principal_map m WHERE m.key = file_readers.principal);
    UPDATE sanctions
        SET target_key = (SELECT principal FROM principal_map WHERE key = sanctions.target_key);
    UPDATE rooms SET created_by = (SELECT principal FROM principal_map WHERE key = rooms.created_by)
        WHERE created_by != '';
    DROP TABLE dm_map;
    DROP TABLE principal_map;
    CREATE TABLE login_attempts (
        key TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        -- The attempt before the last (0 when none): its time decides the next wait.
        previous_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX login_attempts_by_time ON login_attempts (last_ms);
    CREATE TABLE account_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        account_key TEXT NOT NULL,
        ts INTEGER NOT NULL
    );
    """,
    _keep_skeletons,
]

_DAY_MS = 86_400_000
_SELECT_MESSAGES = "SELECT conversation, seq, ts, sender, recipient, text, msg_id FROM messages "
_SELECT_ROOMS = (
    "SELECT key, name, topic, topic_by, topic_ms, created_by, created_ms, retention_days "
    "FROM rooms "
)
_SELECT_FILES = (
    "SELECT file_id, sha256, name, size, sender_key, sender, conversation, recipient, "
    "created_ms, expires_ms, complete, quota_key FROM files "
)
_SELECT_ACCOUNTS = "SELECT key, name, password_hash, role, created_ms, id FROM accounts "


class SqliteStorage:
    """Storage in one SQLite database. Create with :meth:`open`."""

    # One writing thread: transactions never overlap.
    serial_writes = True

    def __init__(self, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        self._executor = executor
        self._db: sqlite3.Connection | None = None
        # Reads of a database file: their own thread and connection (None: reads share the
        # writer's, as an in-memory database must).
        self._read_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._read_db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout_ms: int = 5000) -> SqliteStorage:
        """Open (creating if needed) and migrate the database at ``path`` (":memory:" for one
        that lives as long as this object). Raises StorageUnavailable.
        """
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parley-sqlite")
        storage = cls(executor)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, storage._connect, str(path), busy_timeout_ms)
        except (sqlite3.Error, OSError) as exc:
            executor.shutdown(wait=True)
            raise StorageUnavailable(f"Cannot open the database {path}: {exc}") from exc
        except BaseException:
            executor.shutdown(wait=True)
            raise
        if str(path) != ":memory:":
            await storage._open_reader(str(path), busy_timeout_ms)
        return storage

    async def _open_reader(self, path: str, busy_timeout_ms: int) -> None:
        def connect() -> None:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            db.execute("PRAGMA query_only = ON")
            self._read_db = db

        reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parley-sqlite-read")
        try:
            await asyncio.get_running_loop().run_in_executor(reader, connect)
        except BaseException as exc:
            reader.shutdown(wait=True)
            await self.close()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise StorageUnavailable(f"Cannot open the database {path}: {exc}") from exc
            raise
        self._read_executor = reader

    def _connect(self, path: str, busy_timeout_ms: int) -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            version: int = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StorageUnavailable(
                    f"The database {path} was made by a newer Parley (schema {version}; this "
                    f"one knows up to {len(MIGRATIONS)})."
                )
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                if isinstance(step, str):
                    # executescript commits first; the BEGIN makes the step all or nothing.
                    db.executescript(
                        f"BEGIN IMMEDIATE; {step}; PRAGMA user_version = {number}; COMMIT;"
                    )
                    continue
                db.execute("BEGIN IMMEDIATE")
                try:
                    step(db)
                    db.execute(f"PRAGMA user_version = {number}")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            if _skeletons_stale(db):
                db.execute("BEGIN IMMEDIATE")
                try:
                    # Another process may have done it while we waited for the lock.
                    if _skeletons_stale(db):
                        _compute_skeletons(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        """Run ``work`` on the writing thread, in a transaction, when ``write``; else on the
        reading thread (the writing one for an in-memory database)."""
        reader = None if write else self._read_executor

        def call() -> T:
            db = self._read_db if reader is not None else self._db
            if db is None:
                raise StorageUnavailable("The database is closed.")
            try:
                if not write:
                    return work(db)
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
            except (sqlite3.Error, OSError) as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise StorageUnavailable(f"SQLite: {exc}") from exc

        try:
            return await asyncio.get_running_loop().run_in_executor(reader or self._executor, call)
        except RuntimeError as exc:  # the executor is shut down
            raise StorageUnavailable("The database is closed.") from exc

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        def close_reader() -> None:
            if self._read_db is not None:
                self._read_db.close()
                self._read_db = None

        loop = asyncio.get_running_loop()
        if self._read_executor is not None:
            with contextlib.suppress(RuntimeError):
                await loop.run_in_executor(self._read_executor, close_reader)
            self._read_executor.shutdown(wait=True)
        with contextlib.suppress(RuntimeError):
            await loop.run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

    # --- messages ------------------------------------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        now_ms = time.time_ns() // 1_000_000
        return await self._run(lambda db: _append(db, batch, now_ms), write=True)

    async def history(
        self,
        conversation: str,
        *,
        limit: int,
        after_seq: int | None = None,
        before_seq: int | None = None,
    ) -> list[StoredMessage]:
        if after_seq is not None:
            sql = _SELECT_MESSAGES + "WHERE conversation = ? AND seq > ? ORDER BY seq LIMIT ?"
            args: tuple[Any, ...] = (conversation, after_seq, limit)
        else:
            sql = _SELECT_MESSAGES + "WHERE conversation = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
            args = (conversation, before_seq if before_seq is not None else 2**63 - 1, limit)
        rows = await self._run(lambda db: db.execute(sql, args).fetchall())
        records = [StoredMessage(*row) for row in rows]
        return records if after_seq is not None else records[::-1]

    async def purge(self, now_ms: int, default_retention_days: int | None) -> int:
        def purge(db: sqlite3.Connection) -> int:
            deleted = 0
            for key, days in db.execute(
                "SELECT key, retention_days FROM rooms WHERE retention_days IS NOT NULL"
            ).fetchall():
                deleted += db.execute(
                    "DELETE FROM messages WHERE conversation = ? AND ts < ?",
                    (key, now_ms - days * _DAY_MS),
                ).rowcount
            if default_retention_days is not None:
                deleted += db.execute(
                    "DELETE FROM messages WHERE ts < ? AND conversation NOT IN "
                    "(SELECT key FROM rooms WHERE retention_days IS NOT NULL)",
                    (now_ms - default_retention_days * _DAY_MS,),
                ).rowcount
            return deleted

        return await self._run(purge, write=True)

    # --- accounts and sessions -----------------------------------------------------------

    async def create_account(self, account: Account) -> bool:
        return await self._insert(
            "INSERT OR IGNORE INTO accounts "
            "(key, name, password_hash, role, created_ms, id, skeleton) "
            "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 "
            "WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE skeleton = ?7)",
            (account.key, account.name, account.password_hash, account.role.value,
             account.created_ms, account.id, name_skeleton(account.name)),
        )  # fmt: skip

    async def account(self, key: str) -> Account | None:
        row = await self._one(_SELECT_ACCOUNTS + "WHERE key = ?", (key,))
        return _account(row) if row else None

    async def account_by_id(self, account_id: str) -> Account | None:
        row = await self._one(_SELECT_ACCOUNTS + "WHERE id = ?", (account_id,))
        return _account(row) if row else None

    async def account_like(self, name: str) -> Account | None:
        row = await self._one(
            _SELECT_ACCOUNTS + "WHERE skeleton = ? ORDER BY look_alike LIMIT 1",
            (name_skeleton(name),),
        )
        return _account(row) if row else None

    async def accounts(self) -> list[Account]:
        rows = await self._run(lambda db: db.execute(_SELECT_ACCOUNTS + "ORDER BY key").fetchall())
        return [_account(row) for row in rows]

    async def update_account(
        self, key: str, *, password_hash: str | None = None, role: Role | None = None
    ) -> bool:
        def update(db: sqlite3.Connection) -> bool:
            changed = db.execute(
                "UPDATE accounts SET password_hash = COALESCE(?, password_hash), "
                "role = COALESCE(?, role) WHERE key = ?",
                (password_hash, role.value if role is not None else None, key),
            ).rowcount
            if changed:
                _record_change(db, key)
            return changed > 0

        return await self._run(update, write=True)

    async def delete_account(self, key: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            deleted = db.execute("DELETE FROM accounts WHERE key = ?", (key,)).rowcount
            if deleted:
                _record_change(db, key)
            return deleted > 0

        return await self._run(delete, write=True)

    async def account_changes(self, after_seq: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT seq, account_key FROM account_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        )
        return [(int(seq), str(key)) for seq, key in rows]

    async def last_account_change(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(seq), 0) FROM account_changes", ())
        return int(row[0])

    async def forget_account_changes(self, before_ms: int) -> int:
        return await self._run(
            lambda db: (
                db.execute("DELETE FROM account_changes WHERE ts < ?", (before_ms,)).rowcount
            ),
            write=True,
        )

    async def create_session(self, token_hash: str, account_key: str, expires_ms: int) -> None:
        await self._insert(
            "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
            (token_hash, account_key, expires_ms),
        )

    async def session_account(self, token_hash: str, now_ms: int) -> str | None:
        row = await self._one(
            "SELECT account_key FROM sessions WHERE token_hash = ? AND expires_ms > ?",
            (token_hash, now_ms),
        )
        return str(row[0]) if row else None

    async def revoke_session(self, token_hash: str) -> bool:
        return await self._insert("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    async def revoke_sessions(self, account_key: str, *, keep: str | None = None) -> int:
        def revoke(db: sqlite3.Connection) -> int:
            revoked: int = db.execute(
                "DELETE FROM sessions WHERE account_key = ? AND token_hash IS NOT ?",
                (account_key, keep),
            ).rowcount
            _record_change(db, account_key)
            return revoked

        return await self._run(revoke, write=True)

    # --- login throttling ----------------------------------------------------------------

    async def count_attempts(
        self, keys: Sequence[str], now_ms: int, forget_before_ms: int
    ) -> list[tuple[int, int]]:
        def count(db: sqlite3.Connection) -> list[tuple[int, int]]:
            counts = []
            for key in keys:
                row = db.execute(
                    "SELECT count, last_ms FROM login_attempts WHERE key = ?", (key,)
                ).fetchone()
                before, last = (0, 0) if row is None or row[1] < forget_before_ms else row
                db.execute(
                    "INSERT OR REPLACE INTO login_attempts VALUES (?, ?, ?, ?)",
                    (key, before + 1, now_ms, last),
                )
                counts.append((before + 1, last))
            return counts

        # One thread runs every call, in a transaction: no two attempts see the same count.
        return await self._run(count, write=True)

    async def refund_attempts(self, keys: Sequence[str]) -> None:
        await self._run(
            lambda db: db.executemany(
                "UPDATE login_attempts SET count = MAX(count - 1, 0) WHERE key = ?",
                [(key,) for key in keys],
            ),
            write=True,
        )

    async def forget_attempts(self, before_ms: int) -> int:
        return await self._run(
            lambda db: (
                db.execute("DELETE FROM login_attempts WHERE last_ms < ?", (before_ms,)).rowcount
            ),
            write=True,
        )

    # --- rooms ---------------------------------------------------------------------------

    async def create_room(self, room: Room) -> bool:
        return await self._insert(
            "INSERT OR IGNORE INTO rooms (key, name, topic, topic_by, topic_ms, created_by, "
            "created_ms, retention_days, skeleton) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 "
            "WHERE NOT EXISTS (SELECT 1 FROM rooms WHERE skeleton = ?9)",
            (room.key, room.name, room.topic, room.topic_by, room.topic_ms, room.created_by,
             room.created_ms, room.retention_days, name_skeleton(room.name)),
        )  # fmt: skip

    async def room(self, key: str) -> Room | None:
        row = await self._one(_SELECT_ROOMS + "WHERE key = ?", (key,))
        return Room(*row) if row else None

    async def room_like(self, name: str) -> Room | None:
        row = await self._one(
            _SELECT_ROOMS + "WHERE skeleton = ? ORDER BY look_alike LIMIT 1",
            (name_skeleton(name),),
        )
        return Room(*row) if row else None

    async def rooms(self, after_key: str = "", limit: int | None = None) -> list[Room]:
        rows = await self._run(
            lambda db: db.execute(
                _SELECT_ROOMS + "WHERE key > ? ORDER BY key LIMIT ?",
                (after_key, -1 if limit is None else limit),
            ).fetchall()
        )
        return [Room(*row) for row in rows]

    async def room_count(self) -> int:
        row = await self._one("SELECT COUNT(*) FROM rooms", ())
        return int(row[0])

    async def set_topic(self, key: str, topic: str, by: str, ts: int) -> bool:
        return await self._insert(
            "UPDATE rooms SET topic = ?, topic_by = ?, topic_ms = ? WHERE key = ?",
            (topic, by, ts, key),
        )

    async def set_retention(self, key: str, days: int | None) -> bool:
        return await self._insert("UPDATE rooms SET retention_days = ? WHERE key = ?", (days, key))

    async def add_member(self, room_key: str, account_key: str, *, operator: bool = False) -> None:
        await self._insert(
            "INSERT INTO members VALUES (?, ?, ?) ON CONFLICT (room_key, account_key) "
            "DO UPDATE SET operator = MAX(operator, excluded.operator)",
            (room_key, account_key, int(operator)),
        )

    async def remove_member(self, room_key: str, account_key: str) -> bool:
        return await self._insert(
            "DELETE FROM members WHERE room_key = ? AND account_key = ?", (room_key, account_key)
        )

    async def memberships(self, account_key: str) -> dict[str, bool]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT room_key, operator FROM members WHERE account_key = ?", (account_key,)
            ).fetchall()
        )
        return {room: bool(operator) for room, operator in rows}

    async def is_operator(self, room_key: str, account_key: str) -> bool:
        row = await self._one(
            "SELECT operator FROM members WHERE room_key = ? AND account_key = ?",
            (room_key, account_key),
        )
        return bool(row and row[0])

    # --- moderation ----------------------------------------------------------------------

    async def add_sanction(self, sanction: Sanction) -> None:
        await self._insert(
            "INSERT OR REPLACE INTO sanctions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sanction.room_key, sanction.target_key, sanction.kind.value, sanction.until_ms,
             sanction.by, sanction.reason, sanction.created_ms),
        )  # fmt: skip

    async def remove_sanction(self, room_key: str, target_key: str, kind: SanctionKind) -> bool:
        return await self._insert(
            "DELETE FROM sanctions WHERE room_key = ? AND target_key = ? AND kind = ?",
            (room_key, target_key, kind.value),
        )

    async def sanction(
        self, room_key: str, target_key: str, kind: SanctionKind, now_ms: int
    ) -> Sanction | None:
        row = await self._one(
            "SELECT * FROM sanctions WHERE room_key = ? AND target_key = ? AND kind = ? "
            "AND (until_ms IS NULL OR until_ms > ?)",
            (room_key, target_key, kind.value, now_ms),
        )
        if row is None:
            return None
        return Sanction(row[0], row[1], SanctionKind(row[2]), *row[3:])

    async def record_audit(
        self,
        *,
        ts: int,
        actor: str,
        action: str,
        room: str = "",
        target: str = "",
        detail: str = "",
    ) -> None:
        await self._insert(
            "INSERT INTO audit (ts, actor, action, room, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (ts, actor, action, room, target, detail),
        )

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [AuditEntry(*row) for row in rows]

    # --- read markers --------------------------------------------------------------------

    async def mark_read(self, account_key: str, conversation: str, seq: int) -> None:
        await self._insert(
            "INSERT INTO read_markers VALUES (?, ?, ?) ON CONFLICT (account_key, conversation) "
            "DO UPDATE SET seq = MAX(seq, excluded.seq)",
            (account_key, conversation, seq),
        )

    async def unread(self, account_key: str) -> list[Unread]:
        def unread(db: sqlite3.Connection) -> list[Unread]:
            rows = db.execute(
                "SELECT c.id, COALESCE(r.seq, 0), c.last_seq FROM conversations c "
                "JOIN (SELECT room_key AS id FROM members WHERE account_key = ?1 "
                "      UNION SELECT conversation FROM participants WHERE principal = "
                "        (SELECT id FROM accounts WHERE key = ?1)) mine "
                "  ON mine.id = c.id "
                "LEFT JOIN read_markers r ON r.account_key = ?1 AND r.conversation = c.id "
                "WHERE c.last_seq > COALESCE(r.seq, 0) ORDER BY c.id",
                (account_key,),
            ).fetchall()
            return [Unread(*row) for row in rows]

        return await self._run(unread)

    # --- shared files --------------------------------------------------------------------

    async def add_file(self, record: FileRecord, readers: Sequence[str]) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO files (file_id, sha256, name, size, sender_key, sender, "
                "conversation, recipient, created_ms, expires_ms, complete, quota_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.file_id, record.sha256, record.name, record.size, record.sender_key,
                 record.sender, record.conversation, record.to, record.created_ms,
                 record.expires_ms, int(record.complete), record.quota_key),
            )  # fmt: skip
            db.executemany(
                "INSERT OR IGNORE INTO file_readers VALUES (?, ?)",
                [(record.file_id, key) for key in readers],
            )

        await self._run(add, write=True)

    async def file(self, file_id: str) -> FileRecord | None:
        row = await self._one(_SELECT_FILES + "WHERE file_id = ?", (file_id,))
        return _file(row) if row else None

    async def complete_file(self, file_id: str, expires_ms: int) -> bool:
        return await self._insert(
            "UPDATE files SET complete = 1, expires_ms = ? WHERE file_id = ?",
            (expires_ms, file_id),
        )

    async def may_read_file(self, file_id: str, principal: str) -> bool:
        row = await self._one(
            "SELECT 1 FROM files WHERE file_id = ?1 AND (sender_key = ?2 OR EXISTS "
            "(SELECT 1 FROM file_readers WHERE file_id = ?1 AND principal = ?2))",
            (file_id, principal),
        )
        return row is not None

    async def readable_file(self, file_id: str, principal: str, now_ms: int) -> FileRecord | None:
        row = await self._one(
            _SELECT_FILES + "WHERE file_id = ?1 AND complete AND expires_ms > ?3 "  # noqa: S608 (constants)
            "AND (sender_key = ?2 OR EXISTS "
            "(SELECT 1 FROM file_readers WHERE file_id = ?1 AND principal = ?2))",
            (file_id, principal, now_ms),
        )
        return _file(row) if row else None

    async def readable_files(
        self, principal: str, conversation: str | None, now_ms: int, limit: int
    ) -> list[FileRecord]:
        # Driven by the reader and sender indexes: only this user's files are looked at.
        rows = await self._run(
            lambda db: db.execute(
                _SELECT_FILES + "WHERE file_id IN "  # noqa: S608 (constants)
                "(SELECT file_id FROM file_readers WHERE principal = ?1 UNION ALL "
                " SELECT file_id FROM files WHERE sender_key = ?1 AND expires_ms > ?2) "
                "AND complete AND expires_ms > ?2 AND (?3 IS NULL OR conversation = ?3) "
                "ORDER BY created_ms DESC, file_id LIMIT ?4",
                (principal, now_ms, conversation, limit),
            ).fetchall()
        )
        return [_file(row) for row in rows]

    async def pending_upload(
        self, sender_key: str, conversation: str, sha256: str, size: int, name: str, now_ms: int
    ) -> FileRecord | None:
        row = await self._one(
            _SELECT_FILES + "WHERE sender_key = ? AND expires_ms > ? AND NOT complete "
            "AND conversation = ? AND sha256 = ? AND size = ? AND name = ? "
            "ORDER BY created_ms DESC, file_id LIMIT 1",
            (sender_key, now_ms, conversation, sha256, size, name),
        )
        return _file(row) if row else None

    async def quota_bytes(self, quota_key: str, now_ms: int) -> int:
        row = await self._one(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE quota_key = ? AND expires_ms > ?",
            (quota_key, now_ms),
        )
        return int(row[0])

    async def uploads_in_progress(self, sender_key: str, now_ms: int) -> int:
        row = await self._one(
            "SELECT COUNT(*) FROM files WHERE sender_key = ? AND expires_ms > ? AND NOT complete",
            (sender_key, now_ms),
        )
        return int(row[0])

    async def delete_file(self, file_id: str) -> FileRecord | None:
        def delete(db: sqlite3.Connection) -> FileRecord | None:
            row = db.execute(_SELECT_FILES + "WHERE file_id = ?", (file_id,)).fetchone()
            if row is None:
                return None
            # The readers go with it (ON DELETE CASCADE).
            db.execute("DELETE FROM files WHERE file_id = ?", (file_id,))
            return _file(row)

        return await self._run(delete, write=True)

    async def expired_files(self, now_ms: int, limit: int) -> list[FileRecord]:
        rows = await self._run(
            lambda db: db.execute(
                _SELECT_FILES + "WHERE expires_ms <= ? ORDER BY expires_ms, file_id LIMIT ?",
                (now_ms, limit),
            ).fetchall()
        )
        return [_file(row) for row in rows]

    async def blob_in_use(self, sha256: str) -> bool:
        row = await self._one("SELECT 1 FROM files WHERE sha256 = ? LIMIT 1", (sha256,))
        return row is not None

    # --- helpers -------------------------------------------------------------------------

    async def _insert(self, sql: str, args: tuple[Any, ...]) -> bool:
        """Run one changing statement; True when it changed a row."""
        return await self._run(lambda db: db.execute(sql, args).rowcount > 0, write=True)

    async def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        return await self._run(lambda db: db.execute(sql, args).fetchone())


def _account(row: Any) -> Account:
    return Account(row[0], row[1], row[2], Role(row[3]), row[4], row[5])


def _record_change(db: sqlite3.Connection, account_key: str) -> None:
    db.execute(
        "INSERT INTO account_changes (account_key, ts) VALUES (?, ?)",
        (account_key, time.time_ns() // 1_000_000),
    )


def _file(row: Any) -> FileRecord:
    # SQLite has no boolean: ``complete`` comes back as 0 or 1.
    return FileRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                      row[9], bool(row[10]), row[11])  # fmt: skip


def _append(
    db: sqlite3.Connection, batch: Sequence[NewMessage], now_ms: int
) -> list[StoredMessage]:
    last_seq: dict[str, int] = {}
    fresh: dict[tuple[str, str, str], StoredMessage] = {}
    stored: list[StoredMessage] = []
    rows: list[tuple[Any, ...]] = []
    for message in batch:
        identity = (message.conversation, message.sender_key, message.msg_id)
        earlier = fresh.get(identity)
        if earlier is None:
            row = db.execute(
                _SELECT_MESSAGES + "WHERE conversation = ? AND sender_key = ? AND msg_id = ?",
                identity,
            ).fetchone()
            earlier = StoredMessage(*row) if row else None
        if earlier is not None:
            stored.append(dataclasses.replace(earlier, duplicate=True))
            continue
        conversation = message.conversation
        if conversation not in last_seq:
            found = db.execute(
                "SELECT last_seq FROM conversations WHERE id = ?", (conversation,)
            ).fetchone()
            if found is None:
                db.execute("INSERT INTO conversations (id) VALUES (?)", (conversation,))
                db.executemany(
                    "INSERT OR IGNORE INTO participants VALUES (?, ?)",
                    [(conversation, key) for key in message.participants],
                )
            last_seq[conversation] = found[0] if found else 0
        seq = last_seq[conversation] = last_seq[conversation] + 1
        record = StoredMessage(
            conversation, seq, now_ms, message.sender, message.to, message.text, message.msg_id
        )
        fresh[identity] = record
        stored.append(record)
        rows.append((conversation, seq, now_ms, message.sender, message.sender_key, message.to,
                     message.text, message.msg_id))  # fmt: skip
    db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany(
        "UPDATE conversations SET last_seq = ? WHERE id = ?",
        [(seq, conversation) for conversation, seq in last_seq.items()],
    )
    return stored
