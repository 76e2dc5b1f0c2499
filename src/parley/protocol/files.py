"""How a shared file is announced in its conversation: a message the server writes on the
sender's behalf once the upload is complete and verified, so that history, unread counts and
catching up after a reconnect carry files as they carry words.

Its text is ``/file `` and a JSON object: ``{"id":..., "name":..., "size":..., "sha256":...}``.
Users cannot send text that starts this way: only the server makes these lines.
"""

from __future__ import annotations

import msgspec

FILE_PREFIX = "/file "


class FileNotice(msgspec.Struct, frozen=True):
    id: str
    name: str
    size: int
    sha256: str


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(FileNotice)


def notice_text(notice: FileNotice) -> str:
    return FILE_PREFIX + _encoder.encode(notice).decode()


def parse_notice(text: str) -> FileNotice | None:
    """The file a message announces, or None for any other text."""
    if not text.startswith(FILE_PREFIX):
        return None
    try:
        return _decoder.decode(text[len(FILE_PREFIX) :])
    except msgspec.MsgspecError:
        return None


def human_size(size: int) -> str:
    """``2.3 MiB``: binary units, as the server's settings are written (100 MiB, 1 GiB), one
    convention in every message and client.
    """
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
    raise AssertionError("unreachable")
