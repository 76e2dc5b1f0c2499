"""The record of everything that outlives a connection, behind the :class:`Storage` seam.

The hub never talks to a database directly: messages, accounts, sessions, rooms, sanctions,
the audit log, read markers and shared files' metadata all go through a Storage. Two
implementations share one contract (tests/storage): SQLite, the embedded default, and PostgreSQL
for real deployments. Keys (``*_key``) are the case-folded forms from parley.protocol.names;
names are as people typed them. Times are milliseconds since the Unix epoch.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Protocol

from parley.protocol.errors import ParleyError


class StorageUnavailable(ParleyError):
    """The backend cannot do what was asked right now (database locked or gone, disk full).

    Nothing of the failed call was stored; everything stored before is intact. The caller
    answers the user with an error and may try again later.
    """


class CommitUncertain(StorageUnavailable):
    """The connection was lost while a batch was being committed, and whether the commit
    happened could not be found out either: some or all of the batch may be stored. A retry
    with the same ``msg_id`` settles it (it comes back ``duplicate`` if it was stored).
    """


class Role(enum.StrEnum):
    ADMIN = "admin"
    MODERATOR = "moderator"
    USER = "user"


class SanctionKind(enum.StrEnum):
    BAN = "ban"
    MUTE = "mute"


@dataclasses.dataclass(frozen=True, slots=True)
class NewMessage:
    """A message the hub wants stored.

    ``conversation`` is a room key, or a private conversation's id (see
    parley.server.hub.private_conversation); ``to`` is what recipients see as the target.
    ``participants`` are the nickname keys of a private conversation's two users (empty for a
    room): they make its unread counts and offline delivery possible.
    ``(conversation, sender_key, msg_id)`` identifies a message across retries.
    """

    conversation: str
    sender: str
    sender_key: str
    to: str
    text: str
    msg_id: str
    participants: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as recorded: ``seq`` is 1, 2, 3... within its conversation, without gaps;
    ``duplicate`` says the same message had already been stored, in which case the other fields
    are the original's.
    """

    conversation: str
    seq: int
    ts: int
    sender: str
    to: str
    text: str
    msg_id: str
    duplicate: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    key: str
    name: str
    password_hash: str
    role: Role
    created_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Room:
    key: str
    name: str
    topic: str = ""
    topic_by: str = ""
    topic_ms: int = 0
    created_by: str = ""
    created_ms: int = 0
    # None: the server's retention setting applies.
    retention_days: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Sanction:
    """A ban or a mute of ``target_key`` in a room; ``until_ms`` None means until lifted."""

    room_key: str
    target_key: str
    kind: SanctionKind
    until_ms: int | None
    by: str
    reason: str
    created_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """One moderation or administration action. ``id`` grows with every entry."""

    id: int
    ts: int
    actor: str
    action: str
    room: str
    target: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class Unread:
    """A conversation with messages after the account's read marker."""

    conversation: str
    read_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        return self.last_seq - self.read_seq


@dataclasses.dataclass(frozen=True, slots=True)
class FileRecord:
    """A shared file's metadata. The bytes live in the data dir under their SHA-256."""

    file_id: str  # 32 lowercase hex chars (128-bit random), primary key
    sha256: str  # 64 lowercase hex chars: the complete content's hash
    name: str  # display name, already sanitised by the server (<= 255 chars)
    size: int  # bytes
    sender_key: str  # nickname key of the sender
    sender: str  # sender's nickname as spelt
    conversation: str  # room key, or private conversation id (same ids messages use)
    to: str  # room name or recipient nickname as addressed
    created_ms: int
    expires_ms: int
    complete: bool = False


class Storage(Protocol):
    """Every method is one short transaction; every one raises StorageUnavailable (and nothing
    else) when the backend fails. Methods that return bool return False when the thing they
    change does not exist (or, for create_*, already exists).
    """

    # True when the backend runs one write transaction at a time whatever the caller does
    # (SQLite): the hub then stores every conversation's waiting messages in one transaction,
    # rather than in separate ones that would only queue behind each other.
    serial_writes: bool

    # --- messages ------------------------------------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        """Store ``batch`` atomically, in order; return one StoredMessage per item, in order.

        Returns only once the batch is durably committed, so the caller may acknowledge it. A
        retry of an already stored message is returned with ``duplicate=True`` and stored
        nothing. One transaction per call: the caller batches (group commit).
        """
        ...

    async def history(
        self,
        conversation: str,
        *,
        limit: int,
        after_seq: int | None = None,
        before_seq: int | None = None,
    ) -> list[StoredMessage]:
        """Messages of one conversation in ascending ``seq`` order, at most ``limit``.

        With ``after_seq``: the first ones after it (resuming). Otherwise the last ones before
        ``before_seq`` (paging back), or the latest ones when it is None.
        """
        ...

    async def purge(self, now_ms: int, default_retention_days: int | None) -> int:
        """Delete messages older than their room's retention_days, or the default for
        conversations without one (None: keep forever). Sequence numbers are never reused.
        Returns how many were deleted.
        """
        ...

    # --- accounts and sessions -----------------------------------------------------------

    async def create_account(self, account: Account) -> bool: ...

    async def account(self, key: str) -> Account | None: ...

    async def accounts(self) -> list[Account]:
        """Every account, ordered by key."""
        ...

    async def update_account(
        self, key: str, *, password_hash: str | None = None, role: Role | None = None
    ) -> bool: ...

    async def delete_account(self, key: str) -> bool:
        """Delete the account with its sessions, memberships and read markers."""
        ...

    async def create_session(self, token_hash: str, account_key: str, expires_ms: int) -> None: ...

    async def session_account(self, token_hash: str, now_ms: int) -> str | None:
        """The account key of an unexpired session, else None."""
        ...

    async def revoke_session(self, token_hash: str) -> bool: ...

    async def revoke_sessions(self, account_key: str, *, keep: str | None = None) -> int:
        """Revoke every session of an account except the one hashed ``keep``; how many."""
        ...

    # --- rooms ---------------------------------------------------------------------------

    async def create_room(self, room: Room) -> bool: ...

    async def room(self, key: str) -> Room | None: ...

    async def rooms(self) -> list[Room]:
        """Every room, ordered by key."""
        ...

    async def set_topic(self, key: str, topic: str, by: str, ts: int) -> bool: ...

    async def set_retention(self, key: str, days: int | None) -> bool: ...

    async def add_member(self, room_key: str, account_key: str, *, operator: bool = False) -> None:
        """Remember that an account is in a room (kept across its connections). Adding an
        existing member changes nothing, except that ``operator=True`` makes it an operator.
        """
        ...

    async def remove_member(self, room_key: str, account_key: str) -> bool: ...

    async def memberships(self, account_key: str) -> dict[str, bool]:
        """Room key -> whether the account is an operator there, for every room it is in."""
        ...

    async def is_operator(self, room_key: str, account_key: str) -> bool: ...

    # --- moderation ----------------------------------------------------------------------

    async def add_sanction(self, sanction: Sanction) -> None:
        """Ban or mute; replaces an earlier sanction of the same kind on the same target."""
        ...

    async def remove_sanction(self, room_key: str, target_key: str, kind: SanctionKind) -> bool: ...

    async def sanction(
        self, room_key: str, target_key: str, kind: SanctionKind, now_ms: int
    ) -> Sanction | None:
        """The sanction in force (not expired at ``now_ms``), else None."""
        ...

    async def record_audit(
        self,
        *,
        ts: int,
        actor: str,
        action: str,
        room: str = "",
        target: str = "",
        detail: str = "",
    ) -> None: ...

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        """The latest ``limit`` entries, newest first."""
        ...

    # --- read markers --------------------------------------------------------------------

    async def mark_read(self, account_key: str, conversation: str, seq: int) -> None:
        """Move the account's read marker forward to ``seq`` (never back)."""
        ...

    async def unread(self, account_key: str) -> list[Unread]:
        """Conversations with messages after the account's read marker: the rooms it is a
        member of and the private conversations it takes part in. Ordered by conversation.
        """
        ...

    # --- shared files --------------------------------------------------------------------

    async def add_file(self, record: FileRecord, readers: Sequence[str]) -> None:
        """Store ``record`` with its readers: the nickname keys besides the sender that may list
        and download it (the private peer, or the room's members at share time). Duplicate
        readers are ignored. A ``file_id`` already stored raises StorageUnavailable.
        """
        ...

    async def file(self, file_id: str) -> FileRecord | None: ...

    async def complete_file(self, file_id: str, expires_ms: int) -> bool:
        """Mark the file complete (all its bytes are in) and set its expiry."""
        ...

    async def may_read_file(self, file_id: str, nick_key: str) -> bool:
        """Whether ``nick_key`` is the file's sender or one of its readers, complete or not."""
        ...

    async def readable_files(
        self, nick_key: str, conversation: str | None, now_ms: int, limit: int
    ) -> list[FileRecord]:
        """Complete, unexpired files ``nick_key`` may read, only those of ``conversation``
        unless it is None; newest first (``created_ms`` descending, then ``file_id``), at most
        ``limit``.
        """
        ...

    async def pending_upload(
        self, sender_key: str, conversation: str, sha256: str, size: int, name: str, now_ms: int
    ) -> FileRecord | None:
        """The newest incomplete, unexpired file with exactly these fields: an interrupted
        upload the sender may resume.
        """
        ...

    async def sender_bytes(self, sender_key: str, now_ms: int) -> int:
        """Total size of the sender's unexpired files, complete or not (the quota)."""
        ...

    async def uploads_in_progress(self, sender_key: str, now_ms: int) -> int:
        """How many of the sender's files are incomplete and unexpired."""
        ...

    async def delete_file(self, file_id: str) -> FileRecord | None:
        """Delete the file's record and its readers; what was deleted, or None."""
        ...

    async def expired_files(self, now_ms: int, limit: int) -> list[FileRecord]:
        """Files, complete or not, with ``expires_ms <= now_ms``: the longest expired first
        (``expires_ms``, then ``file_id``), at most ``limit``.
        """
        ...

    async def blob_in_use(self, sha256: str) -> bool:
        """Whether any file, complete or not, still has this content (identical uploads share
        one blob on disk, which may go only when the last of them does).
        """
        ...

    async def close(self) -> None:
        """Finish what is in flight and release the backend. Unusable afterwards."""
        ...
