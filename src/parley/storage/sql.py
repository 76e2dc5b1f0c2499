"""What the SQL backends share: every Storage method that is one statement, written once over
four primitives each backend provides (run a query for rows, for one row, a change, a change
per row of arguments). Transactions of several statements, connections, timeouts and the
migrations stay in the backends (sqlite.py, postgres.py).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from parley.clock import Clock
from parley.protocol.names import name_skeleton
from parley.storage import (
    FIRST_FILE,
    Account,
    AuditEntry,
    ClaimKind,
    FileRecord,
    FileTicket,
    Room,
    Sanction,
    SanctionKind,
    StoredMessage,
    Unread,
    records,
)
from parley.storage.dialect import Dialect
from parley.storage.queries import Queries
from parley.storage.records import Row

DAY_MS = 86_400_000
# history()'s "before" when none is given: after every seq.
_END = 2**63 - 1


class SqlStorage(abc.ABC):
    """The Storage methods both backends run the same way."""

    _dialect: Dialect
    _q: Queries
    _clock: Clock

    @abc.abstractmethod
    async def _rows(self, sql: str, *args: Any) -> list[Row]:
        """The rows of one query (a read)."""

    @abc.abstractmethod
    async def _row(self, sql: str, *args: Any) -> Row | None:
        """The first row of one query (a read), or None."""

    @abc.abstractmethod
    async def _change(self, sql: str, *args: Any, durable: bool = True) -> int:
        """Run one changing statement in a transaction of its own; how many rows it changed.
        Not ``durable``: a crash (power loss) may undo it, for rows that are worth nothing
        after one (file tokens, claims), if the backend can make the commit cheaper so.
        """

    @abc.abstractmethod
    async def _change_many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run one changing statement once per row of arguments, in one transaction."""

    @abc.abstractmethod
    async def _change_row(self, sql: str, *args: Any, durable: bool = True) -> Row | None:
        """Run one changing statement (with RETURNING) in a transaction of its own; the first
        row it returned, or None. ``durable`` as for :meth:`_change`.
        """

    # --- messages ------------------------------------------------------------------------

    async def history(
        self,
        conversation: str,
        *,
        limit: int,
        after_seq: int | None = None,
        before_seq: int | None = None,
    ) -> list[StoredMessage]:
        if after_seq is not None:
            rows = await self._rows(self._q.messages_after, conversation, after_seq, limit)
            return [records.message(row) for row in rows]
        before = before_seq if before_seq is not None else _END
        rows = await self._rows(self._q.messages_before, conversation, before, limit)
        return [records.message(row) for row in reversed(rows)]

    # --- accounts and sessions -----------------------------------------------------------

    async def create_account(self, account: Account) -> bool:
        return bool(
            await self._change(
                self._q.create_account,
                account.key,
                account.name,
                account.password_hash,
                account.role.value,
                account.created_ms,
                account.id,
                name_skeleton(account.name),
            )
        )

    async def account(self, key: str) -> Account | None:
        row = await self._row(self._q.account, key)
        return records.account(row) if row else None

    async def account_by_id(self, account_id: str) -> Account | None:
        row = await self._row(self._q.account_by_id, account_id)
        return records.account(row) if row else None

    async def account_like(self, name: str) -> Account | None:
        row = await self._row(self._q.account_like, name_skeleton(name))
        return records.account(row) if row else None

    async def accounts(self) -> list[Account]:
        return [records.account(row) for row in await self._rows(self._q.accounts)]

    async def account_changes(self, after_seq: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._rows(self._q.account_changes, after_seq, limit)
        return [(int(row["seq"]), str(row["account_key"])) for row in rows]

    async def last_account_change(self) -> int:
        row = await self._row(self._q.last_account_change)
        return int(row["seq"]) if row else 0

    async def forget_account_changes(self, before_ms: int) -> int:
        return await self._change(self._q.forget_account_changes, before_ms)

    async def create_session(self, token_hash: str, account_key: str, expires_ms: int) -> None:
        await self._change(self._q.create_session, token_hash, account_key, expires_ms)

    async def session_account(self, token_hash: str, now_ms: int) -> str | None:
        row = await self._row(self._q.session_account, token_hash, now_ms)
        return str(row["account_key"]) if row else None

    async def revoke_session(self, token_hash: str) -> bool:
        return bool(await self._change(self._q.revoke_session, token_hash))

    # --- login throttling ----------------------------------------------------------------

    async def refund_attempts(self, keys: Sequence[str]) -> None:
        await self._change_many(self._q.refund_attempt, [(key,) for key in keys])

    async def forget_attempts(self, before_ms: int) -> int:
        return await self._change(self._q.forget_attempts, before_ms)

    async def forget_window_slots(self, before_ms: int) -> int:
        return await self._change(self._q.forget_window_slots, before_ms)

    # --- file tokens and claims ----------------------------------------------------------

    async def add_ticket(
        self, token_hash: str, ticket: FileTicket, most_held: int, now_ms: int
    ) -> bool:
        added = await self._change(
            self._q.insert_ticket,
            token_hash,
            ticket.upload,
            ticket.file_id,
            ticket.holder,
            ticket.expires_ms,
            now_ms,
            most_held,
            durable=False,
        )
        return bool(added)

    async def tickets_held(self, holder: str, now_ms: int) -> int:
        row = await self._row(self._q.tickets_held, holder, now_ms)
        return int(row["count"]) if row else 0

    async def ticket(self, token_hash: str, now_ms: int) -> FileTicket | None:
        row = await self._row(self._q.ticket, token_hash, now_ms)
        if row is None:
            return None
        return FileTicket(
            bool(row["upload"]), str(row["file_id"]), str(row["holder"]), int(row["expires_ms"])
        )

    async def take_ticket(self, token_hash: str, now_ms: int) -> FileTicket | None:
        row = await self._change_row(self._q.take_ticket, token_hash, durable=False)
        if row is None or int(row["expires_ms"]) <= now_ms:
            return None
        return FileTicket(
            bool(row["upload"]), str(row["file_id"]), str(row["holder"]), int(row["expires_ms"])
        )

    async def forget_tickets(self, now_ms: int) -> int:
        return await self._change(self._q.forget_tickets, now_ms, durable=False)

    async def claim_file(
        self, file_id: str, kind: ClaimKind, now_ms: int, until_ms: int
    ) -> ClaimKind | None:
        claimed = await self._change(
            self._q.claim_file, file_id, kind.value, until_ms, now_ms, durable=False
        )
        if claimed:
            return None
        row = await self._row(self._q.file_claim, file_id, now_ms)
        # Released between the two reads: say it is held, and the caller tries again later.
        return ClaimKind(row["kind"]) if row else kind

    async def renew_claim(self, file_id: str, kind: ClaimKind, until_ms: int) -> bool:
        renewed = await self._change(
            self._q.renew_claim, until_ms, file_id, kind.value, durable=False
        )
        return bool(renewed)

    async def release_claim(self, file_id: str, kind: ClaimKind) -> None:
        await self._change(self._q.release_claim, file_id, kind.value, durable=False)

    # --- rooms ---------------------------------------------------------------------------

    async def create_room(self, room: Room) -> bool:
        return bool(
            await self._change(
                self._q.create_room,
                room.key,
                room.name,
                room.topic,
                room.topic_by,
                room.topic_ms,
                room.created_by,
                room.created_ms,
                room.retention_days,
                name_skeleton(room.name),
            )
        )

    async def room(self, key: str) -> Room | None:
        row = await self._row(self._q.room, key)
        return records.room(row) if row else None

    async def room_like(self, name: str) -> Room | None:
        row = await self._row(self._q.room_like, name_skeleton(name))
        return records.room(row) if row else None

    async def rooms(self, after_key: str = "", limit: int | None = None) -> list[Room]:
        page = self._dialect.no_limit if limit is None else limit
        return [records.room(row) for row in await self._rows(self._q.rooms, after_key, page)]

    async def room_count(self) -> int:
        row = await self._row(self._q.room_count)
        return int(row["count"]) if row else 0

    async def set_topic(self, key: str, topic: str, by: str, ts: int) -> bool:
        return bool(await self._change(self._q.set_topic, topic, by, ts, key))

    async def set_retention(self, key: str, days: int | None) -> bool:
        return bool(await self._change(self._q.set_retention, days, key))

    async def add_member(self, room_key: str, account_key: str, *, operator: bool = False) -> None:
        await self._change(self._q.add_member, room_key, account_key, operator)

    async def remove_member(self, room_key: str, account_key: str) -> bool:
        return bool(await self._change(self._q.remove_member, room_key, account_key))

    async def memberships(self, account_key: str) -> dict[str, bool]:
        rows = await self._rows(self._q.memberships, account_key)
        return {row["room_key"]: bool(row["operator"]) for row in rows}

    async def is_operator(self, room_key: str, account_key: str) -> bool:
        row = await self._row(self._q.is_operator, room_key, account_key)
        return bool(row and row["operator"])

    # --- moderation ----------------------------------------------------------------------

    async def add_sanction(self, sanction: Sanction) -> None:
        await self._change(
            self._q.add_sanction, sanction.room_key, sanction.target_key, sanction.kind.value,
            sanction.until_ms, sanction.by, sanction.reason, sanction.created_ms,
        )  # fmt: skip

    async def remove_sanction(self, room_key: str, target_key: str, kind: SanctionKind) -> bool:
        return bool(await self._change(self._q.remove_sanction, room_key, target_key, kind.value))

    async def sanction(
        self, room_key: str, target_key: str, kind: SanctionKind, now_ms: int
    ) -> Sanction | None:
        row = await self._row(self._q.sanction, room_key, target_key, kind.value, now_ms)
        return records.sanction(row) if row else None

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
        await self._change(self._q.record_audit, ts, actor, action, room, target, detail)

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        return [records.audit_entry(row) for row in await self._rows(self._q.audit_log, limit)]

    # --- read markers --------------------------------------------------------------------

    async def mark_read(self, account_key: str, conversation: str, seq: int) -> None:
        await self._change(self._q.mark_read, account_key, conversation, seq)

    async def unread(self, account_key: str, after: str, limit: int) -> list[Unread]:
        rows = await self._rows(self._q.unread, account_key, after, limit)
        return [records.unread(row) for row in rows]

    # --- shared files --------------------------------------------------------------------

    async def file(self, file_id: str) -> FileRecord | None:
        row = await self._row(self._q.file, file_id)
        return records.file(row) if row else None

    async def complete_file(self, file_id: str, expires_ms: int) -> bool:
        return bool(await self._change(self._q.complete_file, expires_ms, file_id))

    async def may_read_file(self, file_id: str, principal: str) -> bool:
        return await self._row(self._q.may_read_file, file_id, principal) is not None

    async def readable_file(self, file_id: str, principal: str, now_ms: int) -> FileRecord | None:
        row = await self._row(self._q.readable_file, file_id, principal, now_ms)
        return records.file(row) if row else None

    async def readable_files(
        self,
        principal: str,
        conversation: str | None,
        now_ms: int,
        limit: int,
        after: tuple[int, str] = FIRST_FILE,
    ) -> list[FileRecord]:
        created_ms, file_id = after
        rows = await self._rows(
            self._q.readable_files, principal, now_ms, conversation, limit, created_ms, file_id
        )
        return [records.file(row) for row in rows]

    async def pending_upload(
        self, sender_key: str, conversation: str, sha256: str, size: int, name: str, now_ms: int
    ) -> FileRecord | None:
        row = await self._row(
            self._q.pending_upload, sender_key, now_ms, conversation, sha256, size, name
        )
        return records.file(row) if row else None

    async def quota_bytes(self, quota_key: str, now_ms: int) -> int:
        row = await self._row(self._q.quota_bytes, quota_key, now_ms)
        return int(row["total"]) if row else 0  # PostgreSQL's SUM of BIGINT is NUMERIC

    async def uploads_in_progress(self, sender_key: str, now_ms: int) -> int:
        row = await self._row(self._q.uploads_in_progress, sender_key, now_ms)
        return int(row["count"]) if row else 0

    async def expired_files(self, now_ms: int, limit: int) -> list[FileRecord]:
        rows = await self._rows(self._q.expired_files, now_ms, limit)
        return [records.file(row) for row in rows]

    async def blob_in_use(self, sha256: str) -> bool:
        return await self._row(self._q.blob_in_use, sha256) is not None
