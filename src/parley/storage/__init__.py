"""The record of everything that outlives a connection, behind the :class:`Storage` seam.

The hub never talks to a database directly: messages, accounts, sessions, rooms, sanctions,
the audit log, read markers and shared files' metadata all go through a Storage. Two
implementations share one contract (tests/storage): SQLite, the embedded default, and PostgreSQL
for real deployments. Keys (``*_key``) are the case-folded forms from parley.protocol.names;
names are as people typed them. Times are milliseconds since the Unix epoch.

Rights and data belong to *principals*, never to names: a principal id is 32 lowercase hex
characters (128 random bits), an account's ``id`` or one minted for a guest's login, and it is
never given to anyone else. A name is only how a principal is found and shown.
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
from collections.abc import Sequence
from typing import Protocol

from parley.protocol.errors import ParleyError


class StorageUnavailable(ParleyError):
    """The backend cannot do what was asked right now (database locked or gone, disk full).

    Nothing of the failed call was stored; everything stored before is intact. The caller
    answers the user with an error and may try again later.
    """


def new_principal() -> str:
    """A fresh principal id: 128 random bits as 32 lowercase hex characters."""
    return secrets.token_hex(16)


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
    parley.server.conversations.private_conversation); ``to`` is what recipients see as the
    target.
    ``participants`` are the principal ids of a private conversation's two sides (empty for a
    room): they make its unread counts and offline delivery possible.
    ``(conversation, sender_key, msg_id)`` identifies a message across retries: ``sender_key``
    is the sender's nickname key, so that a guest who reconnects (under a new principal id)
    and resends is recognised; a private conversation's id already names both principals.
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
    """``key`` is the name's key (unique among accounts now); ``id`` is the account's principal
    id, which no later account of the same name ever gets.
    """

    key: str
    name: str
    password_hash: str
    role: Role
    created_ms: int
    id: str = dataclasses.field(default_factory=new_principal)


@dataclasses.dataclass(frozen=True, slots=True)
class Room:
    key: str
    name: str
    topic: str = ""
    topic_by: str = ""
    topic_ms: int = 0
    # The creator's principal id ("" for the rooms the server makes).
    created_by: str = ""
    created_ms: int = 0
    # None: the server's retention setting applies.
    retention_days: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Sanction:
    """A ban or a mute of the principal ``target_key`` in a room; ``until_ms`` None means until
    lifted.
    """

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


# The place before the newest file in the order files are listed (newest first): a
# ``created_ms`` after any real one (it fits a BIGINT), and the least ``file_id``.
FIRST_FILE: tuple[int, str] = (2**62, "")


@dataclasses.dataclass(frozen=True, slots=True)
class FileRecord:
    """A shared file's metadata. The bytes live in the data dir under their SHA-256."""

    file_id: str  # 32 lowercase hex chars (128-bit random), primary key
    sha256: str  # 64 lowercase hex chars: the complete content's hash
    name: str  # display name, already sanitised by the server (<= 255 chars)
    size: int  # bytes
    sender_key: str  # principal id of the sender
    sender: str  # sender's nickname as spelt
    conversation: str  # room key, or private conversation id (same ids messages use)
    to: str  # room name or recipient nickname as addressed
    created_ms: int
    expires_ms: int
    complete: bool = False
    # Whose quota it counts against: the sender's principal id, or for a guest its address's
    # pool ("address:" and the address).
    quota_key: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class FileTicket:
    """What a file token allows: one upload or one download of ``file_id``, until
    ``expires_ms``, for ``holder`` (the principal it was given to).
    """

    upload: bool
    file_id: str
    holder: str
    expires_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class RunStart:
    """What :meth:`Storage.start_run` found: the history epoch to tell clients, and whether it
    was raised just now (the previous run may have lost its last commits).
    """

    history_epoch: int
    raised: bool = False


class ClaimKind(enum.StrEnum):
    """Who holds a file for a while: an upload whose bytes are arriving, or the purge."""

    UPLOAD = "upload"
    DELETE = "delete"


class Storage(Protocol):
    """Every method is one short transaction; every one raises StorageUnavailable (and nothing
    else) when the backend fails. Methods that return bool return False when the thing they
    change does not exist (or, for create_*, already exists).
    """

    # --- messages ------------------------------------------------------------------------

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        """Store ``batch`` atomically, in order; return one StoredMessage per item, in order.

        Returns only once the batch is durably committed, so the caller may acknowledge it. A
        retry of an already stored message is returned with ``duplicate=True`` and stored
        nothing. One transaction per call: the caller batches (group commit).
        """
        ...

    async def append_free(self, batch: Sequence[NewMessage]) -> list[StoredMessage | None]:
        """Like :meth:`append`, for the messages of ``batch`` whose conversations can be
        written without waiting; None for each of the others, which are not stored (their
        conversation is being written by another transaction, or is new): the caller stores
        those with :meth:`append`, which waits. One transaction, so one commit serves every
        conversation that is free. A failure (StorageUnavailable) stored nothing, as for
        :meth:`append`; CommitUncertain covers only the messages of free conversations.
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

    async def create_account(self, account: Account) -> bool:
        """False when the key or the id is taken, or when the name looks like an account's name
        (the same skeleton, see parley.storage.skeletons).
        """
        ...

    async def account(self, key: str) -> Account | None: ...

    async def account_by_id(self, account_id: str) -> Account | None:
        """The account whose principal id is ``account_id``, else None."""
        ...

    async def account_like(self, name: str) -> Account | None:
        """The account whose name looks like ``name`` (the same skeleton; the account named
        ``name`` itself too), else None. The oldest, if names from before skeletons were kept
        look alike. One indexed lookup.
        """
        ...

    async def accounts(self) -> list[Account]:
        """Every account, ordered by key."""
        ...

    async def update_account(
        self, key: str, *, password_hash: str | None = None, role: Role | None = None
    ) -> bool:
        """Change what is given, and record the change (see :meth:`account_changes`)."""
        ...

    async def delete_account(self, key: str) -> bool:
        """Delete the account with its sessions, memberships and read markers, and record the
        change. Its principal id goes with it: a new account of that name gets another.
        """
        ...

    async def account_changes(self, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """``(seq, account key)`` of the changes recorded after ``after_seq`` (passwords, roles,
        deletions, revoked sessions), oldest first, at most ``limit``. Any process may have made
        them: this is how a running server learns what ``parley admin`` did.
        """
        ...

    async def last_account_change(self) -> int:
        """The ``seq`` of the latest recorded change, 0 when none."""
        ...

    async def forget_account_changes(self, before_ms: int) -> int:
        """Delete changes recorded before ``before_ms``; how many."""
        ...

    async def create_session(self, token_hash: str, account_key: str, expires_ms: int) -> None: ...

    async def session_account(self, token_hash: str, now_ms: int) -> str | None:
        """The account key of an unexpired session, else None."""
        ...

    async def revoke_session(self, token_hash: str) -> bool: ...

    async def revoke_sessions(self, account_key: str, *, keep: str | None = None) -> int:
        """Revoke every session of an account except the one hashed ``keep``, and record the
        change; how many.
        """
        ...

    # --- login throttling ----------------------------------------------------------------

    async def count_attempts(
        self, keys: Sequence[str], now_ms: int, forget_before_ms: int
    ) -> list[tuple[int, int]]:
        """Count one login attempt under each of ``keys``, in one transaction, atomically
        (calls from any number of tasks or processes each see their own counts). A count last
        touched before ``forget_before_ms`` starts again from zero. Returns, per key, the count
        with this attempt and when the attempt before it was made (0 when none).
        """
        ...

    async def refund_attempts(self, keys: Sequence[str]) -> None:
        """Take one attempt back from each of ``keys`` (a check that succeeded)."""
        ...

    async def forget_attempts(self, before_ms: int) -> int:
        """Delete counts last touched before ``before_ms``; how many."""
        ...

    # --- limits per window (registrations, rooms created) ---------------------------------

    async def take_window_slots(
        self, limits: Sequence[tuple[str, int]], now_ms: int, since_ms: int
    ) -> bool:
        """Count one event at ``now_ms`` under each key of ``limits`` (key, most allowed)
        when every key has had fewer than its most since ``since_ms``: True. Otherwise count
        none: False. Atomic: calls from any number of tasks or processes are counted one
        after another, so a burst of them never gets more than the limits between them.
        """
        ...

    async def forget_window_slots(self, before_ms: int) -> int:
        """Delete events counted before ``before_ms``; how many."""
        ...

    # --- rooms ---------------------------------------------------------------------------

    async def create_room(self, room: Room) -> bool:
        """False when the key is taken, or when the name looks like a room's name."""
        ...

    async def room(self, key: str) -> Room | None: ...

    async def room_like(self, name: str) -> Room | None:
        """The room whose name looks like ``name`` (as account_like), else None."""
        ...

    async def rooms(self, after_key: str = "", limit: int | None = None) -> list[Room]:
        """Rooms with a key after ``after_key``, ordered by key, at most ``limit`` (None: all).
        One index range scan: a page costs the same however many rooms there are.
        """
        ...

    async def room_count(self) -> int: ...

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

    async def unread(self, account_key: str, after: str, limit: int) -> list[Unread]:
        """Conversations with messages after the account's read marker: the rooms it is a
        member of and the private conversations its principal id takes part in. Ordered by
        conversation, the first ``limit`` with an id after ``after`` ("" from the first).
        """
        ...

    # --- shared files --------------------------------------------------------------------

    async def add_file(self, record: FileRecord, readers: Sequence[str]) -> None:
        """Store ``record`` with its readers: the principal ids besides the sender that may list
        and download it (the private peer, or the room's members at share time). Duplicate
        readers are ignored. A ``file_id`` already stored raises StorageUnavailable.
        """
        ...

    async def file(self, file_id: str) -> FileRecord | None: ...

    async def complete_file(self, file_id: str, expires_ms: int) -> bool:
        """Mark the file complete (all its bytes are in) and set its expiry."""
        ...

    async def may_read_file(self, file_id: str, principal: str) -> bool:
        """Whether ``principal`` is the file's sender or one of its readers, complete or not."""
        ...

    async def readable_file(self, file_id: str, principal: str, now_ms: int) -> FileRecord | None:
        """The file, if it is complete, expires after ``now_ms`` and ``principal`` is its
        sender or one of its readers; else None. One read.
        """
        ...

    async def readable_files(
        self,
        principal: str,
        conversation: str | None,
        now_ms: int,
        limit: int,
        after: tuple[int, str] = FIRST_FILE,
    ) -> list[FileRecord]:
        """Complete, unexpired files ``principal`` may read, only those of ``conversation``
        unless it is None; newest first (``created_ms`` descending, then ``file_id``), at most
        ``limit``, only those after ``after`` in that order (the ``(created_ms, file_id)`` of
        the last one of the page before; FIRST_FILE from the first).
        """
        ...

    async def pending_upload(
        self, sender_key: str, conversation: str, sha256: str, size: int, name: str, now_ms: int
    ) -> FileRecord | None:
        """The newest incomplete, unexpired file with exactly these fields: an interrupted
        upload the sender may resume.
        """
        ...

    async def quota_bytes(self, quota_key: str, now_ms: int) -> int:
        """Total size of the unexpired files, complete or not, counted against ``quota_key``."""
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

    # --- file tokens and claims ----------------------------------------------------------

    async def add_ticket(
        self, token_hash: str, ticket: FileTicket, most_held: int, now_ms: int
    ) -> bool:
        """Store a token (by its hash) unless ``ticket.holder`` already holds ``most_held``
        unexpired ones; whether it was stored. One write, the count on an index of the holder
        (O(tokens held)). Two nodes adding at the same instant may each pass the count once.
        """
        ...

    async def tickets_held(self, holder: str, now_ms: int) -> int:
        """How many unexpired, unused tokens ``holder`` has. One indexed read."""
        ...

    async def ticket(self, token_hash: str, now_ms: int) -> FileTicket | None:
        """The token's ticket, left in place; None when it is unknown, used or expired. One
        read by the primary key.
        """
        ...

    async def take_ticket(self, token_hash: str, now_ms: int) -> FileTicket | None:
        """The token's ticket, deleted as it is read (whichever node asks, once); None when
        it is unknown, used or expired. One write by the primary key.
        """
        ...

    async def forget_tickets(self, now_ms: int) -> int:
        """Delete every token expired by ``now_ms``; how many. An index range on expiry."""
        ...

    async def claim_file(
        self, file_id: str, kind: ClaimKind, now_ms: int, until_ms: int
    ) -> ClaimKind | None:
        """Hold ``file_id`` for ``kind`` until ``until_ms``, unless an unexpired claim holds it
        already: None when it is now held, else the kind of the claim in force.
        """
        ...

    async def renew_claim(self, file_id: str, kind: ClaimKind, until_ms: int) -> bool:
        """Extend a claim still held; whether it was."""
        ...

    async def release_claim(self, file_id: str, kind: ClaimKind) -> None:
        """Let go of a claim of ``kind`` (another kind's claim is left alone)."""
        ...

    # --- the history epoch ----------------------------------------------------------------

    async def start_run(self) -> RunStart:
        """Record that a server now runs on this database, before it serves anyone, and return
        the history epoch it tells clients. When the previous run did not stop cleanly and its
        commits could have been lost with it (SQLite with synchronous "normal": a power cut or
        an operating system crash takes back the last commits, and their seqs are then given to
        other messages), the epoch is first raised by one. On the disk when it returns, whatever
        the commit level; elsewhere (PostgreSQL, SQLite with "full") the epoch never changes.
        """
        ...

    async def end_run(self) -> None:
        """Record that the run stopped cleanly, after its last write: everything it committed
        is then on the disk, and the next :meth:`start_run` keeps the epoch.
        """
        ...

    async def close(self) -> None:
        """Finish what is in flight and release the backend. Unusable afterwards."""
        ...
