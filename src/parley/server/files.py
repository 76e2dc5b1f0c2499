"""File sharing's rules, on the chat connection: who may share what with whom, quotas, the
one-time tokens that let a file connection (server/transfer.py) carry the bytes, listing,
deleting, and the purge of expired files.

A file may be read by its sender and by those it was shared with: the other user of a private
conversation, or the room's members when it was shared. Anyone else asking for it is told it
does not exist. Ids are 128 random bits; tokens are 192 random bits, good for one connection
within TOKEN_SECONDS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time

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
from parley.protocol.names import is_room, nick_key, normalize_nick
from parley.server.blobs import BlobStore
from parley.server.hub import Hub, now_ms
from parley.server.rooms import Peer
from parley.storage import FileRecord, NewMessage, Storage

log = logging.getLogger("parley.files")

TOKEN_SECONDS = 300.0
_DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """What a token on a file connection allows: one upload or one download of a file."""

    upload: bool
    file_id: str
    expires: float  # time.monotonic()


class FileService:
    def __init__(self, storage: Storage, hub: Hub, config: ServerConfig, blobs: BlobStore) -> None:
        self.storage = storage
        self.hub = hub
        self.config = config
        self.blobs = blobs
        # The file connections' port, known once they listen.
        self.port = 0
        self._tickets: dict[str, Ticket] = {}
        # Uploads being received now, by file id: one connection at a time per file.
        self.receiving: set[str] = set()

    # --- requests on the chat connection -------------------------------------------------

    async def share(self, peer: Peer, request: ShareFile) -> UploadSlot:
        name = clean_file_name(request.name)
        if request.size > self.config.max_file_bytes:
            raise PeerError(
                ErrorCode.FILE_TOO_LARGE,
                f"Files are at most {human_size(self.config.max_file_bytes)} on this server.",
            )
        conversation, shown, readers = self.hub.file_audience(peer, request.to)
        if not is_room(request.to) and self.hub.find_online(request.to) is None:
            account = await self.storage.account(nick_key(normalize_nick(request.to)))
            if account is None:
                raise PeerError(ErrorCode.NO_SUCH_USER, f"No user named {request.to}.")
            shown = account.name
        now = now_ms()
        pending = await self.storage.pending_upload(
            peer.nick_key, conversation, request.sha256, request.size, name, now
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
                sender_key=peer.nick_key,
                sender=peer.nick,
                conversation=conversation,
                to=shown,
                created_ms=now,
                # Until it is complete: an upload that never finishes is freed after this.
                expires_ms=now + int(self.config.unfinished_upload_seconds * 1000),
            )
            await self.storage.add_file(record, readers)
        token = self._ticket(upload=True, file_id=record.file_id)
        return UploadSlot(
            id=request.id,
            file_id=record.file_id,
            token=token,
            port=self.port,
            offset=self.blobs.received(record.file_id),
            name=name,
        )

    async def _check_allowance(self, peer: Peer, size: int, now: int) -> None:
        if await self.storage.uploads_in_progress(peer.nick_key, now) >= (
            self.config.max_uploads_in_progress
        ):
            raise PeerError(
                ErrorCode.TOO_MANY_UPLOADS,
                f"At most {self.config.max_uploads_in_progress} uploads at a time; "
                "finish or cancel one first.",
            )
        used = await self.storage.sender_bytes(peer.nick_key, now)
        if used + size > self.config.file_quota_bytes:
            raise PeerError(
                ErrorCode.QUOTA_EXCEEDED,
                f"Your files would take {human_size(used + size)}; the quota is "
                f"{human_size(self.config.file_quota_bytes)}. Delete some with /rmfile.",
            )

    async def get(self, peer: Peer, request: GetFile) -> DownloadTicket:
        record = await self._readable(peer, request.file_id)
        return DownloadTicket(
            id=request.id,
            file_id=record.file_id,
            token=self._ticket(upload=False, file_id=record.file_id),
            port=self.port,
            name=record.name,
            size=record.size,
            sha256=record.sha256,
            sender=record.sender,
        )

    async def list(self, peer: Peer, request: ListFiles) -> FileList:
        conversation = self.hub.conversation_of(peer, request.to) if request.to else None
        records = await self.storage.readable_files(
            peer.nick_key, conversation, now_ms(), limits.MAX_LISTED_FILES
        )
        return FileList(id=request.id, files=[_info(record) for record in records])

    async def delete(self, peer: Peer, request: DeleteFile) -> None:
        record = await self.storage.file(request.file_id)
        if record is None or record.sender_key != peer.nick_key:
            raise _no_such_file()
        await self.forget(record.file_id)

    async def _readable(self, peer: Peer, file_id: str) -> FileRecord:
        record = await self.storage.file(file_id)
        if (
            record is None
            or not record.complete
            or record.expires_ms <= now_ms()
            or not await self.storage.may_read_file(file_id, peer.nick_key)
        ):
            raise _no_such_file()
        return record

    # --- used by the file connections ----------------------------------------------------

    def _ticket(self, *, upload: bool, file_id: str) -> str:
        now = time.monotonic()
        if len(self._tickets) > 10_000:  # unused tokens pile up only if clients misbehave
            self._tickets = {t: v for t, v in self._tickets.items() if v.expires > now}
        token = secrets.token_urlsafe(24)
        self._tickets[token] = Ticket(upload, file_id, now + TOKEN_SECONDS)
        return token

    def redeem(self, token: str) -> Ticket | None:
        """The ticket of ``token``, once: a token opens one file connection."""
        ticket = self._tickets.pop(token, None)
        if ticket is None or ticket.expires < time.monotonic():
            return None
        return ticket

    async def finished(self, record: FileRecord) -> None:
        """An upload is complete and verified: keep it for its lifetime and announce it."""
        expires = now_ms() + int(self.config.file_expiry_days * _DAY_MS)
        await self.storage.complete_file(record.file_id, expires)
        notice = FileNotice(record.file_id, record.name, record.size, record.sha256)
        participants: tuple[str, ...] = ()
        if not is_room(record.to):
            participants = tuple(sorted({record.sender_key, nick_key(record.to)}))
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
        """Delete expired files (and uploads never finished); returns how many."""
        count = 0
        while True:
            expired = await self.storage.expired_files(now_ms(), 500)
            for record in expired:
                if record.file_id not in self.receiving:
                    await self.forget(record.file_id)
                    count += 1
            if len(expired) < 500:
                return count


def _no_such_file() -> PeerError:
    return PeerError(ErrorCode.NO_SUCH_FILE, ErrorCode.NO_SUCH_FILE.text)


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
