"""Newline-delimited framing with a size limit enforced before buffering."""

from __future__ import annotations

from parley.protocol.errors import FrameTooLarge


class LineFramer:
    """Splits a byte stream into frames ending in ``\\n``.

    A frame may be at most ``max_frame_bytes`` long, newline included. The check runs on every
    chunk, so an unfinished frame is never held beyond the limit: at most ``max_frame_bytes`` plus
    one received chunk is ever in memory. Blank lines (CRLF included) are skipped: harmless
    keep-alives.
    """

    __slots__ = ("_buffer", "_max_frame_bytes")

    def __init__(self, max_frame_bytes: int) -> None:
        self._max_frame_bytes = max_frame_bytes
        # Holds only the unfinished frame. A bytearray, so a frame trickled in one byte at a time
        # costs O(n) in all, not O(n^2) in copies.
        self._buffer = bytearray()

    @property
    def buffered_bytes(self) -> int:
        """Bytes of the unfinished frame held so far."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete frames, without newlines, in order.

        Raises FrameTooLarge as soon as a frame, finished or not, is over the limit; the frames
        before it in the same chunk are dropped with it (the connection is closing anyway).
        Costs O(len(data)).
        """
        limit = self._max_frame_bytes
        buffer = self._buffer
        first = b""
        if buffer:
            newline = data.find(b"\n")
            if newline < 0:
                if len(buffer) + len(data) >= limit:
                    buffer.clear()
                    raise FrameTooLarge(limit)
                buffer += data
                return []
            buffer += data[:newline]
            first = bytes(buffer)
            buffer.clear()
            data = data[newline + 1 :]
        lines = data.split(b"\n")
        # The last piece has no newline yet: it is the start of the next frame.
        tail = lines.pop()
        if first:
            lines.insert(0, first)
        # A line of n bytes is a frame of n + 1 bytes with its newline.
        if len(tail) >= limit or any(len(line) >= limit for line in lines):
            raise FrameTooLarge(limit)
        buffer += tail
        return [line for line in lines if line and not line.isspace()]
