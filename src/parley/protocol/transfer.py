"""The file connection: how a file's bytes travel, apart from the chat (docs/protocol.md, "Files").

A client opens a second TLS connection to the port an ``upload`` or ``download`` reply names
and sends one JSON line, ``start``, with the one-time token from that reply and the offset to
begin at. The server answers one JSON line: ``ready`` (then the raw bytes follow: from the
client for an upload, from the server for a download) or ``error``. After an upload's last
byte the server checks the size and SHA-256 and answers ``done`` or ``error``, and closes.

Pure: lines in, frames out. No sockets here.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from parley.protocol.errors import InvalidMessage, MalformedFrame

# The one line before the bytes: a token and two numbers fit many times over.
MAX_START_LINE_BYTES = 4096


class _Frame(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    pass


class Start(_Frame, tag="start", frozen=True):
    """First line of a file connection: the token of an ``upload`` or ``download`` reply."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    offset: Annotated[int, msgspec.Meta(ge=0, le=2**53)] = 0


class Ready(_Frame, tag="ready", frozen=True):
    """The bytes may flow, from ``offset`` to ``size`` (exclusive)."""

    offset: int
    size: int


class Done(_Frame, tag="done", frozen=True):
    """An upload is complete and verified; the recipients are told."""

    file_id: str
    sha256: str


class TransferError(_Frame, tag="error", frozen=True):
    code: str
    message: str


ServerLine = Ready | Done | TransferError

_encoder = msgspec.json.Encoder()
_start_decoder = msgspec.json.Decoder(Start)
_server_decoder: msgspec.json.Decoder[ServerLine] = msgspec.json.Decoder(ServerLine)


def encode(frame: Start | ServerLine) -> bytes:
    return _encoder.encode(frame) + b"\n"


def decode_start(line: bytes) -> Start:
    """Raises MalformedFrame (not JSON) or InvalidMessage (not a valid ``start``)."""
    try:
        return _start_decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise InvalidMessage(str(exc), None) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedFrame(f"Not valid UTF-8 JSON: {exc}") from None


def decode_server_line(line: bytes) -> ServerLine:
    try:
        return _server_decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise InvalidMessage(str(exc), None) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedFrame(f"Not valid UTF-8 JSON: {exc}") from None
