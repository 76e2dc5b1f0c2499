"""PostgreSQL storage, for real deployments and, later, several server nodes sharing one record.

The database is the per-conversation sequencer: ``append`` takes a row lock on each
conversation it writes (``UPDATE ... RETURNING``), so appends from any number of processes get
numbers without gaps or duplicates; ``append_free`` takes only the rows it can at once
(``SKIP LOCKED``) and leaves the busy conversations to ``append``. PostgreSQL text cannot hold
NUL; the protocol never lets one through (messages, names and topics refuse control
characters), and a NUL that reaches this layer anyway is refused with StorageUnavailable
rather than altered.

Every wait is bounded (see Timeouts): a statement by the server's ``statement_timeout`` and
``lock_timeout`` and by asyncpg's ``command_timeout`` (a connection that stops answering), a
whole call by ``operation_seconds``. When the connection is lost while a batch commits,
``append`` looks the messages up before answering, so that what was stored is reported stored.

The queries and row mapping it shares with SQLite are in parley.storage.sql, queries and
records; the schema in parley.storage.schema. This module keeps the pool, the timeouts, the
transactions of several statements and the migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from parley.clock import SYSTEM_CLOCK, Clock
from parley.storage import (
    CommitUncertain,
    FileRecord,
    NewMessage,
    Role,
    RunStart,
    StorageUnavailable,
    StoredMessage,
    queries,
    records,
    skeletons,
)
from parley.storage import schema as schema_module
from parley.storage.dialect import POSTGRES
from parley.storage.records import Row
from parley.storage.sql import DAY_MS, SqlStorage

T = TypeVar("T")


async def _keep_skeletons(db: asyncpg.Connection) -> None:
    """Each account's and room's name skeleton, unique (see parley.storage.skeletons)."""
    for table in skeletons.TABLES:
        await db.execute(
            f"ALTER TABLE {table} ADD COLUMN skeleton TEXT NOT NULL DEFAULT '', "
            "ADD COLUMN look_alike INTEGER NOT NULL DEFAULT 0"
        )
    await db.execute("CREATE TABLE skeleton_data (data TEXT NOT NULL)")
    await db.execute("INSERT INTO skeleton_data VALUES ('')")
    await _compute_skeletons(db)


async def _compute_skeletons(db: asyncpg.Connection) -> None:
    """Compute every stored skeleton with this Parley's data. O(accounts + rooms)."""
    for table in skeletons.TABLES:
        await db.execute(f"DROP INDEX IF EXISTS {table}_by_skeleton")
        rows = await db.fetch(f"SELECT key, name FROM {table} ORDER BY created_ms, key")  # noqa: S608
        await db.executemany(
            f"UPDATE {table} SET skeleton = $1, look_alike = $2 WHERE key = $3",  # noqa: S608
            skeletons.numbered((row["key"], row["name"]) for row in rows),
        )
        await db.execute(
            f"CREATE UNIQUE INDEX {table}_by_skeleton ON {table} (skeleton, look_alike)"
        )
    await db.execute("UPDATE skeleton_data SET data = $1", skeletons.DATA)


# Each step upgrades the schema by one version; never edit a shipped one. A step is SQL, or a
# function for what SQL cannot compute (it runs in the migration's transaction).
MIGRATIONS: list[str | Callable[[asyncpg.Connection], Awaitable[None]]] = [
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        conversation TEXT NOT NULL,
        seq BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        sender TEXT NOT NULL,
        sender_key TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        msg_id TEXT NOT NULL,
        PRIMARY KEY (conversation, seq),
        UNIQUE (conversation, sender_key, msg_id)
    );
    CREATE INDEX messages_ts ON messages (ts);
    CREATE TABLE participants (
        conversation TEXT NOT NULL,
        nick_key TEXT NOT NULL,
        PRIMARY KEY (conversation, nick_key)
    );
    CREATE INDEX participants_by_nick ON participants (nick_key);
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        account_key TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        expires_ms BIGINT NOT NULL
    );
    CREATE INDEX sessions_by_account ON sessions (account_key);
    CREATE TABLE rooms (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        topic TEXT NOT NULL,
        topic_by TEXT NOT NULL,
        topic_ms BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        retention_days INTEGER
    );
    CREATE TABLE members (
        room_key TEXT NOT NULL,
        account_key TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        operator BOOLEAN NOT NULL,
        PRIMARY KEY (room_key, account_key)
    );
    CREATE INDEX members_by_account ON members (account_key);
    CREATE TABLE sanctions (
        room_key TEXT NOT NULL,
        target_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        until_ms BIGINT,
        by_name TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (room_key, target_key, kind)
    );
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        ts BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        room TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE read_markers (
        account_key TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        conversation TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (account_key, conversation)
    );
    """,
    """
    CREATE TABLE files (
        file_id TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        name TEXT NOT NULL,
        size BIGINT NOT NULL,
        sender_key TEXT NOT NULL,
        sender TEXT NOT NULL,
        conversation TEXT NOT NULL,
        recipient TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        complete BOOLEAN NOT NULL
    );
    CREATE INDEX files_by_sender ON files (sender_key, expires_ms);
    CREATE INDEX files_by_conversation ON files (conversation, created_ms);
    CREATE INDEX files_by_expiry ON files (expires_ms);
    CREATE INDEX files_by_sha256 ON files (sha256);
    CREATE TABLE file_readers (
        file_id TEXT NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
        nick_key TEXT NOT NULL,
        PRIMARY KEY (file_id, nick_key)
    );
    CREATE INDEX file_readers_by_nick ON file_readers (nick_key);
    """,
    # Principals: as in the SQLite step of the same number (see there for why).
    """
    ALTER TABLE accounts ADD COLUMN id TEXT;
    UPDATE accounts SET id = replace(gen_random_uuid()::text, '-', '');
    ALTER TABLE accounts ALTER COLUMN id SET NOT NULL;
    CREATE UNIQUE INDEX accounts_by_id ON accounts (id);
    CREATE TEMP TABLE principal_map (key TEXT PRIMARY KEY, principal TEXT NOT NULL)
        ON COMMIT DROP;
    INSERT INTO principal_map SELECT key, id FROM accounts;
    INSERT INTO principal_map
        SELECT key, 'x' || key FROM (
            SELECT nick_key AS key FROM participants
            UNION SELECT sender_key FROM files
            UNION SELECT nick_key FROM file_readers
            UNION SELECT target_key FROM sanctions
            UNION SELECT created_by FROM rooms WHERE created_by != ''
        ) used
        ON CONFLICT DO NOTHING;
    CREATE TEMP TABLE dm_map (old TEXT PRIMARY KEY, new TEXT NOT NULL) ON COMMIT DROP;
    INSERT INTO dm_map
        SELECT old, 'dm:' || LEAST(p1.principal COLLATE "C", p2.principal COLLATE "C") || ':'
                    || GREATEST(p1.principal COLLATE "C", p2.principal COLLATE "C")
        FROM (
            SELECT old, split_part(old, ':', 2) AS k1, split_part(old, ':', 3) AS k2
            FROM (SELECT id AS old FROM conversations WHERE id LIKE 'dm:%'
                  UNION SELECT conversation FROM files WHERE conversation LIKE 'dm:%'
                  UNION SELECT conversation FROM read_markers WHERE conversation LIKE 'dm:%')
                AS ids
        ) pairs
        JOIN principal_map p1 ON p1.key = pairs.k1
        JOIN principal_map p2 ON p2.key = pairs.k2;
    UPDATE conversations c SET id = m.new FROM dm_map m WHERE c.id = m.old;
    UPDATE messages t SET conversation = m.new FROM dm_map m WHERE t.conversation = m.old;
    ALTER TABLE participants RENAME COLUMN nick_key TO principal;
    UPDATE participants t SET conversation = m.new FROM dm_map m WHERE t.conversation = m.old;
    UPDATE participants t SET principal = m.principal FROM principal_map m
        WHERE t.principal = m.key;
    UPDATE read_markers t SET conversation = m.new FROM dm_map m WHERE t.conversation = m.old;
    ALTER TABLE files ADD COLUMN quota_key TEXT NOT NULL DEFAULT '';
    UPDATE files t SET sender_key = m.principal FROM principal_map m WHERE t.sender_key = m.key;
    UPDATE files t SET conversation = m.new FROM dm_map m WHERE t.conversation = m.old;
    UPDATE files SET quota_key = sender_key;
    CREATE INDEX files_by_quota ON files (quota_key, expires_ms);
    ALTER TABLE file_readers RENAME COLUMN nick_key TO principal;
    UPDATE file_readers t SET principal = m.principal FROM principal_map m
        WHERE t.principal = m.key;
    UPDATE sanctions t SET target_key = m.principal FROM principal_map m
        WHERE t.target_key = m.key;
    UPDATE rooms t SET created_by = m.principal FROM principal_map m WHERE t.created_by = m.key;
    CREATE TABLE login_attempts (
        key TEXT PRIMARY KEY,
        count BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        -- The attempt before the last (0 when none): its time decides the next wait.
        previous_ms BIGINT NOT NULL
    );
    CREATE INDEX login_attempts_by_time ON login_attempts (last_ms);
    CREATE TABLE account_changes (
        seq BIGSERIAL PRIMARY KEY,
        account_key TEXT NOT NULL,
        ts BIGINT NOT NULL
    );
    """,
    _keep_skeletons,
    # The unique index on a message's identity has the name it has in SQLite.
    "ALTER INDEX messages_conversation_sender_key_msg_id_key RENAME TO messages_retry",
    # File tokens and claims move from one process's memory to the database, for every node.
    """
    CREATE TABLE file_tickets (
        token_hash TEXT NOT NULL,
        upload BOOLEAN NOT NULL,
        file_id TEXT NOT NULL,
        holder TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        PRIMARY KEY (token_hash)
    );
    CREATE INDEX file_tickets_by_expiry ON file_tickets (expires_ms);
    CREATE INDEX file_tickets_by_holder ON file_tickets (holder, expires_ms);
    CREATE TABLE file_claims (
        file_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        PRIMARY KEY (file_id)
    );
    """,
    # Registration and room-creation limits move from one process's memory to the database.
    """
    CREATE TABLE window_events (
        key TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (key, at_ms)
    );
    CREATE INDEX window_events_by_time ON window_events (at_ms);
    """,
    # The history epoch (see parley.storage.schema); it never changes by itself here.
    """
    CREATE TABLE history_epoch (
        epoch BIGINT NOT NULL DEFAULT 0,
        running TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO history_epoch (epoch) VALUES (0);
    """,
]

_Q = queries.for_dialect(POSTGRES)
# Migrations from two processes at once take turns on this advisory lock.
_MIGRATION_LOCK = 0x7061726C6579  # "parley"
# Counting under a limited key takes this transaction lock, in a key space of its own (two
# 32-bit numbers: never the migration's one 64-bit number).
_WINDOW_LOCK = "SELECT pg_advisory_xact_lock($1, hashtext($2))"
_WINDOW_LOCK_CLASS = 0x706C6779  # "plgy"
# Closing waits this long for the connections to end politely.
_CLOSE_SECONDS = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    """How long PostgreSQL calls may wait. Past any of these a call fails StorageUnavailable."""

    # One statement on the server; waiting for a row lock (another session writing the same
    # conversation) is cut sooner.
    statement_seconds: float = 5.0
    lock_seconds: float = 2.0
    # A whole call: waiting for a pooled connection, connecting, its statements, the commit.
    # Also how long a silent connection (a stalled or partitioned network) is waited for,
    # rather than TCP's retransmission timeout of about 15 minutes.
    operation_seconds: float = 10.0


# Connecting (a new pooled connection) must finish within this.
_CONNECT_SECONDS = 5.0
# Pooled connections: more than the hub's concurrent commits (4), so that logins, joins and
# reads find one while commits wait on locks. Idle ones are closed and made again after a
# while, so that none grows stale behind a NAT or a restarted database.
_POOL_SIZE = 8
_IDLE_CONNECTION_SECONDS = 60.0
# Failures that say nothing about the statement, only that the connection is gone or silent.
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
)


class PostgresStorage(SqlStorage):
    """Storage in a PostgreSQL database. Create with :meth:`open`."""

    _dialect = POSTGRES
    _q = _Q

    def __init__(self, pool: asyncpg.Pool, timeouts: Timeouts, clock: Clock) -> None:
        self._pool = pool
        self._timeouts = timeouts
        self._clock = clock

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        schema: str | None = None,
        timeouts: Timeouts | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> PostgresStorage:
        """Connect, and create or migrate the schema. ``schema`` (tests) keeps the tables in a
        schema of their own, created if missing. Raises StorageUnavailable.
        """
        if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"Not a plain schema name: {schema!r}")
        timeouts = timeouts or Timeouts()
        settings = {
            "statement_timeout": str(int(timeouts.statement_seconds * 1000)),
            "lock_timeout": str(int(timeouts.lock_seconds * 1000)),
            # A transaction of ours left open by a dying connection frees its row locks.
            "idle_in_transaction_session_timeout": str(int(timeouts.operation_seconds * 1000)),
        }
        if schema:
            settings["search_path"] = schema
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=_POOL_SIZE,
                server_settings=settings,
                timeout=_CONNECT_SECONDS,
                command_timeout=timeouts.operation_seconds,
                max_inactive_connection_lifetime=_IDLE_CONNECTION_SECONDS,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StorageUnavailable(f"Cannot connect to PostgreSQL: {exc}") from exc
        storage = cls(pool, timeouts, clock)
        try:
            await storage._migrate(schema)
        except BaseException:
            await pool.close()
            raise
        return storage

    async def _migrate(self, schema: str | None) -> None:
        async def migrate(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                if schema:
                    # A name from our own tests, quoted; identifiers cannot be parameters.
                    await db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                await db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                )
                version = await db.fetchval("SELECT max(version) FROM schema_version") or 0
                if version > len(MIGRATIONS):
                    raise StorageUnavailable(
                        f"The database was made by a newer Parley (schema {version}; this one "
                        f"knows up to {len(MIGRATIONS)})."
                    )
                if version == 0:
                    # A new database: made at the latest version from the one description.
                    await db.execute(";\n".join(schema_module.create_statements(POSTGRES)))
                    await db.execute("INSERT INTO schema_version VALUES ($1)", len(MIGRATIONS))
                    version = len(MIGRATIONS)
                for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                    if isinstance(step, str):
                        await db.execute(step)
                    else:
                        await step(db)
                    await db.execute("INSERT INTO schema_version VALUES ($1)", number)
                if await db.fetchval("SELECT data FROM skeleton_data") != skeletons.DATA:
                    await _compute_skeletons(db)

        await self._run(migrate)

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``work`` on a pooled connection, within the operation timeout in all."""
        try:
            async with asyncio.timeout(self._timeouts.operation_seconds):
                db = await self._pool.acquire()
                try:
                    return await work(db)
                except BaseException:
                    # Failed, timed out or cancelled, it may be anywhere in a transaction over
                    # a connection that may never answer: closed at once (which ends the
                    # transaction on the server) rather than rolled back and waited for.
                    db.terminate()
                    raise
                finally:
                    await self._pool.release(db)
        except StorageUnavailable:
            raise
        except _CONNECTION_ERRORS as exc:
            # The connections in the pool likely share the fault (a restarted database, a
            # broken route): each is replaced at its next use instead of failing in turn.
            if not self._pool.is_closing():
                await self._pool.expire_connections()
            raise StorageUnavailable(f"PostgreSQL: {_describe(exc)}") from exc
        except (asyncpg.PostgresError, UnicodeEncodeError) as exc:
            raise StorageUnavailable(f"PostgreSQL: {exc}") from exc

    # --- the history epoch ----------------------------------------------------------------

    async def start_run(self) -> RunStart:
        # What PostgreSQL acknowledged it keeps: the epoch stays, and nodes sharing the
        # database (each starting and stopping on its own) have nothing to record.
        row = await self._row("SELECT epoch FROM history_epoch")
        return RunStart(int(row["epoch"]) if row is not None else 0)

    async def end_run(self) -> None:
        return None

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), _CLOSE_SECONDS)
        except TimeoutError:
            self._pool.terminate()  # the database is not answering: drop the connections

    # --- the primitives of SqlStorage ----------------------------------------------------

    async def _rows(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._run(lambda db: db.fetch(sql, *args))
        return rows

    async def _row(self, sql: str, *args: Any) -> Row | None:
        return await self._run(lambda db: db.fetchrow(sql, *args))

    async def _change(self, sql: str, *args: Any, durable: bool = True) -> int:
        # Always durable: asking for less costs more round trips than PostgreSQL's group
        # commit saves.
        status: str = await self._run(lambda db: db.execute(sql, *args))
        return _changed(status)

    async def _change_many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self._run(lambda db: db.executemany(sql, rows))

    async def _change_row(self, sql: str, *args: Any, durable: bool = True) -> Row | None:
        return await self._run(lambda db: db.fetchrow(sql, *args))

    # --- several statements in one transaction -------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        now_ms = self._clock.now_ms()
        # What the transaction stored, once only its COMMIT is left.
        committing: list[StoredMessage] = []

        async def append(db: asyncpg.Connection) -> list[StoredMessage]:
            async with _transaction(db):
                stored = await _append(db, batch, now_ms, locked=False)
                committing[:] = stored
            return stored

        try:
            return await self._run(append)
        except StorageUnavailable as exc:
            if not committing or not isinstance(exc.__cause__, _CONNECTION_ERRORS):
                raise  # rolled back: nothing of it is stored
            return await self._settle(batch, committing, exc)

    async def append_free(self, batch: Sequence[NewMessage]) -> list[StoredMessage | None]:
        now_ms = self._clock.now_ms()
        # The messages of the conversations whose rows this transaction holds, and what it
        # stored of them once only its COMMIT is left.
        mine: list[NewMessage] = []
        committing: list[StoredMessage] = []

        async def append(db: asyncpg.Connection) -> list[StoredMessage]:
            await db.execute("BEGIN")
            # The rows no other transaction holds, taken at once and never waited for:
            # a busy conversation is left out instead of holding up the others. The
            # lock is the one the numbering's UPDATE takes (not FOR UPDATE, which
            # foreign key checks on the row would conflict with).
            rows = await db.fetch(
                "SELECT id FROM conversations WHERE id = ANY($1::text[]) "
                "FOR NO KEY UPDATE SKIP LOCKED",
                sorted({message.conversation for message in batch}),
            )
            held = {row["id"] for row in rows}
            mine[:] = [message for message in batch if message.conversation in held]
            if not mine:
                # Nothing to store: no COMMIT, so none whose answer could be lost.
                await db.execute("ROLLBACK")
                return []
            stored = await _append(db, mine, now_ms, locked=True)
            committing[:] = stored
            await db.execute("COMMIT")
            return stored

        try:
            stored = await self._run(append)
        except StorageUnavailable as exc:
            if not committing or not isinstance(exc.__cause__, _CONNECTION_ERRORS):
                raise
            stored = await self._settle(mine, committing, exc)
        by_message = iter(stored)
        held_conversations = {message.conversation for message in mine}
        return [
            next(by_message) if message.conversation in held_conversations else None
            for message in batch
        ]

    async def _settle(
        self, batch: Sequence[NewMessage], committing: list[StoredMessage], lost: Exception
    ) -> list[StoredMessage]:
        """The connection went while COMMIT was under way: look the batch up on another
        connection. Stored, it is returned as stored; not stored, StorageUnavailable; no
        answer either, CommitUncertain.
        """
        identities = [(m.conversation, m.sender_key, m.msg_id) for m in batch]
        try:
            found = await self._run(lambda db: _stored(db, identities))
        except StorageUnavailable as exc:
            raise CommitUncertain(
                f"{lost} (the commit's outcome is not known: {exc.__cause__ or exc})"
            ) from exc
        fresh = [
            identity
            for identity, record in zip(identities, committing, strict=True)
            if not record.duplicate
        ]
        if not any(identity in found for identity in fresh):
            raise lost
        if not all(identity in found for identity in fresh):
            raise CommitUncertain(f"{lost} (only part of the batch was found stored)")
        # Stored by this call: what the transaction numbered, as the database has it.
        return [
            record if record.duplicate else found[identity]
            for identity, record in zip(identities, committing, strict=True)
        ]

    async def purge(self, now_ms: int, default_retention_days: int | None) -> int:
        async def purge(db: asyncpg.Connection) -> int:
            async with _transaction(db):
                status = await db.execute(
                    "DELETE FROM messages m USING rooms r WHERE m.conversation = r.key "
                    "AND r.retention_days IS NOT NULL "
                    "AND m.ts < $1::bigint - r.retention_days * $2::bigint",
                    now_ms,
                    DAY_MS,
                )
                deleted = _changed(status)
                if default_retention_days is not None:
                    status = await db.execute(
                        _Q.purge_default, now_ms - default_retention_days * DAY_MS
                    )
                    deleted += _changed(status)
                return deleted

        return await self._run(purge)

    async def update_account(
        self, key: str, *, password_hash: str | None = None, role: Role | None = None
    ) -> bool:
        changed_ms = self._clock.now_ms()

        async def update(db: asyncpg.Connection) -> bool:
            async with db.transaction():
                role_value = role.value if role is not None else None
                if not _changed(
                    await db.execute(_Q.update_account, password_hash, role_value, key)
                ):
                    return False
                await db.execute(_Q.record_change, key, changed_ms)
                return True

        return await self._run(update)

    async def delete_account(self, key: str) -> bool:
        changed_ms = self._clock.now_ms()

        async def delete(db: asyncpg.Connection) -> bool:
            async with db.transaction():
                if not _changed(await db.execute(_Q.delete_account, key)):
                    return False
                await db.execute(_Q.record_change, key, changed_ms)
                return True

        return await self._run(delete)

    async def revoke_sessions(self, account_key: str, *, keep: str | None = None) -> int:
        changed_ms = self._clock.now_ms()

        async def revoke(db: asyncpg.Connection) -> int:
            async with db.transaction():
                status: str = await db.execute(_Q.revoke_sessions, account_key, keep)
                await db.execute(_Q.record_change, account_key, changed_ms)
                return _changed(status)

        return await self._run(revoke)

    async def count_attempts(
        self, keys: Sequence[str], now_ms: int, forget_before_ms: int
    ) -> list[tuple[int, int]]:
        async def count(db: asyncpg.Connection) -> list[tuple[int, int]]:
            counts: dict[str, tuple[int, int]] = {}
            async with db.transaction():
                # Keys in sorted order: two transactions never wait for each other's row locks
                # in a cycle.
                for key in sorted(set(keys)):
                    row = await db.fetchrow(_Q.count_attempt, key, now_ms, forget_before_ms)
                    counts[key] = (int(row["count"]), int(row["previous_ms"]))
            return [counts[key] for key in keys]

        return await self._run(count)

    async def take_window_slots(
        self, limits: Sequence[tuple[str, int]], now_ms: int, since_ms: int
    ) -> bool:
        async def take(db: asyncpg.Connection) -> bool:
            keys = sorted({key for key, _ in limits})
            async with db.transaction():
                # A key's counting waits for another's on the same key (in sorted order: never
                # in a cycle), so each sees the events of those before it. A lock, not a row:
                # a key with no events yet has no row to lock.
                for key in keys:
                    await db.execute(_WINDOW_LOCK, _WINDOW_LOCK_CLASS, key)
                for key, most in limits:
                    if await db.fetchval(_Q.window_taken, key, since_ms) >= most:
                        return False
                for key in keys:
                    await db.execute(_Q.take_window_slot, key, now_ms)
            return True

        return await self._run(take)

    async def add_file(self, record: FileRecord, readers: Sequence[str]) -> None:
        async def add(db: asyncpg.Connection) -> None:
            async with _transaction(db):
                await db.execute(_Q.insert_file, *records.file_values(record))
                await db.execute(
                    "INSERT INTO file_readers (file_id, principal) "
                    "SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                    record.file_id,
                    list(readers),
                )

        await self._run(add)

    async def delete_file(self, file_id: str) -> FileRecord | None:
        # The readers go with it (ON DELETE CASCADE).
        row = await self._row(_Q.delete_file + f" RETURNING {records.FILE_COLUMNS}", file_id)
        return records.file(row) if row else None


def _changed(status: str) -> int:
    """How many rows a command changed, from its status ("DELETE 3", "INSERT 0 1")."""
    return int(status.split()[-1])


@contextlib.asynccontextmanager
async def _transaction(db: asyncpg.Connection) -> AsyncIterator[None]:
    """BEGIN, and COMMIT when the body succeeds. On failure there is no ROLLBACK: ``_run``
    closes the connection, which ends the transaction without waiting for an answer."""
    await db.execute("BEGIN")
    yield
    await db.execute("COMMIT")


def _describe(exc: BaseException) -> str:
    """An exception as a log line: a timeout's message is empty."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def _stored(
    db: asyncpg.Connection, identities: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], StoredMessage]:
    """The stored messages among ``(conversation, sender_key, msg_id)``s. One query."""
    rows = await db.fetch(
        f"SELECT {records.MESSAGE_COLUMNS}, sender_key FROM messages "  # noqa: S608 (constants)
        "WHERE (conversation, sender_key, msg_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
        [i[0] for i in identities],
        [i[1] for i in identities],
        [i[2] for i in identities],
    )
    return {
        (row["conversation"], row["sender_key"], row["msg_id"]): records.message(row)
        for row in rows
    }


async def _append(
    db: asyncpg.Connection, batch: Sequence[NewMessage], now_ms: int, *, locked: bool
) -> list[StoredMessage]:
    """Number and store ``batch`` in the open transaction. ``locked``: the transaction holds
    every conversation's row already.

    Each conversation's row is locked before the batch is looked up for retries: another
    node storing a retry of the same message at the same moment is waited for, and its
    message then found stored (a duplicate), instead of both numbering it and one failing the
    whole batch on the unique key. Times never go backwards within a conversation, whatever
    the clocks of the nodes that stamp them.
    """
    conversations = sorted({message.conversation for message in batch})
    if not locked:
        # In a fixed order, so that two writers never wait on each other in a cycle.
        for conversation in conversations:
            await db.execute(
                "INSERT INTO conversations (id, last_seq) VALUES ($1, 0) ON CONFLICT (id) "
                "DO UPDATE SET last_seq = conversations.last_seq",
                conversation,
            )
    # Which of the batch were stored before (retries)? One query for the whole batch.
    identities = [(m.conversation, m.sender_key, m.msg_id) for m in batch]
    earlier = await _stored(db, identities)
    fresh: dict[str, list[NewMessage]] = {}
    seen: set[tuple[str, str, str]] = set()
    for message, identity in zip(batch, identities, strict=True):
        if identity not in earlier and identity not in seen:
            seen.add(identity)
            fresh.setdefault(message.conversation, []).append(message)
    # Number each conversation's new messages under its row lock, in a fixed order so that two
    # writers never wait on each other in a cycle.
    numbered: dict[tuple[str, str, str], StoredMessage] = {}
    for conversation in sorted(fresh):
        messages = fresh[conversation]
        last = await db.fetchval(
            "INSERT INTO conversations (id, last_seq) VALUES ($1, $2) ON CONFLICT (id) "
            "DO UPDATE SET last_seq = conversations.last_seq + excluded.last_seq "
            "RETURNING last_seq",
            conversation,
            len(messages),
        )
        first = last - len(messages) + 1
        stamp = now_ms
        if first > 1:
            latest = await db.fetchval(
                "SELECT ts FROM messages WHERE conversation = $1 ORDER BY seq DESC LIMIT 1",
                conversation,
            )
            stamp = max(now_ms, latest or 0)
        if first == 1 and messages[0].participants:
            await db.executemany(
                _Q.insert_participant,
                [(conversation, key) for key in messages[0].participants],
            )
        for offset, message in enumerate(messages):
            record = StoredMessage(
                conversation, first + offset, stamp, message.sender, message.to, message.text,
                message.msg_id,
            )  # fmt: skip
            numbered[(conversation, message.sender_key, message.msg_id)] = record
    if numbered:
        await db.copy_records_to_table(
            "messages",
            records=[
                (r.conversation, r.seq, r.ts, r.sender, key[1], r.to, r.text, r.msg_id)
                for key, r in numbered.items()
            ],
            columns=["conversation", "seq", "ts", "sender", "sender_key", "recipient", "text",
                     "msg_id"],
        )  # fmt: skip
    stored: list[StoredMessage] = []
    first_of: set[tuple[str, str, str]] = set()
    for identity in identities:
        if identity in earlier:
            stored.append(dataclasses.replace(earlier[identity], duplicate=True))
        elif identity in first_of:
            stored.append(dataclasses.replace(numbered[identity], duplicate=True))
        else:
            first_of.add(identity)
            stored.append(numbered[identity])
    return stored
