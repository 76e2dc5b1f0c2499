"""Helpers for testing the hub's parts on their own: a connection that records what it is
sent, a bus that records what is published, and a real storage whose commits wait for a gate.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from parley.bus.local import LocalBus
from parley.protocol.errors import ErrorCode
from parley.storage import NewMessage, Role, Storage, StoredMessage


@dataclasses.dataclass(eq=False)
class RecordingPeer:
    """A logged-in connection that keeps every frame written to it."""

    nick: str
    principal: str = ""
    account: str = ""
    role: Role = Role.USER
    token_hash: str = ""
    host: str = "127.0.0.1"
    since_ms: int = 0
    rooms: tuple[str, ...] = ()
    frames: list[bytes] = dataclasses.field(default_factory=list)
    aborted: int = 0
    closed: bool = False
    # Called with each frame before it is kept: a test makes a write misbehave with it.
    on_write: Callable[[bytes], None] | None = None
    # Called by abort, as a transport's abort ends the login (or fails).
    on_abort: Callable[[], object] | None = None

    def __post_init__(self) -> None:
        self.principal = self.principal or f"p-{self.nick.casefold()}"

    @property
    def nick_key(self) -> str:
        return self.nick.casefold()

    def write(self, frame: bytes) -> None:
        if self.on_write is not None:
            self.on_write(frame)
        self.frames.append(frame)

    def queued_bytes(self) -> int:
        return 0

    def close(self, code: ErrorCode | None = None, detail: str = "") -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted += 1
        self.closed = True
        if self.on_abort is not None:
            self.on_abort()

    def events(self) -> list[dict[str, Any]]:
        return [msgspec.json.decode(frame) for frame in self.frames]


class RecordingBus(LocalBus):
    """A local bus that also keeps every (conversation, decoded frame) published."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, conversation: str, frame: bytes, seq: int = 0) -> None:
        self.published.append((conversation, msgspec.json.decode(frame)))
        super().publish(conversation, frame, seq)

    def texts(self, conversation: str) -> list[str]:
        return [event["text"] for c, event in self.published if c == conversation]


class GatedStorage:
    """A real storage whose appends of a batch holding a gated conversation wait until the
    test opens that conversation's gate; every batch appended is recorded, with the method
    (``append_free`` for the shared transaction, ``append`` for a conversation alone).
    ``fail`` makes the next appends raise what it holds, after (``after_commit``: the whole
    batch stored) or instead of storing.
    """

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.gates: dict[str, asyncio.Event] = {}
        self.batches: list[list[str]] = []
        self.calls: list[tuple[str, list[str]]] = []
        self.fail: list[tuple[BaseException, bool]] = []

    def gate(self, conversation: str) -> asyncio.Event:
        gate = self.gates[conversation] = asyncio.Event()
        return gate

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        await self._before("append", batch)
        return await self._inner.append(batch)

    async def append_free(self, batch: Sequence[NewMessage]) -> list[StoredMessage | None]:
        await self._before("append_free", batch)
        return await self._inner.append_free(batch)

    async def _before(self, method: str, batch: Sequence[NewMessage]) -> None:
        for message in batch:
            gate = self.gates.get(message.conversation)
            if gate is not None:
                await asyncio.wait_for(gate.wait(), 10)
        self.batches.append([message.text for message in batch])
        self.calls.append((method, [message.text for message in batch]))
        if self.fail:
            exc, after_commit = self.fail.pop(0)
            if after_commit:
                await self._inner.append(batch)
            raise exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
