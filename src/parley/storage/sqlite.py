"""SQLite storage: the embedded default, one file in the data directory, no server to run.

Writes run on one worker thread that owns the writing connection, so the event loop never
waits on the disk and SQLite never sees two threads on a connection. Reads of a database file
run on a second thread with a read-only connection of their own: WAL lets them go on while a
write waits for a lock (held by another process), so logins and joins never queue behind it.
WAL mode also lets other readers (``parley admin``, another process) work while the server
writes. With ``synchronous = "full"`` (the default) each commit reaches the disk before
``append`` returns, so an acknowledged message survives a crash or a power cut; with
``"normal"`` it is in the WAL file, in the operating system's hands, before ``append`` returns:
it survives the process being killed at any point, and a power cut may undo the last commits
(never corrupt the file). Text is stored as given (NUL and all): only parameterised queries
touch the database.

The queries and row mapping it shares with PostgreSQL are in parley.storage.sql, queries and
records; the schema in parley.storage.schema. This module keeps the threads, the transactions
of several statements and the migrations.
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

from parley.clock import SYSTEM_CLOCK, Clock
from parley.storage import (
    FileRecord,
    NewMessage,
    Role,
    RunStart,
    StorageUnavailable,
    StoredMessage,
    queries,
    records,
    schema,
    skeletons,
)
from parley.storage.dialect import SQLITE
from parley.storage.records import Row
from parley.storage.sql import DAY_MS, SqlStorage

T = TypeVar("T")

# ``sqlite_synchronous`` values and the PRAGMA level each sets.
SYNCHRONOUS_LEVELS = {"full": "FULL", "normal": "NORMAL"}
# What ``PRAGMA synchronous`` answers.
_PRAGMA_LEVELS = {0: "off", 1: "normal", 2: "full", 3: "extra"}


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
    # The column "by" (a keyword) is called by_name, as it always was in PostgreSQL.
    "ALTER TABLE sanctions RENAME COLUMN by TO by_name",
    # File tokens and claims move from one process's memory to the database, for every node.
    """
    CREATE TABLE file_tickets (
        token_hash TEXT NOT NULL,
        upload INTEGER NOT NULL,
        file_id TEXT NOT NULL,
        holder TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (token_hash)
    ) WITHOUT ROWID;
    CREATE INDEX file_tickets_by_expiry ON file_tickets (expires_ms);
    CREATE INDEX file_tickets_by_holder ON file_tickets (holder, expires_ms);
    CREATE TABLE file_claims (
        file_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (file_id)
    ) WITHOUT ROWID;
    """,
    # Registration and room-creation limits move from one process's memory to the database.
    """
    CREATE TABLE window_events (
        key TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (key, at_ms)
    ) WITHOUT ROWID;
    CREATE INDEX window_events_by_time ON window_events (at_ms);
    """,
    # The history epoch, and whether the last run stopped cleanly (see start_run).
    """
    CREATE TABLE history_epoch (
        epoch INTEGER NOT NULL DEFAULT 0,
        running TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO history_epoch (epoch) VALUES (0);
    """,
]

_Q = queries.for_dialect(SQLITE)
_LAST_SEQ = "COALESCE((SELECT last_seq FROM conversations WHERE id = read_markers.conversation), 0)"
_CLAMP_READ_MARKERS = f"UPDATE read_markers SET seq = {_LAST_SEQ} WHERE seq > {_LAST_SEQ}"  # noqa: S608


class SqliteStorage(SqlStorage):
    """Storage in one SQLite database. Create with :meth:`open`."""

    _dialect = SQLITE
    _q = _Q

    def __init__(
        self,
        executor: concurrent.futures.ThreadPoolExecutor,
        clock: Clock,
        synchronous: str = "full",
    ) -> None:
        self._executor = executor
        self._clock = clock
        # The PRAGMA level every durable write commits with.
        self._synchronous = SYNCHRONOUS_LEVELS[synchronous]
        self._db: sqlite3.Connection | None = None
        # Reads of a database file: their own thread and connection (None: reads share the
        # writer's, as an in-memory database must).
        self._read_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._read_db: sqlite3.Connection | None = None

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        busy_timeout_ms: int = 5000,
        clock: Clock = SYSTEM_CLOCK,
        synchronous: str = "full",
    ) -> SqliteStorage:
        """Open (creating if needed) and migrate the database at ``path`` (":memory:" for one
        that lives as long as this object). ``synchronous`` ("full" or "normal") is how far a
        commit goes before it returns (see the module's description). Raises
        StorageUnavailable; ValueError for any other ``synchronous``.
        """
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(
                f"sqlite_synchronous {synchronous!r} is not one of "
                + ", ".join(repr(level) for level in SYNCHRONOUS_LEVELS)
            )
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parley-sqlite")
        storage = cls(executor, clock, synchronous)
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
            db.row_factory = sqlite3.Row
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
            _use_wal(db, busy_timeout_ms)
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            db.execute("PRAGMA foreign_keys = ON")
            db.row_factory = sqlite3.Row
            version: int = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StorageUnavailable(
                    f"The database {path} was made by a newer Parley (schema {version}; this "
                    f"one knows up to {len(MIGRATIONS)})."
                )
            if version == 0:
                version = _create(db)
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

    async def _run(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        write: bool = False,
        durable: bool = True,
        synced: bool = False,
    ) -> T:
        """Run ``work`` on the writing thread, in a transaction, when ``write``; else on the
        reading thread (the writing one for an in-memory database). A write not ``durable``
        commits without waiting for the disk (``synchronous = NORMAL`` in WAL mode: a power
        loss may undo it, never corrupt anything; the next durable commit makes it durable).
        A ``synced`` write waits for the disk (``FULL``) whatever the configured level, and so
        makes every earlier commit durable too.
        """
        reader = None if write else self._read_executor
        level = "FULL" if synced else self._synchronous if durable else "NORMAL"
        switch = level != self._synchronous

        def call() -> T:
            db = self._read_db if reader is not None else self._db
            if db is None:
                raise StorageUnavailable("The database is closed.")
            try:
                if not write:
                    return work(db)
                if switch:
                    db.execute(f"PRAGMA synchronous = {level}")
                try:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(db)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                    return result
                finally:
                    if switch:
                        # The level cannot change inside a transaction (a COMMIT that failed
                        # leaves one open), and every other write must be durable again.
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        db.execute(f"PRAGMA synchronous = {self._synchronous}")
            except (sqlite3.Error, OSError) as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise StorageUnavailable(f"SQLite: {exc}") from exc

        try:
            return await asyncio.get_running_loop().run_in_executor(reader or self._executor, call)
        except RuntimeError as exc:  # the executor is shut down
            raise StorageUnavailable("The database is closed.") from exc

    @property
    def in_memory(self) -> bool:
        """An in-memory database (nothing to make durable; reads share the writer)."""
        return self._read_executor is None

    async def synchronous(self) -> str:
        """The ``synchronous`` level the writing connection commits with, read back from
        SQLite: "off", "normal", "full" or "extra".
        """

        def read() -> int:
            if self._db is None:
                raise StorageUnavailable("The database is closed.")
            return int(self._db.execute("PRAGMA synchronous").fetchone()[0])

        # On the writing thread: the level belongs to its connection, not to the file.
        level = await asyncio.get_running_loop().run_in_executor(self._executor, read)
        return _PRAGMA_LEVELS.get(level, str(level))

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

    # --- the history epoch ----------------------------------------------------------------

    async def start_run(self) -> RunStart:
        level = self._synchronous.lower()

        def start(db: sqlite3.Connection) -> RunStart:
            row = db.execute("SELECT epoch, running FROM history_epoch").fetchone()
            # Only a run that committed without waiting for the disk can have lost commits.
            raised = row["running"] == "normal"
            epoch = int(row["epoch"]) + raised
            if raised:
                # A read marker past its conversation's last seq would take the next messages,
                # which reuse the lost ones' seqs, for read.
                db.execute(_CLAMP_READ_MARKERS)
            db.execute("UPDATE history_epoch SET epoch = ?, running = ?", (epoch, level))
            return RunStart(epoch, raised)

        return await self._run(start, write=True, synced=True)

    async def end_run(self) -> None:
        await self._run(
            lambda db: db.execute("UPDATE history_epoch SET running = ''"), write=True, synced=True
        )

    # --- the primitives of SqlStorage ----------------------------------------------------

    async def _rows(self, sql: str, *args: Any) -> list[Row]:
        return await self._run(lambda db: db.execute(sql, args).fetchall())

    async def _row(self, sql: str, *args: Any) -> Row | None:
        return await self._run(lambda db: db.execute(sql, args).fetchone())

    async def _change(self, sql: str, *args: Any, durable: bool = True) -> int:
        return await self._run(
            lambda db: db.execute(sql, args).rowcount, write=True, durable=durable
        )

    async def _change_many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self._run(lambda db: db.executemany(sql, rows), write=True)

    async def _change_row(self, sql: str, *args: Any, durable: bool = True) -> Row | None:
        # Every row fetched before the COMMIT: a statement still stepping would hold it off.
        rows = await self._run(
            lambda db: db.execute(sql, args).fetchall(), write=True, durable=durable
        )
        return rows[0] if rows else None

    # --- several statements in one transaction -------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        now_ms = self._clock.now_ms()
        return await self._run(lambda db: _append(db, batch, now_ms), write=True)

    async def append_free(self, batch: Sequence[NewMessage]) -> list[StoredMessage | None]:
        # One writing thread and a lock on the whole file, no row locks: nothing is skipped.
        return list(await self.append(batch))

    async def purge(self, now_ms: int, default_retention_days: int | None) -> int:
        def purge(db: sqlite3.Connection) -> int:
            deleted = 0
            for key, days in db.execute(
                "SELECT key, retention_days FROM rooms WHERE retention_days IS NOT NULL"
            ).fetchall():
                deleted += db.execute(
                    "DELETE FROM messages WHERE conversation = ? AND ts < ?",
                    (key, now_ms - days * DAY_MS),
                ).rowcount
            if default_retention_days is not None:
                deleted += db.execute(
                    _Q.purge_default, (now_ms - default_retention_days * DAY_MS,)
                ).rowcount
            return deleted

        return await self._run(purge, write=True)

    async def update_account(
        self, key: str, *, password_hash: str | None = None, role: Role | None = None
    ) -> bool:
        changed_ms = self._clock.now_ms()

        def update(db: sqlite3.Connection) -> bool:
            role_value = role.value if role is not None else None
            if not db.execute(_Q.update_account, (password_hash, role_value, key)).rowcount:
                return False
            db.execute(_Q.record_change, (key, changed_ms))
            return True

        return await self._run(update, write=True)

    async def delete_account(self, key: str) -> bool:
        changed_ms = self._clock.now_ms()

        def delete(db: sqlite3.Connection) -> bool:
            if not db.execute(_Q.delete_account, (key,)).rowcount:
                return False
            db.execute(_Q.record_change, (key, changed_ms))
            return True

        return await self._run(delete, write=True)

    async def revoke_sessions(self, account_key: str, *, keep: str | None = None) -> int:
        changed_ms = self._clock.now_ms()

        def revoke(db: sqlite3.Connection) -> int:
            revoked: int = db.execute(_Q.revoke_sessions, (account_key, keep)).rowcount
            db.execute(_Q.record_change, (account_key, changed_ms))
            return revoked

        return await self._run(revoke, write=True)

    async def count_attempts(
        self, keys: Sequence[str], now_ms: int, forget_before_ms: int
    ) -> list[tuple[int, int]]:
        def count(db: sqlite3.Connection) -> dict[str, tuple[int, int]]:
            counts = {}
            for key in sorted(set(keys)):
                row = db.execute(_Q.count_attempt, (key, now_ms, forget_before_ms)).fetchone()
                counts[key] = (int(row["count"]), int(row["previous_ms"]))
            return counts

        # One thread runs every call, in a transaction: no two attempts see the same count.
        counts = await self._run(count, write=True)
        return [counts[key] for key in keys]

    async def take_window_slots(
        self, limits: Sequence[tuple[str, int]], now_ms: int, since_ms: int
    ) -> bool:
        def take(db: sqlite3.Connection) -> bool:
            for key, most in limits:
                row = db.execute(_Q.window_taken, (key, since_ms)).fetchone()
                if int(row["taken"]) >= most:
                    return False
            for key in sorted({key for key, _ in limits}):
                db.execute(_Q.take_window_slot, (key, now_ms))
            return True

        # One thread runs every call, in a transaction: no two see the same counts.
        return await self._run(take, write=True)

    async def add_file(self, record: FileRecord, readers: Sequence[str]) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute(_Q.insert_file, records.file_values(record))
            db.executemany(
                "INSERT INTO file_readers (file_id, principal) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [(record.file_id, key) for key in readers],
            )

        await self._run(add, write=True)

    async def delete_file(self, file_id: str) -> FileRecord | None:
        def delete(db: sqlite3.Connection) -> FileRecord | None:
            row = db.execute(_Q.file, (file_id,)).fetchone()
            if row is None:
                return None
            # The readers go with it (ON DELETE CASCADE).
            db.execute(_Q.delete_file, (file_id,))
            return records.file(row)

        return await self._run(delete, write=True)


def _use_wal(db: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Switch to WAL. While another connection makes a new file, the switch fails at once
    ("database is locked": SQLite calls no busy handler for it), so it is tried again for
    as long as any other lock would be waited for.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


def _create(db: sqlite3.Connection) -> int:
    """Make a new database at the latest version from the one description, unless another
    process did while this one waited for the lock; the version it is at now.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            for statement in schema.create_statements(SQLITE):
                db.execute(statement)
            version = len(MIGRATIONS)
            db.execute(f"PRAGMA user_version = {version}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return version


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
            row = db.execute(_Q.message_by_identity, identity).fetchone()
            earlier = records.message(row) if row else None
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
                    _Q.insert_participant, [(conversation, key) for key in message.participants]
                )
            last_seq[conversation] = found["last_seq"] if found else 0
        seq = last_seq[conversation] = last_seq[conversation] + 1
        record = StoredMessage(
            conversation, seq, now_ms, message.sender, message.to, message.text, message.msg_id
        )
        fresh[identity] = record
        stored.append(record)
        rows.append((conversation, seq, now_ms, message.sender, message.sender_key, message.to,
                     message.text, message.msg_id))  # fmt: skip
    db.executemany(_Q.insert_message, rows)
    db.executemany(
        "UPDATE conversations SET last_seq = ? WHERE id = ?",
        [(seq, conversation) for conversation, seq in last_seq.items()],
    )
    return stored
