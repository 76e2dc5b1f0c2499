"""The seam where shared files' bytes live: a :class:`BlobStore`. Its first implementation is a
directory that every node mounts (:mod:`parley.server.blob_directory`); the metadata, who may
read a file, and which node may write an upload are in storage, not here.

Bytes are kept under their SHA-256 (identical files once), an upload in progress under its
file id until its size and hash are checked. Every method blocks (file system or network
calls): callers run the long ones (hashing) in a worker thread.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Protocol


class BlobStore(Protocol):
    def open_blob(self, sha256: str) -> BinaryIO:
        """The complete content, to read from the start or any offset. Raises
        FileNotFoundError when it is missing (never stored, or lost: the caller says so).
        """
        ...

    def has_blob(self, sha256: str) -> bool: ...

    def received(self, file_id: str) -> int:
        """Bytes of an upload in progress already stored (0 when none)."""
        ...

    def hash_received(self, file_id: str) -> hashlib._Hash:
        """A SHA-256 fed with the bytes already received, to carry on from (resuming)."""
        ...

    def open_partial(self, file_id: str) -> int:
        """A descriptor to append to the upload's bytes (created private)."""
        ...

    def commit(self, file_id: str, sha256: str) -> None:
        """The upload is complete and verified: make it the blob ``sha256`` (or drop it when
        that content is stored already). Durable when it returns.
        """
        ...

    def drop_partial(self, file_id: str) -> None:
        """Forget an upload's bytes (none is fine)."""
        ...

    def drop_blob(self, sha256: str) -> None:
        """Forget a blob (none is fine); the caller knows no file still has it."""
        ...
