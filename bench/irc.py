"""The load client for IRC (RFC 1459/2812 as ngIRCd speaks it): NICK/USER, JOIN, PRIVMSG.

Registration is done at numeric 001 (welcome); joining is done at 366 (end of the channel's
member list), which the server sends after the JOIN echo and the member list.
"""

from __future__ import annotations

from bench.client import BenchClient, message_text, nickname

CHANNEL = b"#bench"
# Numerics that refuse a nickname or a JOIN: the session cannot become ready.
_REFUSALS = {b"403", b"405", b"431", b"432", b"433", b"436", b"437", b"471", b"473", b"474"}


class IrcClient(BenchClient):
    def greet(self) -> None:
        assert self.transport is not None
        nick = nickname(self.index)
        self.transport.write(b"NICK %s\r\nUSER %s 0 * :bench\r\n" % (nick, nick))

    def before_ready(self, lines: bytes) -> None:
        # A few lines per client, once: parsed properly, since statistics and member lists
        # hold numbers that would fool a substring search.
        assert self.transport is not None
        for line in lines.split(b"\n"):
            words = line.rstrip(b"\r").split(b" ", 3)
            if words[0] == b"ERROR":
                self.fail(line.decode(errors="replace"))
                return
            if len(words) < 3 or not words[0].startswith(b":"):
                continue
            command = words[1]
            if command == b"001":
                if not self.room:
                    self.ready.set_result(None)
                    return
                self.transport.write(b"JOIN %s\r\n" % CHANNEL)
            elif command == b"366" and self.room:
                self.ready.set_result(None)
                return
            elif command in _REFUSALS:
                self.fail(line.decode(errors="replace"))
                return

    def after_ready(self, lines: bytes) -> None:
        if b"PING " in lines:
            assert self.transport is not None
            for line in lines.split(b"\n"):
                if line.startswith(b"PING "):
                    self.transport.write(b"PONG " + line[5:].rstrip(b"\r") + b"\r\n")

    def say(self) -> None:
        assert self.transport is not None
        self.sent += 1
        self.transport.write(b"PRIVMSG %s :%s\r\n" % (CHANNEL, message_text(self.index)))
