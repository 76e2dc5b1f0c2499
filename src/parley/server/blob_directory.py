"""The blob store as a directory: the data dir's ``files/``, under each file's SHA-256, never
under a name a user chose. Identical files are stored once.

    files/blobs/ab/abcdef...   complete, verified content (read-only for the server's use)
    files/partial/<file_id>    an upload in progress; resumable, and never a blob until its
                               size and hash are checked

Several nodes share it by mounting one file system there (NFS, CephFS...): every name is
decided by content or by a random file id, a blob appears by an atomic rename from ``partial/``
(the same file system), and which node may write a partial file is decided in storage (the
upload's claim, parley.server.files), so no file lock is needed. docs/deploy.md says how.

All methods block (file system calls): the callers run them where that is acceptable, or in a
worker thread for the long ones (hashing).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import BinaryIO

_HASH_CHUNK_BYTES = 1 << 20


class DirectoryBlobStore:
    """A :class:`parley.server.blobs.BlobStore` in a directory (``root``)."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.partial = root / "partial"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.partial.mkdir(parents=True, exist_ok=True)

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def partial_path(self, file_id: str) -> Path:
        return self.partial / file_id

    def open_blob(self, sha256: str) -> BinaryIO:
        return self.blob_path(sha256).open("rb")

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def received(self, file_id: str) -> int:
        """Bytes of an upload in progress already on disk."""
        try:
            return self.partial_path(file_id).stat().st_size
        except FileNotFoundError:
            return 0

    def hash_received(self, file_id: str) -> hashlib._Hash:
        """A SHA-256 fed with the bytes already received, to carry on from (resuming)."""
        digest = hashlib.sha256()
        with contextlib.suppress(FileNotFoundError), self.partial_path(file_id).open("rb") as file:
            while chunk := file.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
        return digest

    def open_partial(self, file_id: str) -> int:
        """A descriptor to append to the upload's partial file (created 0600)."""
        return os.open(self.partial_path(file_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def commit(self, file_id: str, sha256: str) -> None:
        """The partial file is complete and verified: make it the blob (or drop it when the
        same content is stored already).
        """
        partial = self.partial_path(file_id)
        with partial.open("rb") as file:
            os.fsync(file.fileno())
        target = self.blob_path(sha256)
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            partial.unlink()
        else:
            os.replace(partial, target)

    def drop_partial(self, file_id: str) -> None:
        self.partial_path(file_id).unlink(missing_ok=True)

    def drop_blob(self, sha256: str) -> None:
        self.blob_path(sha256).unlink(missing_ok=True)
