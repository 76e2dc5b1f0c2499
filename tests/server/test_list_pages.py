"""Every list reply comes in pages (`list`, `who`, `files`, `unread`, like `rooms`): no reply
can outgrow the frame and slow-reader limits, and the client core reads every page, so users
still see the whole list. Over real TLS on loopback; hostile cursors next to the happy paths.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.client.core import ChatClient
from parley.config import ServerConfig
from parley.protocol import limits
from parley.protocol.messages import Message, Unread, UnreadCount, Users, encode
from parley.protocol.names import nick_key
from parley.server.app import ParleyServer
from parley.server.conversations import private_conversation
from parley.storage import FileRecord, NewMessage
from support import NO_SHARED_BUDGETS, RawClient, logged_in, next_of, raw_user

PASSWORD = "correct horse battery"
# The widest character a name may hold: 4 bytes of UTF-8.
WIDE = "\U0001d49c"


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    """A server whose flood control lets a test walk many pages quickly (it has its own tests)."""
    config = dataclasses.replace(
        server_config,
        flood_burst_requests=100_000,
        flood_rate_per_second=100_000.0,
        flood_debt_requests=100_000,
        **NO_SHARED_BUDGETS,
    )
    async with ParleyServer(config) as running:
        yield running


def test_the_largest_page_of_each_list_stays_under_the_reply_limit() -> None:
    # The longest names in the widest characters, the largest numbers, a full page.
    users = Users(
        id=2**31,
        users=[WIDE * limits.MAX_NICK_CHARS] * limits.MAX_LISTED_USERS,
        total=10**9,
        next=WIDE * limits.MAX_NICK_CHARS,
    )
    unread = Unread(
        id=2**31,
        conversations=[UnreadCount(to="#" + WIDE * (limits.MAX_ROOM_CHARS - 1), count=2**62,
                                   last_seq=2**62)] * limits.MAX_LISTED_UNREAD,
        more=True,
        next="x" * limits.MAX_CURSOR_CHARS,
    )  # fmt: skip
    for reply in (users, unread):
        # docs/protocol.md, section 10, promises under 140 KB.
        assert len(encode(reply)) < 140_000 < limits.MAX_LIST_REPLY_BYTES, type(reply).__name__
    assert limits.MAX_LIST_REPLY_BYTES * 4 <= limits.MAX_SERVER_FRAME_BYTES


async def _walk(client: RawClient, kind: str, field: str, **fields: Any) -> list[Any]:
    """Every item of a paged list, page by page; checks each page's size and that it ends."""
    items: list[Any] = []
    after = ""
    for _ in range(1000):
        client.last_id += 1
        client.send(type=kind, id=client.last_id, after=after, **fields)
        line = await client.reader.readline()
        while json.loads(line).get("id") != client.last_id:
            line = await client.reader.readline()
        assert len(line) < limits.MAX_LIST_REPLY_BYTES, len(line)
        page = json.loads(line)
        assert page["type"] == ("users" if kind in ("list", "who") else kind), page
        items += page[field]
        after = page.get("next", "")
        if not after:
            return items
    raise AssertionError("the pages never ended")


async def test_who_is_online_and_in_a_room_page_by_page(server: ParleyServer) -> None:
    names = [f"User{n:02}" for n in range(45)] + ["émile", "Zoë", "ALPHA"]
    people = await asyncio.gather(*(raw_user(server.port, name) for name in names))
    watcher = await raw_user(server.port, "Watcher")
    everyone = sorted([*names, "Watcher"], key=nick_key)

    listed = await _walk(watcher, "list", "users", limit=7)
    assert listed == everyone  # in key order, none twice, none left out
    members = await _walk(watcher, "who", "users", room="#general", limit=5)
    assert members == everyone
    first = await watcher.request("list", limit=7)
    assert (first["total"], len(first["users"]), first["next"]) == (49, 7, first["users"][-1])

    # The client core reads every page: users see everyone.
    client = await logged_in(server.port, "Reader")
    everyone = sorted([*everyone, "Reader"], key=nick_key)
    assert (await client.list_users(page_size=4)).users == everyone
    assert (await client.who("#general", page_size=6)).users == everyone
    assert (await client.list_users()).users == everyone

    # Hostile or stale cursors get a clear error or an empty page, never a crash.
    bad = await watcher.request("list", after="no spaces allowed")
    assert bad["type"] == "error" and bad["code"] == "invalid-nick", bad
    for limit in (0, limits.MAX_LISTED_USERS + 1, "ten"):
        bad = await watcher.request("who", room="#general", limit=limit)
        assert bad["type"] == "error" and bad["code"] == "invalid-message", bad
    last = await watcher.request("list", after=everyone[-1])
    assert (last["users"], last.get("next", "")) == ([], "")
    for each in (*people, watcher):
        await each.close()
    await client.close()


def _file(n: int, reader: str, name: str) -> FileRecord:
    return FileRecord(
        file_id=f"{n:032x}",
        sha256="a" * 64,
        name=name,
        size=n,
        sender_key=reader,
        sender=WIDE * limits.MAX_NICK_CHARS,
        conversation="#general",
        to="#" + WIDE * (limits.MAX_ROOM_CHARS - 1),
        created_ms=1_000_000 + n // 3,  # ties, which the cursor must get past
        expires_ms=2**62,
        quota_key=reader,
        complete=True,
    )


async def test_files_page_by_page_however_long_the_names(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("register", password=PASSWORD))["type"] == "ok"
    account = await server.storage.account("alice")
    assert account is not None
    # 230 files with the longest names of the widest characters: 200 of them would take
    # about 300 KB, more than one reply may hold.
    count = 230
    for n in range(count):
        name = f"{n:03}" + WIDE * (limits.MAX_FILE_NAME_CHARS - 3)
        await server.storage.add_file(_file(n, account.id, name), [])
    first = await alice.request("files")
    assert 0 < len(first["files"]) < limits.MAX_LISTED_FILES and first["next"], len(first["files"])
    listed = await _walk(alice, "files", "files")
    ids = [entry["file_id"] for entry in listed]
    assert sorted(ids) == sorted(f"{n:032x}" for n in range(count)) and len(set(ids)) == count
    assert ids == [f"{n:032x}" for n in sorted(range(count), key=lambda n: (-(n // 3), n))]
    small = await _walk(alice, "files", "files", limit=7)
    assert [entry["file_id"] for entry in small] == ids

    # Nothing here is anyone else's.
    bob = await raw_user(server.port, "Bob")
    assert (await bob.request("files"))["files"] == []
    await bob.close()
    for cursor in ("garbage", "12", ":abc", "-5:abc", "\u0661\u0662:abc"):
        bad = await alice.request("files", after=cursor)
        assert bad["type"] == "error" and bad["code"] == "invalid-message", (cursor, bad)
    too_long = await alice.request("files", after="1:" + "x" * limits.MAX_CURSOR_CHARS)
    assert too_long["code"] == "invalid-message", too_long
    await _leave(alice)

    # The client core reads every page: the user sees every file.
    client = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    await client.login("Alice", password=PASSWORD)
    assert [entry.file_id for entry in (await client.files()).files] == ids
    assert [entry.file_id for entry in (await client.files(page_size=50)).files] == ids
    await client.close()


async def _leave(client: RawClient) -> None:
    """Log out and wait until the server has closed: the account may log in again."""
    assert (await client.request("bye"))["type"] == "ok"
    assert await client.closed()


async def test_unread_page_by_page(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("register", password=PASSWORD))["type"] == "ok"
    account = await server.storage.account("alice")
    assert account is not None
    # Every guest who writes starts a conversation of its own: 1,100 of them (stored while
    # Alice is online and not sent to her: unread until she reads them).
    count = 1100

    async def one_each(msg_id: str) -> None:
        await server.storage.append(
            [
                NewMessage(
                    private_conversation(f"{n:032x}", account.id), f"Guest{n}", f"{n:032x}",
                    "Alice", "hi", msg_id, tuple(sorted((f"{n:032x}", account.id))),
                )
                for n in range(count)
            ]
        )  # fmt: skip

    await one_each("1")
    first = await alice.request("unread")
    assert len(first["conversations"]) == limits.MAX_LISTED_UNREAD
    assert first["more"] is True and first["next"]
    listed = await _walk(alice, "unread", "conversations")
    assert sorted(entry["to"] for entry in listed) == sorted(f"Guest{n}" for n in range(count))
    await _leave(alice)

    # Logging in, the client is sent what it missed (and it is marked read); one more from
    # each guest, and the client core reads every page of what is unread.
    client = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    await client.login("Alice", password=PASSWORD)
    for _ in range(count):
        await next_of(client, Message)
    for _ in range(100):  # the server stores its read markers in the background
        if not await server.storage.unread("alice", "", 1):
            break
        await asyncio.sleep(0.05)
    await one_each("2")
    unread = await client.unread()
    assert sorted(entry.to for entry in unread.conversations) == sorted(
        f"Guest{n}" for n in range(count)
    )
    assert not unread.more
    await client.close()
