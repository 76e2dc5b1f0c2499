"""The purge of expired uploads against uploads that resume or finish at the same moment, over
real TLS, held deterministically at a chosen point: the storage the server runs on is the real
SQLite backend, with one of its calls made to wait until the test lets it go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from parley.client.core import ChatClient
from parley.client.transfer import download, upload
from parley.config import ServerConfig
from parley.protocol import transfer
from parley.server.app import ParleyServer
from parley.storage import Storage
from parley.storage.factory import open_storage
from support import TIMEOUT_SECONDS, insecure_context

# An unfinished upload expires this long after it was offered.
UNFINISHED_SECONDS = 1.0
SIZE = 400_000


class Gate:
    """Where one storage call waits: ``reached`` is set when it gets there, and it goes on
    once ``release`` is set.
    """

    def __init__(self, *, before: bool) -> None:
        self.before = before  # wait before the real call (else after it, with its result)
        self.reached = asyncio.Event()
        self.release = asyncio.Event()


class GatedStorage:
    """The real storage; a call named in ``gates`` waits at its gate, once."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.gates: dict[str, Gate] = {}

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._inner, name)
        gate = self.gates.pop(name, None)
        if gate is None:
            return real

        async def held(*args: Any, **kwargs: Any) -> Any:
            if gate.before:
                gate.reached.set()
                await gate.release.wait()
            result = await real(*args, **kwargs)
            if not gate.before:
                gate.reached.set()
                await gate.release.wait()
            return result

        return held


@pytest.fixture
async def gated(server_config: ServerConfig) -> AsyncIterator[tuple[ParleyServer, GatedStorage]]:
    config = dataclasses.replace(
        server_config,
        unfinished_upload_seconds=UNFINISHED_SECONDS,
        upload_stall_seconds=20.0,
        # The test runs the purge itself, at the moment it chooses.
        file_purge_interval_seconds=3600.0,
    )
    storage = GatedStorage(await open_storage(None, config.data_dir))
    async with ParleyServer(config, storage=storage) as server:  # type: ignore[arg-type]
        yield server, storage


def _content(tmp_path: Path) -> tuple[Path, bytes, str]:
    data = hashlib.sha256(b"seed").digest() * (SIZE // 32)
    path = tmp_path / "notes.bin"
    path.write_bytes(data)
    return path, data, hashlib.sha256(data).hexdigest()


async def _file_connection(
    port: int, token: str, offset: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=insecure_context())
    writer.write(transfer.encode(transfer.Start(token=token, offset=offset)))
    return reader, writer, await _line(reader)


async def _line(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(reader.readline(), TIMEOUT_SECONDS)
    assert line, "the file connection closed without an answer"
    answer: dict[str, Any] = json.loads(line)
    return answer


async def _held(gate: Gate, work: Awaitable[int]) -> asyncio.Task[int]:
    """Start ``work`` and return once it waits at ``gate``."""

    async def run() -> int:
        return await work

    task = asyncio.create_task(run())
    await asyncio.wait_for(gate.reached.wait(), TIMEOUT_SECONDS)
    return task


async def _expired(server: ParleyServer, file_id: str) -> None:
    await asyncio.sleep(UNFINISHED_SECONDS + 0.3)
    record = await server.storage.file(file_id)
    assert record is not None and not record.complete


async def _user(server: ParleyServer) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    await client.login("Alice")
    return client


async def test_an_upload_finishing_while_the_purge_lists_it_is_kept(
    gated: tuple[ParleyServer, GatedStorage], tmp_path: Path
) -> None:
    """The purge read the list of expired files while an upload was under way; the upload
    then finished. The file the sender was told is stored must stay.
    """
    server, storage = gated
    path, data, digest = _content(tmp_path)
    alice = await _user(server)
    slot = await alice.share("#general", path.name, SIZE, digest)
    reader, writer, ready = await _file_connection(slot.port, slot.token, 0)
    assert ready["type"] == "ready"
    writer.write(data[: SIZE // 2])
    await writer.drain()
    await _expired(server, slot.file_id)

    gate = storage.gates["expired_files"] = Gate(before=False)
    assert server.files is not None
    purge = await _held(gate, server.files.purge())
    writer.write(data[SIZE // 2 :])
    done = await _line(reader)
    assert done["type"] == "done"
    writer.close()
    gate.release.set()
    await asyncio.wait_for(purge, TIMEOUT_SECONDS)

    record = await server.storage.file(slot.file_id)
    assert record is not None and record.complete
    saved = await download(alice, slot.file_id, tmp_path / "back")
    assert saved.read_bytes() == data
    await alice.close()


async def test_an_upload_resuming_while_the_purge_deletes_it_is_refused(
    gated: tuple[ParleyServer, GatedStorage], tmp_path: Path
) -> None:
    """The purge is deleting an expired upload when its sender comes back with a token taken
    earlier: the resumption is refused with what to do, rather than told "done" about a file
    that is deleted a moment later.
    """
    server, storage = gated
    path, data, digest = _content(tmp_path)
    alice = await _user(server)
    first = await alice.share("#general", path.name, SIZE, digest)
    reader, writer, _ = await _file_connection(first.port, first.token, 0)
    writer.write(data[: SIZE // 2])
    await writer.drain()
    writer.close()  # cut: the bytes are kept to resume
    await asyncio.sleep(0.3)
    resume = await alice.share("#general", path.name, SIZE, digest)
    assert (resume.file_id, resume.offset) == (first.file_id, SIZE // 2)
    await _expired(server, resume.file_id)

    gate = storage.gates["delete_file"] = Gate(before=True)
    assert server.files is not None
    purge = await _held(gate, server.files.purge())
    reader, writer, answer = await _file_connection(resume.port, resume.token, SIZE // 2)
    if answer["type"] == "ready":
        writer.write(data[SIZE // 2 :])
        answer = await _line(reader)
    writer.close()
    gate.release.set()
    assert await asyncio.wait_for(purge, TIMEOUT_SECONDS) == 1

    assert answer["type"] == "error", f"told {answer} about a file the purge then deleted"
    assert answer["code"] == "no-such-file"
    assert "share the file again" in answer["message"]
    assert await server.storage.file(resume.file_id) is None
    # Sharing it again works from the start.
    file_id = await upload(alice, path, "#general")
    saved = await download(alice, file_id, tmp_path / "back")
    assert saved.read_bytes() == data
    await alice.close()


async def test_the_purge_leaves_an_upload_under_way(
    gated: tuple[ParleyServer, GatedStorage], tmp_path: Path
) -> None:
    server, _ = gated
    path, data, digest = _content(tmp_path)
    alice = await _user(server)
    slot = await alice.share("#general", path.name, SIZE, digest)
    reader, writer, _ = await _file_connection(slot.port, slot.token, 0)
    writer.write(data[: SIZE // 2])
    await writer.drain()
    await _expired(server, slot.file_id)
    assert server.files is not None
    assert await server.files.purge() == 0  # its bytes are arriving
    writer.write(data[SIZE // 2 :])
    assert (await _line(reader))["type"] == "done"
    writer.close()
    assert await server.files.purge() == 0
    await alice.close()
