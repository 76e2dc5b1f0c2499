"""The load client for Parley's protocol (docs/protocol.md): newline-delimited JSON frames.

It sends ``hello`` and, for a room, ``nick`` in the same write: the server handles requests in
order, so the ``nick`` meets a session already past its ``hello``. Logging in joins ``#general``.
"""

from __future__ import annotations

from bench.client import BenchClient, message_text, nickname

ROOM = b"#general"
_HELLO = b'{"type":"hello","id":1,"versions":[1]}\n'
_FIRST_SEND_ID = 3


class ParleyClient(BenchClient):
    def greet(self) -> None:
        assert self.transport is not None
        if self.room:
            nick = b'{"type":"nick","id":2,"nick":"%s"}\n' % nickname(self.index)
            self.transport.write(_HELLO + nick)
        else:
            self.transport.write(_HELLO)

    def before_ready(self, lines: bytes) -> None:
        if b'"type":"error"' in lines or b'"type":"closing"' in lines:
            refusal = next(
                line
                for line in lines.split(b"\n")
                if b'"type":"error"' in line or b'"type":"closing"' in line
            )
            self.fail(refusal[:200].decode(errors="replace"))
        elif (b'"type":"ok"' if self.room else b'"type":"welcome"') in lines:
            self.ready.set_result(None)

    def after_ready(self, lines: bytes) -> None:
        # Only refusals matter here; "error" never occurs in a benchmark message's text.
        if b'"type":"error"' in lines:
            self.refusals += lines.count(b'"rate-limited"')

    def say(self) -> None:
        assert self.transport is not None
        request_id = _FIRST_SEND_ID + self.sent
        self.sent += 1
        self.transport.write(
            b'{"type":"send","id":%d,"to":"%s","text":"%s","msg_id":"%d"}\n'
            % (request_id, ROOM, message_text(self.index), request_id)
        )
