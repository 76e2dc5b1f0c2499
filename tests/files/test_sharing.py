"""File sharing through the client core against a real server over TLS: upload, the
announcement, listing, download with the hash checked, resumption, and every hostile case.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.client.core import ChatClient
from parley.client.transfer import Progress, TransferFailed, download, upload
from parley.config import ServerConfig
from parley.protocol import transfer
from parley.protocol.errors import RequestRefused
from parley.protocol.files import parse_notice
from parley.protocol.messages import Message
from parley.server.app import ParleyServer
from support import NO_SHARED_BUDGETS, TIMEOUT_SECONDS, assert_still_serving


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    config = dataclasses.replace(
        server_config,
        max_file_bytes=8 * 1024 * 1024,
        file_quota_bytes=12 * 1024 * 1024,
        guest_file_quota_bytes_per_address=12 * 1024 * 1024,
        upload_stall_seconds=1.0,
        unfinished_upload_seconds=2.0,
        file_purge_interval_seconds=0.2,
        flood_burst_requests=1000,
        flood_debt_requests=2000,
        **NO_SHARED_BUDGETS,
    )
    async with ParleyServer(config) as running:
        yield running


async def _user(server: ParleyServer, nick: str) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    await client.login(nick)
    return client


async def _announcement(client: ChatClient) -> Message:
    while True:
        event = await asyncio.wait_for(client.next_event(), TIMEOUT_SECONDS)
        if isinstance(event, Message) and parse_notice(event.text) is not None:
            return event


def _file(path: Path, size: int, seed: int = 1) -> Path:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB of varied bytes
    with path.open("wb") as out:
        written = 0
        while written < size:
            piece = block[: size - written]
            out.write(piece)
            written += len(piece)
    return path


async def test_a_private_file_goes_to_its_recipient_whole(
    server: ParleyServer, tmp_path: Path
) -> None:
    alice, bob = await _user(server, "Alice"), await _user(server, "Bob")
    source = _file(tmp_path / "report.pdf", 3 * 1024 * 1024 + 17)
    seen: list[Progress] = []
    file_id = await upload(alice, source, "Bob", seen.append)
    assert seen[-1].done == seen[-1].total == source.stat().st_size

    notice = parse_notice((await _announcement(bob)).text)
    assert notice is not None and (notice.id, notice.name) == (file_id, "report.pdf")
    listed = await bob.files()
    assert [entry.file_id for entry in listed.files] == [file_id]
    assert listed.files[0].sender == "Alice"

    downloads = tmp_path / "bob"
    downloads.mkdir()
    saved = await download(bob, file_id, downloads)
    assert saved == downloads / "report.pdf"
    assert saved.read_bytes() == source.read_bytes()
    again = await download(bob, file_id, downloads)  # never over an existing file
    assert again == downloads / "report (1).pdf"
    assert sorted(p.name for p in downloads.iterdir()) == ["report (1).pdf", "report.pdf"]

    # Nobody else can see or fetch it; the id is not a counter to guess.
    carol = await _user(server, "Carol")
    assert (await carol.files()).files == []
    with pytest.raises(RequestRefused, match="no such file"):
        await carol.get_file(file_id)
    for client in (alice, bob, carol):
        await client.close()


async def test_a_room_file_reaches_its_members_and_is_stored_once(
    server: ParleyServer, tmp_path: Path
) -> None:
    alice, bob = await _user(server, "Alice"), await _user(server, "Bob")
    source = _file(tmp_path / "same.bin", 200_000)
    first = await upload(alice, source, "#general")
    second = await upload(bob, source, "#general")
    assert first != second
    blobs = list((server.config.data_dir / "files" / "blobs").rglob("*"))
    assert len([path for path in blobs if path.is_file()]) == 1  # identical bytes, once
    assert {entry.file_id for entry in (await alice.files("#general")).files} == {first, second}
    await alice.delete_file(first)
    assert [entry.file_id for entry in (await bob.files()).files] == [second]
    with pytest.raises(RequestRefused, match="no such file"):
        await bob.delete_file(first)  # already gone; and nobody deletes another's file
    saved = await download(alice, second, tmp_path, "copy.bin")
    assert saved.read_bytes() == source.read_bytes()
    await alice.close()
    await bob.close()


async def test_a_room_file_is_for_its_account_members_also_those_offline(
    server: ParleyServer, tmp_path: Path
) -> None:
    # Carol (an account) is a member of #dev but offline when Alice shares into it: as with
    # the room's history, the file is hers to fetch once back. Dave, an account that is not a
    # member, and a guest who joins later, get nothing.
    password = "correct horse battery"
    carol = await _user(server, "Carol")
    await carol.register(password)
    await carol.join("#dev")
    dave = await _user(server, "Dave")
    await dave.register(password)
    await carol.close()
    alice = await _user(server, "Alice")
    await alice.join("#dev")
    file_id = await upload(alice, _file(tmp_path / "plan.txt", 1000), "#dev")

    carol = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    await carol.login("Carol", password=password)
    assert [entry.file_id for entry in (await carol.files("#dev")).files] == [file_id]
    saved = await download(carol, file_id, tmp_path / "carol")
    assert saved.read_bytes() == (tmp_path / "plan.txt").read_bytes()
    late = await _user(server, "Late")
    await late.join("#dev")
    for outsider in (dave, late):
        assert not (await outsider.files()).files
        with pytest.raises(RequestRefused, match="no such file"):
            await download(outsider, file_id, tmp_path / "outsider")
    # Carol leaves the room: its files are no longer hers.
    await carol.part("#dev")
    assert not (await carol.files()).files
    for client in (alice, carol, dave, late):
        await client.close()


@pytest.mark.parametrize(
    ("offered", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("C:\\Windows\\evil.exe", "evil.exe"),
        ("nul\x00byte.txt", "nul_byte.txt"),
        ("line\nbreak\x1b[31m.txt", "line_break_[31m.txt"),
        ("CON", "_CON"),
        ("aux.txt", "_aux.txt"),
        ("invoice\u202efdp.exe", "invoice_fdp.exe"),
        ("x" * 10_000 + ".pdf", "x" * 251 + ".pdf"),
    ],
)
async def test_hostile_names_are_cleaned_before_anyone_sees_them(
    server: ParleyServer, tmp_path: Path, offered: str, kept: str
) -> None:
    alice = await _user(server, "Alice")
    data = b"hello"
    slot = await alice.share("#general", offered, len(data), hashlib.sha256(data).hexdigest())
    assert slot.name == kept
    await alice.close()


@pytest.mark.parametrize("offered", ["..", "...", "/", "   ", "\x00\x01"])
async def test_a_name_with_nothing_left_is_refused(server: ParleyServer, offered: str) -> None:
    alice = await _user(server, "Alice")
    with pytest.raises(RequestRefused, match="usable name"):
        await alice.share("#general", offered, 5, "0" * 64)
    await alice.ping()  # the connection goes on
    await alice.close()


async def _raw_upload(server: ParleyServer, token: str, data: bytes) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    assert server.files is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.files.port, ssl=context)
    writer.write(transfer.encode(transfer.Start(token=token)))
    ready = await reader.readline()
    writer.write(data)
    answer = await asyncio.wait_for(reader.read(), TIMEOUT_SECONDS)
    writer.close()
    return ready + answer


async def test_lying_about_the_size_or_hash_leaves_nothing_behind(server: ParleyServer) -> None:
    alice = await _user(server, "Alice")
    data = b"x" * 1000
    digest = hashlib.sha256(data).hexdigest()
    slot = await alice.share("#general", "short.txt", 100, digest)
    answer = await _raw_upload(server, slot.token, data)
    assert b"More bytes than the declared size" in answer
    slot = await alice.share("#general", "bad.txt", len(data), "f" * 64)
    answer = await _raw_upload(server, slot.token, data)
    assert b"do not have the SHA-256 declared" in answer
    partial = server.config.data_dir / "files" / "partial"
    assert list(partial.iterdir()) == []
    assert (await alice.files()).files == []
    # A used token does not open a second connection.
    answer = await _raw_upload(server, slot.token, data)
    assert b"unknown, used or expired" in answer
    await alice.close()


async def test_limits_size_quota_and_uploads_in_progress(server: ParleyServer) -> None:
    alice = await _user(server, "Alice")
    with pytest.raises(RequestRefused, match="at most"):
        await alice.share("#general", "big.iso", 9 * 1024 * 1024, "a" * 64)
    for n in range(3):
        await alice.share("#general", f"part{n}.bin", 1024, f"{n:064x}")
    with pytest.raises(RequestRefused, match="At most 3 uploads"):
        await alice.share("#general", "fourth.bin", 1024, "e" * 64)
    bob = await _user(server, "Bob")
    await bob.share("#general", "a.bin", 7 * 1024 * 1024, "b" * 64)
    with pytest.raises(RequestRefused, match="quota"):
        await bob.share("#general", "b.bin", 6 * 1024 * 1024, "c" * 64)
    with pytest.raises(RequestRefused, match="No user named"):
        await bob.share("nobody", "c.bin", 10, "d" * 64)
    with pytest.raises(RequestRefused, match="not in #elsewhere: join it first"):
        await bob.share("#elsewhere", "c.bin", 10, "d" * 64)
    await alice.close()
    await bob.close()


async def test_a_stalled_upload_is_cut_off_then_freed(server: ParleyServer) -> None:
    alice = await _user(server, "Alice")
    data = os.urandom(4096)
    slot = await alice.share("#general", "stall.bin", 10_000, hashlib.sha256(data).hexdigest())
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    assert server.files is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.files.port, ssl=context)
    writer.write(transfer.encode(transfer.Start(token=slot.token)) + data)
    await reader.readline()
    assert await asyncio.wait_for(reader.read(), 5.0) == b""  # closed for stalling
    writer.close()
    partial = server.config.data_dir / "files" / "partial" / slot.file_id
    assert partial.stat().st_size == 4096  # kept a while, to resume
    for _ in range(50):  # freed once the unfinished upload expires (2 s here)
        if not partial.exists():
            break
        await asyncio.sleep(0.2)
    assert not partial.exists()
    assert await server.storage.file(slot.file_id) is None
    await alice.close()


async def test_an_interrupted_upload_and_download_resume(
    server: ParleyServer, tmp_path: Path
) -> None:
    alice, bob = await _user(server, "Alice"), await _user(server, "Bob")
    source = _file(tmp_path / "big.bin", 2 * 1024 * 1024, seed=7)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    size = source.stat().st_size
    # Half the bytes, then the connection drops.
    slot = await alice.share("Bob", "big.bin", size, digest)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    assert server.files is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.files.port, ssl=context)
    writer.write(transfer.encode(transfer.Start(token=slot.token)))
    await reader.readline()
    writer.write(source.read_bytes()[: size // 2])
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.3)
    resumed = await alice.share("Bob", "big.bin", size, digest)
    assert (resumed.file_id, resumed.offset) == (slot.file_id, size // 2)
    seen: list[Progress] = []
    assert await upload(alice, source, "Bob", seen.append) == slot.file_id
    assert seen[0].done == size // 2  # it started where the server stopped

    # A download cut halfway leaves only its .part file; the next one continues it.
    folder = tmp_path / "bob"
    folder.mkdir()
    partial = folder / f".big.bin.{slot.file_id[:12]}.part"
    partial.write_bytes(source.read_bytes()[: size // 3])
    seen.clear()
    saved = await download(bob, slot.file_id, folder, progress=seen.append)
    assert seen[0].done == size // 3
    assert saved.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["big.bin"]
    await alice.close()
    await bob.close()


async def test_a_damaged_download_is_removed_not_kept(server: ParleyServer, tmp_path: Path) -> None:
    alice = await _user(server, "Alice")
    source = _file(tmp_path / "doc.txt", 50_000)
    file_id = await upload(alice, source, "#general")
    record = await server.storage.file(file_id)
    assert record is not None and server.files is not None
    blob = server.config.data_dir / "files" / "blobs" / record.sha256[:2] / record.sha256
    blob.write_bytes(b"tampered" + blob.read_bytes()[8:])
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(TransferFailed, match="damaged"):
        await download(alice, file_id, folder)
    assert list(folder.iterdir()) == []
    await alice.close()


async def test_a_blob_missing_from_the_store_is_refused_and_logged(
    server: ParleyServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A shared file store that lost a file (a node that cannot see the mount, a restore that
    # left it out): the download is refused, named in the log, and nothing else is disturbed.
    alice = await _user(server, "Alice")
    source = _file(tmp_path / "doc.txt", 5_000)
    file_id = await upload(alice, source, "#general")
    record = await server.storage.file(file_id)
    assert record is not None
    blob = server.config.data_dir / "files" / "blobs" / record.sha256[:2] / record.sha256
    blob.unlink()
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(TransferFailed, match="content is missing"):
        await download(alice, file_id, folder)
    assert list(folder.iterdir()) == []
    assert f"The bytes of file {file_id} are missing" in caplog.text
    await alice.close()
    await assert_still_serving(server.port)


async def test_users_cannot_forge_a_file_announcement(server: ParleyServer) -> None:
    alice = await _user(server, "Alice")
    fake = '/file {"id":"' + "a" * 32 + '","name":"x","size":1,"sha256":"' + "b" * 64 + '"}'
    with pytest.raises(RequestRefused, match="only the server writes them"):
        await alice.send("#general", fake)
    await alice.close()


async def test_a_full_disk_refuses_the_upload_and_frees_it(
    server: ParleyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from parley.server import file_streams

    class FullDisk:
        """os, except that writing finds no space left."""

        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def write(fd: int, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_streams, "os", FullDisk())
    alice = await _user(server, "Alice")
    source = _file(tmp_path / "a.bin", 300_000)
    with pytest.raises(TransferFailed, match="no room for the file"):
        await upload(alice, source, "#general")
    assert list((server.config.data_dir / "files" / "partial").iterdir()) == []
    assert (await alice.files()).files == []
    monkeypatch.undo()
    await upload(alice, source, "#general")  # space again: it works
    await alice.close()


@pytest.mark.parametrize(
    ("first", "answer"),
    [
        (b"x" * 10_000, b"bad-frame"),  # no line end within the limit
        (b"GET / HTTP/1.1\n", b"bad-frame"),
        (b'{"type":"start","token":""}\n', b"invalid-message"),
        (b'{"type":"start","token":"guess"}\n', b"unknown, used or expired"),
    ],
)
async def test_a_file_connection_that_does_not_start_right_is_refused(
    server: ParleyServer, first: bytes, answer: bytes
) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    assert server.files is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.files.port, ssl=context)
    writer.write(first)
    assert answer in await asyncio.wait_for(reader.read(), TIMEOUT_SECONDS)
    writer.close()
    alice = await _user(server, "Alice")  # the server goes on
    await alice.ping()
    await alice.close()
