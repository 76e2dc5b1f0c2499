"""File sharing's rules, on the chat connection: who may share what with whom, quotas, the
one-time tokens that let a file connection (server/transfer.py) carry the bytes, listing,
deleting, and the purge of expired files.

A file may be read by its sender and by those it was shared with: the other user of a private
conversation, or the room's members when it was shared and the accounts that are members of
the room now (as its history is theirs), each by principal id (never by name: whoever takes a
guest's name later gets none of its files). Anyone else asking for it is told
it does not exist. An account's files count against its own quota; guests' against one pool
per address group, so new guest names make no more room. Ids are 128 random bits; tokens are
192 random bits, good for one connection within TOKEN_SECONDS.

Everything here runs on the chat loop, the file connections' thread included: it calls in
through that loop (TransferServer._on_chat_loop). The tokens and the claims on files live in
storage, so that every node sharing the database sees them: a token given on one node opens a
file connection on another. A claim makes an upload and the purge exclusive, whichever nodes
they run on: the purge never deletes a file whose bytes are arriving, and an upload never starts
on a file being deleted. A claim is a lease: an upload renews its own while bytes arrive, and
one held by a node that died runs out by itself.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import msgspec

from parley.config import ServerConfig
from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.filenames import clean_file_name
from parley.protocol.files import FileNotice, human_size, notice_text
from parley.protocol.messages import (
    DeleteFile,
    DownloadTicket,
    FileInfo,
    FileList,
    GetFile,
    ListFiles,
    ShareFile,
    UploadSlot,
)
from parley.protocol.names import is_room
from parley.server.address_group import address_group
from parley.server.blobs import BlobStore
from parley.server.hub import Hub, conversation_principals
from parley.server.rooms import Peer
from parley.server.tasks import TaskSet
from parley.server.tickets import Ticket, TicketBook
from parley.storage import (
    FIRST_FILE,
    ClaimKind,
    FileRecord,
    NewMessage,
    Storage,
    StorageUnavailable,
)

log = logging.getLogger("parley.files")

TOKEN_SECONDS = 300.0
_DAY_MS = 86_400_000
# A ``files`` page stays under this, however long the names in it (see MAX_LIST_REPLY_BYTES).
_FILES_REPLY_BYTES = limits.MAX_LIST_REPLY_BYTES - 1024
# An upload renews its claim at most this often while bytes arrive...
CLAIM_RENEW_SECONDS = 10.0
# ...and the purge's claim on one file lasts this long: far longer than deleting one takes.
_DELETE_CLAIM_SECONDS = 60.0


def upload_claim_seconds(config: ServerConfig) -> float:
    """How long an upload's claim lasts unless renewed: past the stall that closes a silent
    connection, plus a renewal's interval, with room to spare. A node that dies holding one
    lets the upload resume elsewhere after this.
    """
    return 2 * config.upload_stall_seconds + 3 * CLAIM_RENEW_SECONDS


class FileService:
    def __init__(self, storage: Storage, hub: Hub, config: ServerConfig, blobs: BlobStore) -> None:
        self.storage = storage
        self.hub = hub
        self.clock = hub.clock
        self.config = config
        self.blobs = blobs
        # The file connections' port, known once they listen.
        self.port = 0
        self.tickets = TicketBook(storage, TOKEN_SECONDS, hub.clock)
        # Claims being given back once an upload connection has ended.
        self._claim_work = TaskSet("parley-file-claims")

    # --- requests on the chat connection -------------------------------------------------

    async def share(self, peer: Peer, request: ShareFile) -> UploadSlot:
        name = clean_file_name(request.name)
        if request.size > self.config.max_file_bytes:
            raise PeerError(
                ErrorCode.FILE_TOO_LARGE,
                f"Files are at most {human_size(self.config.max_file_bytes)} on this server.",
            )
        if not peer.account and not self.config.allow_guest_files:
            raise PeerError(
                ErrorCode.ACCOUNT_REQUIRED,
                "Guests cannot share files on this server; /register to get an account.",
            )
        await self.check_tokens_held(peer)
        conversation, shown, readers = await self.hub.file_audience(peer, request.to)
        now = self.clock.now_ms()
        pending = await self.storage.pending_upload(
            peer.principal, conversation, request.sha256, request.size, name, now
        )
        if pending is not None:
            record = pending  # an interrupted upload of the same file: carry on
        else:
            await self._check_allowance(peer, request.size, now)
            record = FileRecord(
                file_id=secrets.token_hex(16),
                sha256=request.sha256,
                name=name,
                size=request.size,
                sender_key=peer.principal,
                sender=peer.nick,
                conversation=conversation,
                to=shown,
                created_ms=now,
                # Until it is complete: an upload that never finishes is freed after this.
                expires_ms=now + int(self.config.unfinished_upload_seconds * 1000),
                quota_key=_quota_key(peer),
            )
            await self.storage.add_file(record, readers)
        token = await self._issue(peer, upload=True, file_id=record.file_id)
        return UploadSlot(
            id=request.id,
            file_id=record.file_id,
            token=token,
            port=self.port,
            offset=self.blobs.received(record.file_id),
            name=name,
        )

    async def _check_allowance(self, peer: Peer, size: int, now: int) -> None:
        if await self.storage.uploads_in_progress(peer.principal, now) >= (
            self.config.max_uploads_in_progress
        ):
            raise PeerError(
                ErrorCode.TOO_MANY_UPLOADS,
                f"At most {self.config.max_uploads_in_progress} uploads at a time; "
                "finish or cancel one first.",
            )
        used = await self.storage.quota_bytes(_quota_key(peer), now)
        if peer.account:
            quota, whose = self.config.file_quota_bytes, "Your files"
        else:
            quota = self.config.guest_file_quota_bytes_per_address
            whose = "Files of the guests at your address"
        if used + size > quota:
            raise PeerError(
                ErrorCode.QUOTA_EXCEEDED,
                f"{whose} would take {human_size(used + size)}; the quota is "
                f"{human_size(quota)}. Delete some with /rmfile.",
            )

    def refuse_known_hoarder(self, peer: Peer) -> None:
        """Refuse another token to ``peer`` when it was found at its cap a moment ago, from
        memory (before any task or storage read: a hoarder's refusals cost next to nothing).
        """
        if self.tickets.known_full(peer.principal):
            raise self._too_many_tokens()

    async def check_tokens_held(self, peer: Peer) -> None:
        """Refuse another token to ``peer`` while it holds its most unused, on any node
        (before the storage work of a share: one indexed read).
        """
        most = self.config.max_tokens_per_principal
        if await self.tickets.held(peer.principal, most) >= most:
            raise self._too_many_tokens()

    async def _issue(self, peer: Peer, *, upload: bool, file_id: str) -> str:
        """A token for ``peer``, within its cap (checked in the same write)."""
        token = await self.tickets.issue(
            upload=upload,
            file_id=file_id,
            holder=peer.principal,
            most_held=self.config.max_tokens_per_principal,
        )
        if token is None:
            raise self._too_many_tokens()
        return token

    def _too_many_tokens(self) -> PeerError:
        most = self.config.max_tokens_per_principal
        return PeerError(
            ErrorCode.TOO_MANY_TOKENS,
            f"You hold {most} unused file tokens, the most allowed "
            "(max_tokens_per_principal); use them, or wait: each expires "
            f"{TOKEN_SECONDS / 60:.0f} minutes after it was given.",
        )

    async def get(self, peer: Peer, request: GetFile) -> DownloadTicket:
        record = await self._readable(peer, request.file_id)
        return DownloadTicket(
            id=request.id,
            file_id=record.file_id,
            token=await self._issue(peer, upload=False, file_id=record.file_id),
            port=self.port,
            name=record.name,
            size=record.size,
            sha256=record.sha256,
            sender=record.sender,
        )

    async def list(self, peer: Peer, request: ListFiles) -> FileList:
        """One page of the files ``peer`` may read: at most ``request.limit`` after the cursor
        ``request.after``, cut further to stay under MAX_LIST_REPLY_BYTES, and the cursor of
        the next page in ``next`` ("" on the last). One range read. Raises PeerError
        (INVALID_MESSAGE) for a cursor the server did not give.
        """
        conversation = await self.hub.conversation_of(peer, request.to) if request.to else None
        after = _file_cursor(request.after) if request.after else FIRST_FILE
        records = await self.storage.readable_files(
            peer.principal, conversation, self.clock.now_ms(), request.limit + 1, after
        )
        files: list[FileInfo] = []
        size = 0
        more = len(records) > request.limit
        for record in records[: request.limit]:
            info = _info(record)
            size += len(msgspec.json.encode(info)) + 1
            if size > _FILES_REPLY_BYTES and files:
                more = True
                break
            files.append(info)
        last = records[len(files) - 1] if files else None
        following = f"{last.created_ms}:{last.file_id}" if more and last is not None else ""
        return FileList(id=request.id, files=files, next=following)

    async def delete(self, peer: Peer, request: DeleteFile) -> None:
        record = await self.storage.file(request.file_id)
        if record is None or record.sender_key != peer.principal:
            raise _no_such_file()
        await self.forget(record.file_id)

    async def _readable(self, peer: Peer, file_id: str) -> FileRecord:
        record = await self.storage.readable_file(file_id, peer.principal, self.clock.now_ms())
        if record is None:
            raise _no_such_file()
        return record

    # --- used by the file connections ----------------------------------------------------

    async def open_transfer(self, token: str) -> tuple[Ticket, FileRecord]:
        """Redeem ``token`` (once: a token opens one file connection) and read its file. For
        an upload, the file is claimed: the caller must call :meth:`end_upload` when the
        connection ends. Raises PeerError with what to tell the file connection.
        """
        ticket = await self.tickets.redeem(token)
        if ticket is None:
            raise PeerError(ErrorCode.NO_SUCH_FILE, "The token is unknown, used or expired.")
        if not ticket.upload:
            record = await self.storage.file(ticket.file_id)
            if record is None:
                raise _no_such_file()
            return ticket, record
        now = self.clock.now_ms()
        until = now + int(upload_claim_seconds(self.config) * 1000)
        claim = await self.storage.claim_file(ticket.file_id, ClaimKind.UPLOAD, now, until)
        if claim is ClaimKind.UPLOAD:
            raise PeerError(ErrorCode.TOO_MANY_UPLOADS, "That file is being sent already.")
        if claim is ClaimKind.DELETE:
            raise _upload_expired()
        try:
            record = await self.storage.file(ticket.file_id)
            if record is None:
                raise _no_such_file()
            if not record.complete and record.expires_ms <= self.clock.now_ms():
                raise _upload_expired()  # the purge deletes it soon
        except BaseException:
            self.end_upload(ticket.file_id)
            raise
        return ticket, record

    async def renew_upload(self, file_id: str) -> None:
        """The upload of ``file_id`` is still receiving: extend its claim. One storage write;
        a failure is logged (the claim then lasts what is left of it).
        """
        until = self.clock.now_ms() + int(upload_claim_seconds(self.config) * 1000)
        try:
            await self.storage.renew_claim(file_id, ClaimKind.UPLOAD, until)
        except StorageUnavailable as exc:
            log.warning("Could not renew the claim of upload %s: %s", file_id, exc)

    def end_upload(self, file_id: str) -> None:
        """The upload connection of ``file_id`` has ended (whatever became of the file): give
        its claim back, without waiting (the lease ends it anyway if storage fails).
        """
        self._claim_work.spawn(self._release(file_id, ClaimKind.UPLOAD))

    async def _release(self, file_id: str, kind: ClaimKind) -> None:
        try:
            await self.storage.release_claim(file_id, kind)
        except StorageUnavailable as exc:
            log.warning("Could not give back the claim on file %s (it runs out): %s", file_id, exc)

    async def stop(self) -> None:
        """Let the claims being given back finish (briefly), before storage closes."""
        if not await self._claim_work.wait(1.0):
            await self._claim_work.cancel()

    async def finished(self, record: FileRecord) -> None:
        """An upload is complete and verified: keep it for its lifetime and announce it."""
        expires = self.clock.now_ms() + int(self.config.file_expiry_days * _DAY_MS)
        await self.storage.complete_file(record.file_id, expires)
        notice = FileNotice(record.file_id, record.name, record.size, record.sha256)
        participants: tuple[str, ...] = ()
        if not is_room(record.to):
            participants = tuple(sorted(conversation_principals(record.conversation)))
        self.hub.post(
            NewMessage(
                record.conversation,
                record.sender,
                record.sender_key,
                record.to,
                notice_text(notice),
                f"file:{record.file_id}",
                participants=participants,
            )
        )

    async def forget(self, file_id: str) -> None:
        """Delete a file's record, and its bytes when no other record shares them."""
        record = await self.storage.delete_file(file_id)
        if record is None:
            return
        await asyncio.to_thread(self.blobs.drop_partial, file_id)
        if not await self.storage.blob_in_use(record.sha256):
            await asyncio.to_thread(self.blobs.drop_blob, record.sha256)

    async def purge(self) -> int:
        """Delete expired files (and uploads never finished); returns how many. A file whose
        upload is under way is left for a later purge.
        """
        count = 0
        await self.tickets.forget_expired()
        while True:
            expired = await self.storage.expired_files(self.clock.now_ms(), 500)
            deleted = 0
            for record in expired:
                deleted += await self._purge_one(record.file_id)
            count += deleted
            if len(expired) < 500 or not deleted:
                return count

    async def _purge_one(self, file_id: str) -> bool:
        """Delete ``file_id`` if it is still expired and no upload holds it."""
        now = self.clock.now_ms()
        until = now + int(_DELETE_CLAIM_SECONDS * 1000)
        if await self.storage.claim_file(file_id, ClaimKind.DELETE, now, until) is not None:
            return False
        try:
            # Read again: the list may be stale (an upload may have finished since, and a
            # complete file has a new expiry).
            record = await self.storage.file(file_id)
            if record is None or record.expires_ms > self.clock.now_ms():
                return False
            await self.forget(file_id)
            return True
        finally:
            await self.storage.release_claim(file_id, ClaimKind.DELETE)


def _quota_key(peer: Peer) -> str:
    """Whose quota ``peer``'s uploads count against: its account, or its address's guests."""
    return peer.principal if peer.account else f"address:{address_group(peer.host)}"


def _no_such_file() -> PeerError:
    return PeerError(ErrorCode.NO_SUCH_FILE, ErrorCode.NO_SUCH_FILE.text)


def _upload_expired() -> PeerError:
    return PeerError(
        ErrorCode.NO_SUCH_FILE,
        "The upload was not finished in time and is deleted; share the file again.",
    )


def _file_cursor(after: str) -> tuple[int, str]:
    """The (created_ms, file_id) a ``files`` request's ``after`` names: the ``next`` the
    server gave, "CREATED_MS:FILE_ID". Raises PeerError(INVALID_MESSAGE) for anything else.
    """
    created, _, file_id = after.partition(":")
    if not (created.isascii() and created.isdigit() and len(created) <= 18 and file_id):
        raise PeerError(
            ErrorCode.INVALID_MESSAGE,
            "The files request's after is not a next the server gave; ask from the first.",
        )
    return int(created), file_id


def _info(record: FileRecord) -> FileInfo:
    return FileInfo(
        file_id=record.file_id,
        name=record.name,
        size=record.size,
        sha256=record.sha256,
        sender=record.sender,
        to=record.to,
        ts=record.created_ms,
        expires=record.expires_ms,
    )
