"""PostgreSQL storage, for real deployments and, later, several server nodes sharing one record.

The database is the per-conversation sequencer: ``append`` takes a row lock on each
conversation it writes (``UPDATE ... RETURNING``), so appends from any number of processes get
numbers without gaps or duplicates. PostgreSQL text cannot hold NUL; the protocol never lets
one through (messages, names and topics refuse control characters), and a NUL that reaches
this layer anyway is refused with StorageUnavailable rather than altered.

Every wait is bounded (see Timeouts): a statement by the server's ``statement_timeout`` and
``lock_timeout`` and by asyncpg's ``command_timeout`` (a connection that stops answering), a
whole call by ``operation_seconds``. When the connection is lost while a batch commits,
``append`` looks the messages up before answering, so that what was stored is reported stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from parley.protocol.names import name_skeleton
from parley.storage import (
    Account,
    AuditEntry,
    CommitUncertain,
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
_RECORD_CHANGE = "INSERT INTO account_changes (account_key, ts) VALUES ($1, $2)"
# Migrations from two processes at once take turns on this advisory lock.
_MIGRATION_LOCK = 0x7061726C6579  # "parley"
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


class PostgresStorage:
    """Storage in a PostgreSQL database. Create with :meth:`open`."""

    # Transactions of different conversations run side by side on the pool.
    serial_writes = False

    def __init__(self, pool: asyncpg.Pool, timeouts: Timeouts) -> None:
        self._pool = pool
        self._timeouts = timeouts

    @classmethod
    async def open(
        cls, dsn: str, *, schema: str | None = None, timeouts: Timeouts | None = None
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
        storage = cls(pool, timeouts)
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

    async def _execute(self, sql: str, *args: Any) -> bool:
        """Run one changing statement; True when it changed a row."""
        status: str = await self._run(lambda db: db.execute(sql, *args))
        return not status.endswith(" 0")

    async def _row(self, sql: str, *args: Any) -> Any:
        return await self._run(lambda db: db.fetchrow(sql, *args))

    async def _rows(self, sql: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self._run(lambda db: db.fetch(sql, *args))
        return rows

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), _CLOSE_SECONDS)
        except TimeoutError:
            self._pool.terminate()  # the database is not answering: drop the connections

    # --- messages ------------------------------------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        now_ms = time.time_ns() // 1_000_000
        # What the transaction stored, once only its COMMIT is left.
        committing: list[StoredMessage] = []

        async def append(db: asyncpg.Connection) -> list[StoredMessage]:
            async with _transaction(db):
                stored = await _append(db, batch, now_ms)
                committing[:] = stored
            return stored

        try:
            return await self._run(append)
        except StorageUnavailable as exc:
            if not committing or not isinstance(exc.__cause__, _CONNECTION_ERRORS):
                raise  # rolled back: nothing of it is stored
            return await self._settle(batch, committing, exc)

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

    async def history(
        self,
        conversation: str,
        *,
        limit: int,
        after_seq: int | None = None,
        before_seq: int | None = None,
    ) -> list[StoredMessage]:
        if after_seq is not None:
            rows = await self._rows(
                _SELECT_MESSAGES + "WHERE conversation = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                conversation,
                after_seq,
                limit,
            )
            return [StoredMessage(*row) for row in rows]
        rows = await self._rows(
            _SELECT_MESSAGES + "WHERE conversation = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            conversation,
            before_seq if before_seq is not None else 2**63 - 1,
            limit,
        )
        return [StoredMessage(*row) for row in reversed(rows)]

    async def purge(self, now_ms: int, default_retention_days: int | None) -> int:
        async def purge(db: asyncpg.Connection) -> int:
            async with _transaction(db):
                status = await db.execute(
                    "DELETE FROM messages m USING rooms r WHERE m.conversation = r.key "
                    "AND r.retention_days IS NOT NULL "
                    "AND m.ts < $1::bigint - r.retention_days * $2::bigint",
                    now_ms,
                    _DAY_MS,
                )
                deleted = int(status.split()[-1])
                if default_retention_days is not None:
                    status = await db.execute(
                        "DELETE FROM messages WHERE ts < $1 AND conversation NOT IN "
                        "(SELECT key FROM rooms WHERE retention_days IS NOT NULL)",
                        now_ms - default_retention_days * _DAY_MS,
                    )
                    deleted += int(status.split()[-1])
                return deleted

        return await self._run(purge)

    # --- accounts and sessions -----------------------------------------------------------

    async def create_account(self, account: Account) -> bool:
        return await self._execute(
            "INSERT INTO accounts (key, name, password_hash, role, created_ms, id, skeleton) "
            "SELECT $1, $2, $3, $4, $5::bigint, $6, $7 "
            "WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE skeleton = $7) "
            "ON CONFLICT DO NOTHING",
            account.key,
            account.name,
            account.password_hash,
            account.role.value,
            account.created_ms,
            account.id,
            name_skeleton(account.name),
        )

    async def account(self, key: str) -> Account | None:
        row = await self._row(_SELECT_ACCOUNTS + "WHERE key = $1", key)
        return _account(row) if row else None

    async def account_by_id(self, account_id: str) -> Account | None:
        row = await self._row(_SELECT_ACCOUNTS + "WHERE id = $1", account_id)
        return _account(row) if row else None

    async def account_like(self, name: str) -> Account | None:
        row = await self._row(
            _SELECT_ACCOUNTS + "WHERE skeleton = $1 ORDER BY look_alike LIMIT 1",
            name_skeleton(name),
        )
        return _account(row) if row else None

    async def accounts(self) -> list[Account]:
        return [_account(row) for row in await self._rows(_SELECT_ACCOUNTS + "ORDER BY key")]

    async def update_account(
        self, key: str, *, password_hash: str | None = None, role: Role | None = None
    ) -> bool:
        async def update(db: asyncpg.Connection) -> bool:
            async with db.transaction():
                status: str = await db.execute(
                    "UPDATE accounts SET password_hash = COALESCE($1, password_hash), "
                    "role = COALESCE($2, role) WHERE key = $3",
                    password_hash,
                    role.value if role is not None else None,
                    key,
                )
                if status.endswith(" 0"):
                    return False
                await db.execute(_RECORD_CHANGE, key, time.time_ns() // 1_000_000)
                return True

        return await self._run(update)

    async def delete_account(self, key: str) -> bool:
        async def delete(db: asyncpg.Connection) -> bool:
            async with db.transaction():
                status: str = await db.execute("DELETE FROM accounts WHERE key = $1", key)
                if status.endswith(" 0"):
                    return False
                await db.execute(_RECORD_CHANGE, key, time.time_ns() // 1_000_000)
                return True

        return await self._run(delete)

    async def account_changes(self, after_seq: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._rows(
            "SELECT seq, account_key FROM account_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            after_seq,
            limit,
        )
        return [(int(seq), str(key)) for seq, key in rows]

    async def last_account_change(self) -> int:
        seq = await self._run(
            lambda db: db.fetchval("SELECT COALESCE(MAX(seq), 0) FROM account_changes")
        )
        return int(seq)

    async def forget_account_changes(self, before_ms: int) -> int:
        status: str = await self._run(
            lambda db: db.execute("DELETE FROM account_changes WHERE ts < $1", before_ms)
        )
        return int(status.split()[-1])

    async def create_session(self, token_hash: str, account_key: str, expires_ms: int) -> None:
        await self._execute(
            "INSERT INTO sessions VALUES ($1, $2, $3) ON CONFLICT (token_hash) "
            "DO UPDATE SET account_key = excluded.account_key, expires_ms = excluded.expires_ms",
            token_hash,
            account_key,
            expires_ms,
        )

    async def session_account(self, token_hash: str, now_ms: int) -> str | None:
        row = await self._row(
            "SELECT account_key FROM sessions WHERE token_hash = $1 AND expires_ms > $2",
            token_hash,
            now_ms,
        )
        return str(row[0]) if row else None

    async def revoke_session(self, token_hash: str) -> bool:
        return await self._execute("DELETE FROM sessions WHERE token_hash = $1", token_hash)

    async def revoke_sessions(self, account_key: str, *, keep: str | None = None) -> int:
        async def revoke(db: asyncpg.Connection) -> int:
            async with db.transaction():
                status: str = await db.execute(
                    "DELETE FROM sessions WHERE account_key = $1 "
                    "AND token_hash IS DISTINCT FROM $2",
                    account_key,
                    keep,
                )
                await db.execute(_RECORD_CHANGE, account_key, time.time_ns() // 1_000_000)
                return int(status.split()[-1])

        return await self._run(revoke)

    # --- login throttling ----------------------------------------------------------------

    async def count_attempts(
        self, keys: Sequence[str], now_ms: int, forget_before_ms: int
    ) -> list[tuple[int, int]]:
        async def count(db: asyncpg.Connection) -> list[tuple[int, int]]:
            counts: dict[str, tuple[int, int]] = {}
            async with db.transaction():
                # The upsert's row lock orders concurrent attempts from any process, and each
                # sees the row as the one before it left it. Keys in sorted order: two
                # transactions never wait for each other's locks in a cycle.
                for key in sorted(set(keys)):
                    row = await db.fetchrow(
                        "INSERT INTO login_attempts AS a VALUES ($1, 1, $2, 0) "
                        "ON CONFLICT (key) DO UPDATE "
                        "SET count = CASE WHEN a.last_ms < $3 THEN 1 ELSE a.count + 1 END, "
                        "previous_ms = CASE WHEN a.last_ms < $3 THEN 0 ELSE a.last_ms END, "
                        "last_ms = $2 RETURNING count, previous_ms",
                        key,
                        now_ms,
                        forget_before_ms,
                    )
                    counts[key] = (int(row[0]), int(row[1]))
            return [counts[key] for key in keys]

        return await self._run(count)

    async def refund_attempts(self, keys: Sequence[str]) -> None:
        await self._run(
            lambda db: db.executemany(
                "UPDATE login_attempts SET count = GREATEST(count - 1, 0) WHERE key = $1",
                [(key,) for key in keys],
            )
        )

    async def forget_attempts(self, before_ms: int) -> int:
        status: str = await self._run(
            lambda db: db.execute("DELETE FROM login_attempts WHERE last_ms < $1", before_ms)
        )
        return int(status.split()[-1])

    # --- rooms ---------------------------------------------------------------------------

    async def create_room(self, room: Room) -> bool:
        return await self._execute(
            "INSERT INTO rooms (key, name, topic, topic_by, topic_ms, created_by, created_ms, "
            "retention_days, skeleton) "
            "SELECT $1, $2, $3, $4, $5::bigint, $6, $7::bigint, $8::integer, $9 "
            "WHERE NOT EXISTS (SELECT 1 FROM rooms WHERE skeleton = $9) "
            "ON CONFLICT DO NOTHING",
            *dataclasses.astuple(room),
            name_skeleton(room.name),
        )

    async def room(self, key: str) -> Room | None:
        row = await self._row(_SELECT_ROOMS + "WHERE key = $1", key)
        return Room(*row) if row else None

    async def room_like(self, name: str) -> Room | None:
        row = await self._row(
            _SELECT_ROOMS + "WHERE skeleton = $1 ORDER BY look_alike LIMIT 1",
            name_skeleton(name),
        )
        return Room(*row) if row else None

    async def rooms(self, after_key: str = "", limit: int | None = None) -> list[Room]:
        rows = await self._rows(
            # The primary key's own order (the database's collation), so a page is an index
            # range scan; the cursor is compared in that same order.
            _SELECT_ROOMS + "WHERE key > $1 ORDER BY key LIMIT $2",
            after_key,
            limit,
        )
        return [Room(*row) for row in rows]

    async def room_count(self) -> int:
        count = await self._run(lambda db: db.fetchval("SELECT COUNT(*) FROM rooms"))
        return int(count)

    async def set_topic(self, key: str, topic: str, by: str, ts: int) -> bool:
        return await self._execute(
            "UPDATE rooms SET topic = $1, topic_by = $2, topic_ms = $3 WHERE key = $4",
            topic,
            by,
            ts,
            key,
        )

    async def set_retention(self, key: str, days: int | None) -> bool:
        return await self._execute("UPDATE rooms SET retention_days = $1 WHERE key = $2", days, key)

    async def add_member(self, room_key: str, account_key: str, *, operator: bool = False) -> None:
        await self._execute(
            "INSERT INTO members VALUES ($1, $2, $3) ON CONFLICT (room_key, account_key) "
            "DO UPDATE SET operator = members.operator OR excluded.operator",
            room_key,
            account_key,
            operator,
        )

    async def remove_member(self, room_key: str, account_key: str) -> bool:
        return await self._execute(
            "DELETE FROM members WHERE room_key = $1 AND account_key = $2", room_key, account_key
        )

    async def memberships(self, account_key: str) -> dict[str, bool]:
        rows = await self._rows(
            "SELECT room_key, operator FROM members WHERE account_key = $1", account_key
        )
        return {row[0]: bool(row[1]) for row in rows}

    async def is_operator(self, room_key: str, account_key: str) -> bool:
        row = await self._row(
            "SELECT operator FROM members WHERE room_key = $1 AND account_key = $2",
            room_key,
            account_key,
        )
        return bool(row and row[0])

    # --- moderation ----------------------------------------------------------------------

    async def add_sanction(self, sanction: Sanction) -> None:
        await self._execute(
            "INSERT INTO sanctions VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (room_key, target_key, kind) DO UPDATE SET until_ms = excluded.until_ms, "
            "by_name = excluded.by_name, reason = excluded.reason, "
            "created_ms = excluded.created_ms",
            sanction.room_key,
            sanction.target_key,
            sanction.kind.value,
            sanction.until_ms,
            sanction.by,
            sanction.reason,
            sanction.created_ms,
        )

    async def remove_sanction(self, room_key: str, target_key: str, kind: SanctionKind) -> bool:
        return await self._execute(
            "DELETE FROM sanctions WHERE room_key = $1 AND target_key = $2 AND kind = $3",
            room_key,
            target_key,
            kind.value,
        )

    async def sanction(
        self, room_key: str, target_key: str, kind: SanctionKind, now_ms: int
    ) -> Sanction | None:
        row = await self._row(
            "SELECT * FROM sanctions WHERE room_key = $1 AND target_key = $2 AND kind = $3 "
            "AND (until_ms IS NULL OR until_ms > $4)",
            room_key,
            target_key,
            kind.value,
            now_ms,
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
        await self._execute(
            "INSERT INTO audit (ts, actor, action, room, target, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            ts,
            actor,
            action,
            room,
            target,
            detail,
        )

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        rows = await self._rows("SELECT * FROM audit ORDER BY id DESC LIMIT $1", limit)
        return [AuditEntry(*row) for row in rows]

    # --- read markers --------------------------------------------------------------------

    async def mark_read(self, account_key: str, conversation: str, seq: int) -> None:
        await self._execute(
            "INSERT INTO read_markers VALUES ($1, $2, $3) ON CONFLICT (account_key, conversation) "
            "DO UPDATE SET seq = GREATEST(read_markers.seq, excluded.seq)",
            account_key,
            conversation,
            seq,
        )

    async def unread(self, account_key: str) -> list[Unread]:
        rows = await self._rows(
            "SELECT c.id, COALESCE(r.seq, 0), c.last_seq FROM conversations c "
            "JOIN (SELECT room_key AS id FROM members WHERE account_key = $1 "
            "      UNION SELECT conversation FROM participants WHERE principal = "
            "        (SELECT id FROM accounts WHERE key = $1)) mine "
            "  ON mine.id = c.id "
            "LEFT JOIN read_markers r ON r.account_key = $1 AND r.conversation = c.id "
            "WHERE c.last_seq > COALESCE(r.seq, 0) ORDER BY c.id",
            account_key,
        )
        return [Unread(*row) for row in rows]

    # --- shared files --------------------------------------------------------------------

    async def add_file(self, record: FileRecord, readers: Sequence[str]) -> None:
        async def add(db: asyncpg.Connection) -> None:
            async with _transaction(db):
                await db.execute(
                    "INSERT INTO files VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    *dataclasses.astuple(record),
                )
                await db.execute(
                    "INSERT INTO file_readers SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                    record.file_id,
                    list(readers),
                )

        await self._run(add)

    async def file(self, file_id: str) -> FileRecord | None:
        row = await self._row(_SELECT_FILES + "WHERE file_id = $1", file_id)
        return FileRecord(*row) if row else None

    async def complete_file(self, file_id: str, expires_ms: int) -> bool:
        return await self._execute(
            "UPDATE files SET complete = TRUE, expires_ms = $1 WHERE file_id = $2",
            expires_ms,
            file_id,
        )

    async def may_read_file(self, file_id: str, principal: str) -> bool:
        row = await self._row(
            "SELECT 1 FROM files WHERE file_id = $1 AND (sender_key = $2 OR EXISTS "
            "(SELECT 1 FROM file_readers WHERE file_id = $1 AND principal = $2))",
            file_id,
            principal,
        )
        return row is not None

    async def readable_file(self, file_id: str, principal: str, now_ms: int) -> FileRecord | None:
        row = await self._row(
            _SELECT_FILES + "WHERE file_id = $1 AND complete AND expires_ms > $3 "  # noqa: S608 (constants)
            "AND (sender_key = $2 OR EXISTS "
            "(SELECT 1 FROM file_readers WHERE file_id = $1 AND principal = $2))",
            file_id,
            principal,
            now_ms,
        )
        return FileRecord(*row) if row else None

    async def readable_files(
        self, principal: str, conversation: str | None, now_ms: int, limit: int
    ) -> list[FileRecord]:
        # Driven by the reader and sender indexes: only this user's files are looked at.
        rows = await self._rows(
            _SELECT_FILES + "WHERE file_id IN "  # noqa: S608 (constants)
            "(SELECT file_id FROM file_readers WHERE principal = $1 UNION ALL "
            " SELECT file_id FROM files WHERE sender_key = $1 AND expires_ms > $2) "
            "AND complete AND expires_ms > $2 AND ($3::text IS NULL OR conversation = $3) "
            "ORDER BY created_ms DESC, file_id LIMIT $4",
            principal,
            now_ms,
            conversation,
            limit,
        )
        return [FileRecord(*row) for row in rows]

    async def pending_upload(
        self, sender_key: str, conversation: str, sha256: str, size: int, name: str, now_ms: int
    ) -> FileRecord | None:
        row = await self._row(
            _SELECT_FILES + "WHERE sender_key = $1 AND expires_ms > $2 AND NOT complete "
            "AND conversation = $3 AND sha256 = $4 AND size = $5 AND name = $6 "
            "ORDER BY created_ms DESC, file_id LIMIT 1",
            sender_key,
            now_ms,
            conversation,
            sha256,
            size,
            name,
        )
        return FileRecord(*row) if row else None

    async def quota_bytes(self, quota_key: str, now_ms: int) -> int:
        total = await self._run(
            lambda db: db.fetchval(
                "SELECT COALESCE(SUM(size), 0) FROM files WHERE quota_key = $1 AND expires_ms > $2",
                quota_key,
                now_ms,
            )
        )
        return int(total)  # SUM of BIGINT is NUMERIC

    async def uploads_in_progress(self, sender_key: str, now_ms: int) -> int:
        count = await self._run(
            lambda db: db.fetchval(
                "SELECT COUNT(*) FROM files WHERE sender_key = $1 AND expires_ms > $2 "
                "AND NOT complete",
                sender_key,
                now_ms,
            )
        )
        return int(count)

    async def delete_file(self, file_id: str) -> FileRecord | None:
        # The readers go with it (ON DELETE CASCADE).
        row = await self._row(
            "DELETE FROM files WHERE file_id = $1 RETURNING file_id, sha256, name, size, "
            "sender_key, sender, conversation, recipient, created_ms, expires_ms, complete, "
            "quota_key",
            file_id,
        )
        return FileRecord(*row) if row else None

    async def expired_files(self, now_ms: int, limit: int) -> list[FileRecord]:
        rows = await self._rows(
            _SELECT_FILES + "WHERE expires_ms <= $1 ORDER BY expires_ms, file_id LIMIT $2",
            now_ms,
            limit,
        )
        return [FileRecord(*row) for row in rows]

    async def blob_in_use(self, sha256: str) -> bool:
        row = await self._row("SELECT 1 FROM files WHERE sha256 = $1 LIMIT 1", sha256)
        return row is not None


def _account(row: Any) -> Account:
    return Account(row[0], row[1], row[2], Role(row[3]), row[4], row[5])


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
        "SELECT conversation, seq, ts, sender, recipient, text, msg_id, sender_key FROM messages "
        "WHERE (conversation, sender_key, msg_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
        [i[0] for i in identities],
        [i[1] for i in identities],
        [i[2] for i in identities],
    )
    return {(row[0], row[7], row[6]): StoredMessage(*row[:7]) for row in rows}


async def _append(
    db: asyncpg.Connection, batch: Sequence[NewMessage], now_ms: int
) -> list[StoredMessage]:
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
        if first == 1 and messages[0].participants:
            await db.executemany(
                "INSERT INTO participants VALUES ($1, $2) ON CONFLICT DO NOTHING",
                [(conversation, key) for key in messages[0].participants],
            )
        for offset, message in enumerate(messages):
            record = StoredMessage(
                conversation, first + offset, now_ms, message.sender, message.to, message.text,
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
