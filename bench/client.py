"""What the load clients of both protocols share: the benchmark message and the receive path.

The generator must cost far less than the server it measures, so a client does the least it can
per received chunk: it keeps the bytes after the last newline for next time, counts benchmark
messages with ``bytes.count``, and only sampled clients run one compiled regular expression over
the chunk to read the send times.

Every benchmark message text is exactly 64 bytes: ``%%SSSSS TTTTTTTTTTTTTTTTTTT xxx…``, the
speaker's index and its ``time.monotonic_ns()`` when sending. CLOCK_MONOTONIC is one clock for
the whole machine on Linux, so a receiver in another process can subtract it.
"""

from __future__ import annotations

import abc
import array
import asyncio
import re
import time
from typing import cast

MARKER = b"%%"
TEXT_BYTES = 64
_STAMP = re.compile(rb"%%(\d{5}) (\d{19})")


def message_text(speaker: int) -> bytes:
    head = MARKER + b"%05d %019d " % (speaker, time.monotonic_ns())
    return head + b"x" * (TEXT_BYTES - len(head))


def nickname(index: int) -> bytes:
    # Short enough for ngIRCd's default nickname limit of 9 characters.
    return b"u%05d" % index


class BenchClient(asyncio.Protocol, abc.ABC):
    """One simulated user. With ``room`` False it stops after the greeting (idle connections);
    with ``sampled`` it records the latency of every message it receives from others.
    """

    def __init__(self, index: int, *, room: bool, sampled: bool) -> None:
        self.index = index
        self.room = room
        self.sampled = sampled
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.sent = 0
        self.received = 0
        self.received_bytes = 0
        self.refusals = 0  # requests the server turned down (Parley: rate-limited)
        self.latencies_ns = array.array("q")
        self.last_activity = time.monotonic()
        self.dropped = False  # the server closed the connection after it was ready
        self.closing = False  # we are closing it ourselves
        self._own_digits = b"%05d" % index
        self._own_marker = MARKER + self._own_digits
        self._tail = b""

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.greet()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        self.received_bytes += len(data)
        if self._tail:
            data = self._tail + data
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        if not cut:
            return
        lines = data[:cut] if cut < len(data) else data
        if not self.ready.done():
            self.before_ready(lines)
        count = lines.count(MARKER)
        if count:
            if self.sent:  # Parley echoes a message to its sender: not a delivery
                count -= lines.count(self._own_marker)
            self.received += count
            if self.sampled:
                now = time.monotonic_ns()
                for speaker, stamp in _STAMP.findall(lines):
                    if speaker != self._own_digits:
                        self.latencies_ns.append(now - int(stamp))
        self.after_ready(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {exc}"))
        elif not self.closing:
            self.dropped = True

    # --- used by the worker -------------------------------------------------------------

    def reset(self) -> None:
        self.received = 0
        self.received_bytes = 0
        self.refusals = 0
        self.latencies_ns = array.array("q")

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))

    # --- per protocol -------------------------------------------------------------------

    @abc.abstractmethod
    def greet(self) -> None:
        """Send what opens the session (and, with ``room``, what joins the room)."""

    @abc.abstractmethod
    def before_ready(self, lines: bytes) -> None:
        """Complete lines that arrived before ``ready``: resolve it once the session is open
        (and in the room), or ``fail``.
        """

    @abc.abstractmethod
    def after_ready(self, lines: bytes) -> None:
        """Anything besides deliveries in every chunk: keep-alives, refusals. Kept cheap."""

    @abc.abstractmethod
    def say(self) -> None:
        """Send one benchmark message to the room."""
