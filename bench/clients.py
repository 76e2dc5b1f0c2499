"""Minimal load-generating clients for both protocols: log in, join, send, count what arrives.

The generator must cost less than the server it measures, so a client does the least per
received byte: it splits on complete lines, counts a marker with ``bytes.count``, and only the
sampled clients run one regular expression over the chunk to read the send times.

Every benchmark message text is exactly 64 bytes: ``%%SSSSS TTTTTTTTTTTTTTTTTTT xxx…`` with the
speaker's index and its ``time.monotonic_ns()`` at sending (CLOCK_MONOTONIC is one clock for the
whole machine on Linux, so receivers in other processes can subtract it).
"""

from __future__ import annotations

import abc
import asyncio
import re
import time
from typing import cast

MARKER = b"%%"
TEXT_BYTES = 64
_STAMP = re.compile(rb"%%(\d{5}) (\d{19})")
PARLEY_ROOM = "#general"
IRC_CHANNEL = "#bench"


def message_text(speaker: int) -> str:
    head = f"%%{speaker:05d} {time.monotonic_ns():019d} "
    return head + "x" * (TEXT_BYTES - len(head))


class BenchClient(asyncio.Protocol, abc.ABC):
    """One simulated user. ``join`` False: stop after the greeting (idle connections)."""

    def __init__(self, index: int, *, join: bool, sample: bool) -> None:
        self.index = index
        self.join = join
        self.sample = sample
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.received = 0
        self.latencies_ns: list[int] = []
        self.last_activity = time.monotonic()
        self.rate_limited = 0
        self.sent = 0
        self._own = b"%%%05d" % index
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.greet()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        data = self._tail + data if self._tail else data
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        if not cut:
            return
        lines = data[:cut]
        if not self.ready.done():
            self.check_ready(lines)
        count = lines.count(MARKER)
        if count:
            # Parley echoes a message to its sender; only deliveries to others count.
            self.received += count - (lines.count(self._own) if self.sent else 0)
            if self.sample:
                now = time.monotonic_ns()
                for speaker, stamp in _STAMP.findall(lines):
                    if int(speaker) != self.index:
                        self.latencies_ns.append(now - int(stamp))
        self.other_lines(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"client {self.index} lost: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @abc.abstractmethod
    def greet(self) -> None:
        """Send what opens the session (and joins, when ``join``)."""

    @abc.abstractmethod
    def check_ready(self, lines: bytes) -> None:
        """Resolve ``ready`` once the session is open (and joined)."""

    @abc.abstractmethod
    def other_lines(self, lines: bytes) -> None:
        """Deal with anything else the server sent (pings, refusals)."""

    @abc.abstractmethod
    def say(self) -> None:
        """Send one benchmark message to the room."""


class ParleyClient(BenchClient):
    def greet(self) -> None:
        assert self.transport is not None
        hello = b'{"type":"hello","id":1,"versions":[1]}\n'
        nick = b'{"type":"nick","id":2,"nick":"u%05d"}\n' % self.index
        self.transport.write(hello + nick if self.join else hello)

    def check_ready(self, lines: bytes) -> None:
        if b'"type":"ok"' in lines if self.join else b'"type":"welcome"' in lines:
            self.ready.set_result(None)
        elif b'"type":"error"' in lines or b'"type":"closing"' in lines:
            self.ready.set_exception(ConnectionError(lines[:200].decode(errors="replace")))

    def other_lines(self, lines: bytes) -> None:
        if b'"rate-limited"' in lines:
            self.rate_limited += lines.count(b'"rate-limited"')

    def say(self) -> None:
        assert self.transport is not None
        self.sent += 1
        self.transport.write(
            b'{"type":"send","id":%d,"to":"%s","text":"%s","msg_id":"%d"}\n'
            % (self.sent + 2, PARLEY_ROOM.encode(), message_text(self.index).encode(), self.sent)
        )


class IrcClient(BenchClient):
    def greet(self) -> None:
        assert self.transport is not None
        nick = b"u%05d" % self.index
        self.transport.write(b"NICK %s\r\nUSER %s 0 * :bench\r\n" % (nick, nick))

    def check_ready(self, lines: bytes) -> None:
        assert self.transport is not None
        nick = b"u%05d" % self.index
        # Numeric replies name their target right after the number; member lists and
        # statistics lines contain numbers too, so match the number with our own nickname.
        if b" 001 %s " % nick in lines:
            if not self.join:
                self.ready.set_result(None)
                return
            self.transport.write(b"JOIN %s\r\n" % IRC_CHANNEL.encode())
        if b" 366 %s " % nick in lines:  # end of the channel's member list: joined
            self.ready.set_result(None)
        elif lines.startswith(b"ERROR ") or b"\nERROR " in lines or b" 433 * " in lines:
            self.ready.set_exception(ConnectionError(lines[:200].decode(errors="replace")))

    def other_lines(self, lines: bytes) -> None:
        if b"PING" in lines:
            assert self.transport is not None
            for line in lines.splitlines():
                if line.startswith(b"PING"):
                    self.transport.write(b"PONG" + line[4:] + b"\r\n")

    def say(self) -> None:
        assert self.transport is not None
        self.sent += 1
        self.transport.write(
            b"PRIVMSG %s :%s\r\n" % (IRC_CHANNEL.encode(), message_text(self.index).encode())
        )


CLIENTS: dict[str, type[BenchClient]] = {"parley": ParleyClient, "irc": IrcClient}
