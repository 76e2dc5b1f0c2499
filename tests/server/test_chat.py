"""The server's happy paths, over real TLS on loopback, through the real client core."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from parley.client.core import ChatClient
from parley.config import ServerConfig
from parley.protocol.errors import RequestRefused
from parley.protocol.messages import Joined, Left, Message, Notice
from parley.server.app import ParleyServer
from support import RawClient, logged_in, next_of


async def test_room_message_reaches_everyone_with_sequence_numbers(server: ParleyServer) -> None:
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    assert (await next_of(alice, Joined)).nick == "Alice"
    assert (await next_of(alice, Joined)).nick == "Bob"

    first = await bob.send("#general", "Hi Alice!")
    second = await bob.send("#general", "again")
    assert (first.seq, second.seq) == (1, 2)
    assert second.ts >= first.ts

    got = await next_of(alice, Message)
    assert (got.to, got.sender, got.text, got.seq) == ("#general", "Bob", "Hi Alice!", 1)
    # The sender sees its own message too (other devices, and the echo confirms order).
    echo = await next_of(bob, Message)
    assert (echo.sender, echo.seq, echo.msg_id) == ("Bob", 1, got.msg_id)
    await alice.close()
    await bob.close()


async def test_private_message_reaches_only_its_recipient(server: ParleyServer) -> None:
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    carol = await logged_in(server.port, "Carol")

    sent = await alice.send("bob", "Hi Bob!")  # nicknames match case-insensitively
    assert sent.seq == 1
    got = await next_of(bob, Message)
    assert (got.to, got.sender, got.text) == ("Bob", "Alice", "Hi Bob!")

    await alice.send("#general", "public")
    # Carol's next message is the public one: the private one never reached her.
    assert (await next_of(carol, Message)).text == "public"
    # Private conversations have their own numbering.
    assert (await bob.send("Alice", "Hi back")).seq == 2
    for client in (alice, bob, carol):
        await client.close()


async def test_private_message_to_someone_offline_is_refused(server: ParleyServer) -> None:
    alice = await logged_in(server.port, "Alice")
    with pytest.raises(RequestRefused) as refused:
        await alice.send("Dave", "are you there?")
    assert refused.value.code == "no-such-user"
    with pytest.raises(RequestRefused) as refused:
        await alice.send("#nowhere", "hello?")
    assert refused.value.code == "no-such-room"
    await alice.close()


async def test_list_shows_who_is_online(server: ParleyServer) -> None:
    alice = await logged_in(server.port, "alice")
    bob = await logged_in(server.port, "Bob")
    users = await alice.list_users()
    assert (users.users, users.total) == (["alice", "Bob"], 2)
    await bob.bye()
    assert (await next_of(alice, Left)).nick == "Bob"
    assert (await alice.list_users()).users == ["alice"]
    await alice.close()


async def test_taken_or_invalid_nickname_is_refused_and_can_be_retried(
    server: ParleyServer,
) -> None:
    alice = await logged_in(server.port, "Alice")
    other = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    for attempt, code in [
        ("ALICE", "nick-taken"),
        ("ａｌｉｃｅ", "nick-taken"),
        ("no spaces", "invalid-nick"),
        ("x" * 33, "invalid-nick"),
        ("", "invalid-nick"),
    ]:
        with pytest.raises(RequestRefused) as refused:
            await other.login(attempt)
        assert refused.value.code == code, attempt
    assert (await other.login("Alicia")).nick == "Alicia"
    await alice.close()
    await other.close()


async def test_a_retried_message_is_stored_and_delivered_once(server: ParleyServer) -> None:
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    original = await alice.send("#general", "only once", msg_id="m-1")
    retry = await alice.send("#general", "only once", msg_id="m-1")
    assert retry.duplicate and (retry.seq, retry.ts) == (original.seq, original.ts)
    await alice.send("#general", "next", msg_id="m-2")
    texts = [(await next_of(bob, Message)).text for _ in range(2)]
    assert texts == ["only once", "next"]
    await alice.close()
    await bob.close()


async def test_leaving_tells_the_others(server: ParleyServer) -> None:
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    await bob.close()  # no bye: the connection just drops
    assert (await next_of(alice, Left)).nick == "Bob"
    # The nickname is free again.
    bob_again = await logged_in(server.port, "Bob")
    await bob_again.close()
    await alice.close()


async def test_ping_works_before_and_after_login(server: ParleyServer) -> None:
    raw = await RawClient.open(server.port)
    raw.send(type="hello", id=1, versions=[1, 99], client="test")
    welcome = await raw.expect("welcome", id=1, version=1)
    assert welcome["max_frame_bytes"] == 65536
    raw.send(type="ping", id=2)
    await raw.expect("pong", id=2)
    raw.send(type="nick", id=3, nick="Pinger")
    await raw.expect("ok", id=3, nick="Pinger")
    raw.send(type="ping", id=4)
    await raw.expect("pong", id=4)
    raw.send(type="bye", id=5)
    await raw.expect("ok", id=5)
    assert await raw.closed()


async def test_many_clients_all_receive_every_message(server: ParleyServer) -> None:
    clients = [await logged_in(server.port, f"user{i}") for i in range(30)]
    for i in range(10):
        await clients[i].send("#general", f"message {i}")
    for client in clients:
        texts = [(await next_of(client, Message)).text for _ in range(10)]
        assert texts == [f"message {i}" for i in range(10)]
    await asyncio.gather(*(client.close() for client in clients))


async def test_message_of_the_day_arrives_as_notices(server_config: ServerConfig) -> None:
    config = dataclasses.replace(server_config, motd="Welcome to Parley\nBe kind")
    async with ParleyServer(config) as server:
        alice = await logged_in(server.port, "Alice")
        notices = [(await next_of(alice, Notice)).text for _ in range(2)]
        assert notices == ["Welcome to Parley", "Be kind"]
        await alice.close()


async def test_shutdown_acknowledges_what_it_accepted_then_says_goodbye(
    server_config: ServerConfig,
) -> None:
    server = ParleyServer(server_config)
    await server.start()
    raw = await RawClient.open(server.port)
    await raw.login("Alice")
    raw.send_bytes(
        b"".join(
            b'{"type":"send","id":%d,"to":"#general","text":"m%d","msg_id":"%d"}\n' % (i, i, i)
            for i in range(100, 120)
        )
    )
    await raw.expect("message", text="m100")  # the server is reading them
    await server.stop()
    frames = []
    while (frame := await raw.frame())["type"] != "closing":
        frames.append(frame)
    assert frame["code"] == "server-shutdown"
    delivered = {f["msg_id"] for f in frames if f["type"] == "message"} | {"100"}
    acked = {str(f["id"]) for f in frames if f["type"] == "sent"}
    assert acked == delivered  # every accepted message was stored and acknowledged
    assert await raw.closed()
