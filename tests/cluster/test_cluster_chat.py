"""Three nodes serve one chat: users on different nodes talk in rooms and privately, a name is
held once in the whole cluster, and room moderation on one node holds on the others.
"""

from __future__ import annotations

import asyncio

from cluster_support import Cluster, room_messages

from support import RawClient

SENDERS = 3
PER_SENDER = 1000


async def test_users_on_different_nodes_chat_in_rooms_and_privately(cluster: Cluster) -> None:
    a = await cluster.start_node("a")
    b, c = await asyncio.gather(cluster.start_node("b"), cluster.start_node("c"))
    alice = await cluster.user(a.port, "Alice")
    bob = await cluster.user(b.port, "Bob")
    carol = await cluster.user(c.port, "Carol")

    sent = await alice.request("send", to="#general", text="hello from a", msg_id="m1")
    assert sent["type"] == "sent", sent
    for reader in (bob, carol):
        message = await reader.event("message", to="#general", text="hello from a")
        assert (message["sender"], message["seq"]) == ("Alice", sent["seq"])

    reply = await bob.request("send", to="Carol", text="psst, Carol", msg_id="p1")
    assert reply["type"] == "sent", reply
    private = await carol.event("message", text="psst, Carol")
    assert private["sender"] == "Bob"
    reply = await carol.request("send", to="Bob", text="hi Bob", msg_id="p2")
    assert reply["type"] == "sent", reply
    answer = await bob.event("message", text="hi Bob")
    assert (answer["sender"], answer["seq"]) == ("Carol", private["seq"] + 1)

    # Rooms made on one node are joined from the others, and topics show everywhere.
    assert (await alice.request("join", room="#den"))["type"] == "room"
    assert (await carol.request("join", room="#den"))["type"] == "room"
    await alice.event("joined", room="#den", nick="Carol")
    assert (await alice.request("topic", room="#den", text="quiet please"))["type"] == "ok"
    await carol.event("topic", room="#den", text="quiet please")
    info = await carol.request("topic", room="#den")
    assert info["topic"] == "quiet please", info

    users = await carol.request("list")
    assert {"Alice", "Bob", "Carol"} <= set(users["users"]), users
    whois = await alice.request("whois", nick="carol")
    assert (whois["nick"], whois["online"]) == ("Carol", True), whois


async def test_a_nickname_is_held_once_in_the_cluster(cluster: Cluster) -> None:
    a = await cluster.start_node("a")
    b = await cluster.start_node("b")
    first = await cluster.user(a.port, "Alice")
    second = await cluster.connect(b.port)
    refused = await second.try_login("alice")
    assert (refused["type"], refused["code"]) == ("error", "nick-taken"), refused
    # A look-alike of it is held too (a capital I for the l).
    third = await cluster.connect(b.port)
    refused = await third.try_login("AIice")
    assert (refused["type"], refused["code"]) == ("error", "nick-taken"), refused
    assert "looks like Alice" in refused["message"]
    # Once the first leaves, the name is free on every node.
    await first.close()
    for _ in range(50):
        fourth = await cluster.connect(b.port)
        reply = await fourth.try_login("Alice")
        if reply["type"] == "ok":
            break
        await fourth.close()
        await asyncio.sleep(0.1)
    assert reply["type"] == "ok", reply


async def test_three_senders_on_three_nodes_reach_every_member_in_order(
    cluster: Cluster,
) -> None:
    a = await cluster.start_node("a")
    b, c = await asyncio.gather(cluster.start_node("b"), cluster.start_node("c"))
    ports = [a.port, b.port, c.port]
    senders = [await cluster.user(port, f"Sender{n}") for n, port in enumerate(ports)]
    readers = [await cluster.user(port, f"Reader{n}") for n, port in enumerate(ports)]
    for client in senders + readers:
        assert (await client.request("join", room="#load"))["type"] == "room"

    async def send_all(n: int, sender: RawClient) -> None:
        for i in range(PER_SENDER):
            sender.send(type="send", id=10_000 + i, to="#load", text=f"s{n}-{i}", msg_id=f"{n}-{i}")
        acks = 0
        while acks < PER_SENDER:
            frame = await sender.frame()
            if frame["type"] == "sent":
                acks += 1
            elif frame["type"] == "error":
                raise AssertionError(frame)
            else:
                sender.events.append(frame)

    await asyncio.gather(*(send_all(n, sender) for n, sender in enumerate(senders)))
    total = SENDERS * PER_SENDER
    for member in senders + readers:
        messages = await room_messages(member, "#load", total)
        assert [message["seq"] for message in messages] == list(range(1, total + 1))
        # Each sender's messages in the order it sent them.
        for n in range(SENDERS):
            mine = [m["text"] for m in messages if m["sender"] == f"Sender{n}"]
            assert mine == [f"s{n}-{i}" for i in range(PER_SENDER)]
    stamps = [m["ts"] for m in messages]
    assert stamps == sorted(stamps), "times went backwards within the room"


async def test_a_ban_on_one_node_keeps_the_user_out_on_the_others(cluster: Cluster) -> None:
    a = await cluster.start_node("a")
    b, c = await asyncio.gather(cluster.start_node("b"), cluster.start_node("c"))
    owner = await cluster.user(a.port, "Owner")
    watcher = await cluster.user(b.port, "Watcher")
    target = await cluster.user(c.port, "Target")
    for client in (owner, watcher, target):
        assert (await client.request("join", room="#den"))["type"] == "room"
    await owner.event("joined", room="#den", nick="Target")

    # A mute made on node A silences the target on node C...
    assert (await owner.request("mute", room="#den", nick="Target"))["type"] == "ok"
    await target.event("notice")
    for _ in range(50):
        refused = await target.request("send", to="#den", text="can I?", msg_id="x1")
        if refused["type"] == "error":
            break
        await asyncio.sleep(0.1)
    assert refused["code"] == "muted", refused
    assert (await owner.request("unmute", room="#den", nick="Target"))["type"] == "ok"
    await target.event("notice")

    # ...and a ban puts it out there, and keeps it out on every node.
    assert (await owner.request("ban", room="#den", nick="Target", reason="enough"))["type"] == "ok"
    left = await target.event("left", room="#den", nick="Target")
    assert (left["reason"], left["by"]) == ("banned", "Owner"), left
    await watcher.event("left", room="#den", nick="Target")
    refused = await target.request("join", room="#den")
    assert (refused["type"], refused["code"]) == ("error", "banned"), refused
    elsewhere = await cluster.user(b.port, "Target2")
    await target.close()
    await elsewhere.close()

    # A kick reaches a user on another node too.
    assert (await owner.request("kick", room="#den", nick="Watcher"))["type"] == "ok"
    left = await watcher.event("left", room="#den", nick="Watcher")
    assert left["reason"] == "kicked", left
