"""Limits that hold against many names from one place, over real TLS: room creation per user
and per address, ``rooms`` in pages that never outgrow the frame and slow-reader limits, and
private messages missed while offline delivered in pages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator

import pytest

from parley.config import ServerConfig
from parley.protocol import limits
from parley.server.app import ParleyServer
from parley.server.conversations import private_conversation
from parley.storage import NewMessage, Room
from support import NO_SHARED_BUDGETS, RawClient, insecure_context, raw_user

PASSWORD = "correct horse battery"


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    # The default limits: 10 new rooms an hour per user, 30 per address.
    config = dataclasses.replace(
        server_config, flood_burst_requests=1000, flood_debt_requests=2000, **NO_SHARED_BUDGETS
    )
    async with ParleyServer(config) as running:
        yield running


async def test_room_creation_is_limited_per_user_and_per_address(server: ParleyServer) -> None:
    users = [await raw_user(server.port, f"User{n}") for n in range(3)]
    for n in range(10):
        assert (await users[0].request("join", room=f"#a{n}"))["type"] == "room"
    refused = await users[0].request("join", room="#a10")
    assert refused["code"] == "not-permitted" and "new rooms" in refused["message"]
    # Joining rooms that exist is not creating them.
    assert (await users[0].request("part", room="#a0"))["type"] == "ok"
    assert (await users[0].request("join", room="#a0"))["type"] == "room"
    # Other names from the same address share the address's allowance of 30.
    for n in range(10):
        assert (await users[1].request("join", room=f"#b{n}"))["type"] == "room"
    for n in range(9):
        assert (await users[2].request("join", room=f"#c{n}"))["type"] == "room"
    newcomer = await raw_user(server.port, "Newcomer")
    assert (await newcomer.request("join", room="#d0"))["type"] == "room"
    assert (await newcomer.request("join", room="#d1"))["code"] == "not-permitted"
    assert (await newcomer.request("join", room="#a1"))["type"] == "room"
    # Server moderators are not limited.
    assert server.admin_password is not None
    admin = await raw_user(server.port, "admin", password=server.admin_password)
    for n in range(12):
        assert (await admin.request("join", room=f"#staff{n}"))["type"] == "room"
    assert await server.storage.room_count() == 1 + 30 + 12
    for client in (*users, newcomer, admin):
        await client.close()


async def test_rooms_come_in_pages_that_fit_however_many_there_are(server: ParleyServer) -> None:
    # Long topics of three-byte characters: all of them in one reply would be near 2 MB, over
    # both the client's frame limit and the 1 MiB a reader may fall behind.
    count = 1200
    for n in range(count):
        await server.storage.create_room(
            Room(key=f"#room{n:04}", name=f"#Room{n:04}", topic="\u20ac" * limits.MAX_TOPIC_CHARS)
        )
    client = await raw_user(server.port, "Reader")
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        client.last_id += 1
        client.send(type="rooms", id=client.last_id, after=after, limit=limits.MAX_LISTED_ROOMS)
        while True:
            line = await asyncio.wait_for(client.reader.readline(), 10)
            assert line, "connection closed while waiting for a rooms page"
            page = json.loads(line)
            if page.get("id") == client.last_id:
                break
        assert len(line) <= 300 * 1024, len(line)
        assert page["type"] == "rooms" and page["total"] == count + 1, page.get("code")
        seen += [room["room"] for room in page["rooms"]]
        pages += 1
        if not page.get("next"):
            break
        after = page["next"]
    assert pages > 1
    assert seen == sorted(seen, key=str.casefold) and len(seen) == len(set(seen)) == count + 1
    # A page after the last one is empty, not an error.
    assert (await client.request("rooms", after="#zzz"))["rooms"] == []
    await client.close()


async def test_a_rooms_page_refuses_bad_cursors_and_sizes(server: ParleyServer) -> None:
    client = await raw_user(server.port, "Reader")
    assert (await client.request("rooms", after="no hash"))["code"] == "invalid-room"
    for limit in (0, limits.MAX_LISTED_ROOMS + 1, "ten"):
        assert (await client.request("rooms", limit=limit))["code"] == "invalid-message"
    assert (await client.request("rooms", after="#" + "x" * 60))["code"] == "invalid-message"
    default = await client.request("rooms")
    assert [room["room"] for room in default["rooms"]] == ["#general"]
    assert "next" not in default
    await client.close()


async def _missed_by_bob(server: ParleyServer, count: int) -> None:
    """Bob has an account and is offline; Alice sends him ``count`` long private messages."""
    bob = await raw_user(server.port, "Bob")
    assert (await bob.request("register", password=PASSWORD))["type"] == "ok"
    await bob.close()
    alice = await raw_user(server.port, "Alice")
    text = "\u20ac" * limits.MAX_TEXT_CHARS  # 12 KB a message
    for n in range(count):
        sent = await alice.request("send", to="Bob", text=f"{n} {text}"[:4000], msg_id=f"m{n}")
        assert sent["type"] == "sent", sent
    await alice.close()


async def test_many_missed_private_messages_reach_a_slow_reader_whole(
    server: ParleyServer,
) -> None:
    count = 120  # about 1.4 MB: more than a reader may fall behind by
    await _missed_by_bob(server, count)
    bob = await RawClient.open(server.port)
    assert (await bob.try_login("Bob", password=PASSWORD))["type"] == "ok"
    received: list[int] = []
    while len(received) < count:
        frame = await bob.frame()
        if frame["type"] == "message":
            assert frame["history"] and frame["sender"] == "Alice"
            received.append(frame["seq"])
            await asyncio.sleep(0.005)  # reading slowly
    assert received == list(range(1, count + 1))
    assert (await bob.request("ping"))["type"] == "pong"
    await bob.close()
    # Each was marked read as it went out: the next login brings none again.
    bob = await raw_user(server.port, "Bob", password=PASSWORD)
    assert (await bob.request("ping"))["type"] == "pong"
    assert not [frame for frame in bob.events if frame["type"] == "message"]
    await bob.close()


async def test_missed_messages_not_yet_sent_wait_for_the_next_login(
    server: ParleyServer,
) -> None:
    count = 120
    await _missed_by_bob(server, count)
    # A reader with a small receive buffer that takes three messages and is gone: the server
    # cannot have sent everything by then.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=insecure_context(), server_hostname="localhost", limit=2**22
    )
    bob = RawClient(reader, writer)
    assert (await bob.try_login("Bob", password=PASSWORD))["type"] == "ok"
    first: set[int] = set()
    while len(first) < 3:
        frame = await bob.frame()
        if frame["type"] == "message":
            first.add(frame["seq"])
    writer.transport.abort()
    await asyncio.sleep(0.5)
    again = await RawClient.open(server.port)
    assert (await again.try_login("Bob", password=PASSWORD))["type"] == "ok"
    rest: list[int] = []
    while not rest or rest[-1] < count:
        frame = await again.frame()
        if frame["type"] == "message":
            rest.append(frame["seq"])
    # Nothing was lost: the second login brings everything after what had been sent to the
    # first, in order, each once; and that is more than the first login could take.
    assert rest == list(range(rest[0], count + 1))
    assert rest[0] > max(first)
    await again.close()


async def test_unread_lists_at_most_500_conversations_and_says_there_are_more(
    server: ParleyServer,
) -> None:
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("register", password=PASSWORD))["type"] == "ok"
    account = await server.storage.account("alice")
    assert account is not None
    # Every guest who writes starts a conversation of its own: 600 of them.
    await server.storage.append(
        [
            NewMessage(
                private_conversation(f"{n:032x}", account.id),
                f"Guest{n}",
                f"guest{n}",
                "Alice",
                "hi",
                "1",
                tuple(sorted((f"{n:032x}", account.id))),
            )
            for n in range(600)
        ]
    )
    reply = await alice.request("unread")
    assert reply["more"] is True and len(reply["conversations"]) == limits.MAX_LISTED_UNREAD
    assert len(json.dumps(reply)) < 256 * 1024
    assert {entry["to"] for entry in reply["conversations"]} <= {f"Guest{n}" for n in range(600)}
    await alice.close()
