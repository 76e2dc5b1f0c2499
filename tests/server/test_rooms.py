"""Rooms over real TLS: join (with history), part, rooms, topic, who, and hostile names."""

from __future__ import annotations

import pytest

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from support import raw_user


async def test_join_creates_a_room_and_others_see_the_arrival(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    room = await alice.request("join", room="#Python")
    assert (room["type"], room["room"], room["members"]) == ("room", "#Python", 1)
    await alice.event("joined", room="#Python", nick="Alice")
    # Names compare like nicknames: #python is the same room.
    assert (await bob.request("join", room="#python"))["room"] == "#Python"
    await alice.event("joined", room="#Python", nick="Bob")
    sent = await bob.request("send", to="#PYTHON", text="hello room", msg_id="m1")
    assert (sent["type"], sent["seq"]) == ("sent", 1)
    message = await alice.event("message", to="#Python")
    assert (message["sender"], message["text"], message["seq"]) == ("Bob", "hello room", 1)
    await alice.close()
    await bob.close()


async def test_a_joiner_gets_recent_history_then_live_without_duplicates(
    server: ParleyServer,
) -> None:
    alice = await raw_user(server.port, "Alice")
    await alice.request("join", room="#dev")
    for n in range(1, 4):
        await alice.request("send", to="#dev", text=f"early {n}", msg_id=f"e{n}")
    bob = await raw_user(server.port, "Bob")
    bob.send(type="join", id=7, room="#dev")
    alice.send(type="send", id=8, to="#dev", text="live", msg_id="live")
    reply = await bob.frame()
    while reply.get("id") != 7:
        assert reply["type"] != "message", reply  # nothing of #dev before the reply
        reply = await bob.frame()
    assert reply["type"] == "room"
    messages: list[dict[str, object]] = []
    while len(messages) < 4:
        frame = await bob.frame()
        if frame["type"] == "message":
            messages.append(frame)
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]
    # The live one may have been stored before the history was read: then it comes as history.
    assert [m.get("history", False) for m in messages][:3] == [True, True, True]
    await alice.close()
    await bob.close()


async def test_part_leaves_and_sending_there_is_refused(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    for client in (alice, bob):
        await client.request("join", room="#dev")
    assert (await bob.request("part", room="#dev"))["type"] == "ok"
    left = await alice.event("left", room="#dev", nick="Bob")
    assert left.get("reason", "") == ""
    refused = await bob.request("send", to="#dev", text="hi", msg_id="x")
    assert refused["code"] == "not-in-room"
    assert (await bob.request("part", room="#dev"))["code"] == "not-in-room"
    assert (await bob.request("send", to="#nowhere", text="hi", msg_id="y"))["code"] == (
        "no-such-room"
    )
    await alice.close()
    await bob.close()


async def test_rooms_lists_members_and_topics(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    await alice.request("join", room="#dev")
    assert (await alice.request("topic", room="#dev", text="Release on Friday"))["type"] == "ok"
    listing = await alice.request("rooms")
    rooms = {entry["room"]: entry for entry in listing["rooms"]}
    assert listing["total"] == 2
    assert rooms["#general"]["members"] == 1
    assert (rooms["#dev"]["members"], rooms["#dev"]["topic"]) == (1, "Release on Friday")
    await alice.close()


async def test_topic_is_set_by_operators_and_seen_by_the_room(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    await alice.request("join", room="#dev")
    await bob.request("join", room="#dev")
    hostile = '\'; DROP TABLE rooms; -- "quoted" \\ %s $1 \U0001f680 \u202e'
    assert (await alice.request("topic", room="#dev", text=hostile))["type"] == "ok"
    changed = await bob.event("topic", room="#dev")
    assert (changed["text"], changed["by"]) == (hostile, "Alice")
    assert (await bob.request("topic", room="#dev", text="mine now"))["code"] == "not-permitted"
    info = await bob.request("topic", room="#dev")
    assert (info["type"], info["topic"], info["topic_by"], info["members"]) == (
        "room",
        hostile,
        "Alice",
        2,
    )
    for bad in ("line\nbreak", "bell\x07", "x" * 501):
        assert (await alice.request("topic", room="#dev", text=bad))["code"] == "invalid-topic"
    await alice.close()
    await bob.close()


async def test_who_lists_a_rooms_members(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "bob")
    await alice.request("join", room="#dev")
    await bob.request("join", room="#dev")
    who = await alice.request("who", room="#dev")
    assert (who["type"], who["users"], who["total"]) == ("users", ["Alice", "bob"], 2)
    assert (await alice.request("who", room="#empty"))["code"] == "no-such-room"
    await alice.close()
    await bob.close()


@pytest.mark.parametrize(
    "name",
    ["general", "#", "#a b", "#" + "x" * 50, "#nul\x00", "#semi;colon", "#'quote", "##", ""],
)
async def test_bad_room_names_are_refused(server: ParleyServer, name: str) -> None:
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("join", room=name))["code"] == "invalid-room"
    # Still fine afterwards.
    assert (await alice.request("join", room="#ok"))["type"] == "room"
    await alice.close()


async def test_rooms_and_topics_survive_a_restart(server_config: ServerConfig) -> None:
    async with ParleyServer(server_config) as first:
        alice = await raw_user(first.port, "Alice")
        await alice.request("join", room="#Keep")
        await alice.request("topic", room="#keep", text="still here")
        await alice.request("send", to="#keep", text="remember me", msg_id="k1")
        await alice.close()
    async with ParleyServer(server_config) as second:
        bob = await raw_user(second.port, "Bob")
        room = await bob.request("join", room="#keep")
        assert (room["room"], room["topic"]) == ("#Keep", "still here")
        message = await bob.event("message", to="#Keep")
        assert (message["text"], message["seq"], message["history"]) == ("remember me", 1, True)
        await bob.close()


async def test_joining_while_the_last_member_leaves_still_gets_the_room(
    server: ParleyServer,
) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    for attempt in range(10):
        room = f"#race{attempt}"
        await alice.request("join", room=room)
        # Bob's join waits on storage while Alice, the only member, leaves.
        bob.send(type="join", id=9000 + attempt, room=room)
        alice.send(type="part", id=9100 + attempt, room=room)
        assert (await bob.expect_reply(9000 + attempt))["type"] == "room"
        sent = await bob.request("send", to=room, text="still here", msg_id=f"r{attempt}")
        assert sent["type"] == "sent"
        await alice.expect_reply(9100 + attempt)
    await alice.close()
    await bob.close()
