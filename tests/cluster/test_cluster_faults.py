"""Faults of a cluster under traffic: a node killed, a node stopped for ten seconds, Redis
restarted. Every member ends with each message once, in seq order, and nothing a sender was
told is stored goes missing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cluster_support import Cluster, OwnRedis, cluster_of, room_messages

from parley.client.core import ChatClient, Disconnected
from parley.client.reconnect import Attempt, Backoff, reconnect
from parley.protocol.messages import Message, Sent
from support import RawClient

# Messages sent in each phase of a test.
PHASE = 100


async def send_acked(sender: RawClient, room: str, texts: list[str]) -> dict[str, int]:
    """Send ``texts`` at once (msg_id = text) and wait for every ``sent``: text -> seq."""
    base = sender.last_id + 1
    sender.last_id += len(texts)
    for offset, text in enumerate(texts):
        sender.send(type="send", id=base + offset, to=room, text=text, msg_id=text)
    acked: dict[str, int] = {}
    while len(acked) < len(texts):
        frame = await sender.frame()
        if frame["type"] == "sent" and base <= frame["id"] < base + len(texts):
            acked[texts[frame["id"] - base]] = frame["seq"]
        elif frame["type"] == "error":
            raise AssertionError(frame)
        else:
            sender.events.append(frame)
    return acked


def assert_in_order(messages: list[dict[str, Any]], total: int) -> None:
    assert [message["seq"] for message in messages] == list(range(1, total + 1))


async def client_on(port: int, nick: str, room: str) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", port, pins=None)
    await client.login(nick)
    await client.join(room)
    return client


async def messages_of(client: ChatClient, room: str, until: int) -> list[Message]:
    """Live and caught-up messages of ``room`` from ``client`` up to seq ``until``, or until
    it is disconnected.
    """
    found: list[Message] = []
    while not found or found[-1].seq < until:
        event = await asyncio.wait_for(client.next_event(), 30)
        if isinstance(event, Disconnected):
            break
        if isinstance(event, Message) and event.to == room:
            found.append(event)
    return found


async def test_clients_of_a_killed_node_resume_on_another(cluster: Cluster) -> None:
    a = await cluster.start_node("a")
    b, c = await asyncio.gather(cluster.start_node("b"), cluster.start_node("c"))
    watcher = await cluster.user(c.port, "Watcher")
    assert (await watcher.request("join", room="#flow"))["type"] == "room"
    writer = await client_on(b.port, "Writer", "#flow")
    reader = await client_on(b.port, "Reader", "#flow")
    clients = [writer, reader]
    try:
        acked: dict[str, int] = {}
        for i in range(PHASE):
            sent = await writer.send("#flow", f"m{i}", msg_id=f"m{i}")
            acked[f"m{i}"] = sent.seq
        # Under traffic: these are in flight when node B dies.
        flying = [f"m{i}" for i in range(PHASE, 2 * PHASE)]
        tasks = [asyncio.create_task(writer.send("#flow", text, msg_id=text)) for text in flying]
        await asyncio.sleep(0.05)
        cluster.kill("b")
        results = await asyncio.gather(*tasks, return_exceptions=True)
        unacked = []
        for text, result in zip(flying, results, strict=True):
            if isinstance(result, Sent):
                acked[text] = result.seq
            else:
                unacked.append(text)
        before = await messages_of(reader, "#flow", 2 * PHASE)

        # Both come back through another node (as a balancer would send them), and resume.
        async def connect(conversations: Any) -> ChatClient:
            return await ChatClient.connect(
                "127.0.0.1", a.port, pins=None, conversations=conversations
            )

        attempts: list[Attempt] = []
        quick = Backoff(first_seconds=0.2, most_seconds=2.0)
        writer, _ = await reconnect(writer, connect, "node b died", attempts.append, quick)
        reader, _ = await reconnect(reader, connect, "node b died", attempts.append, quick)
        clients += [writer, reader]
        # What was not acknowledged is sent again under its msg_id: stored once whatever.
        for text in unacked:
            acked[text] = (await writer.send("#flow", text, msg_id=text)).seq
        for i in range(2 * PHASE, 3 * PHASE):
            acked[f"m{i}"] = (await writer.send("#flow", f"m{i}", msg_id=f"m{i}")).seq
        total = 3 * PHASE
        assert sorted(acked.values()) == list(range(1, total + 1))
        after = await messages_of(reader, "#flow", total)
        shown = before + after
        assert [message.seq for message in shown] == list(range(1, total + 1))
        assert {message.text: message.seq for message in shown} == acked
        # A member on a node that stayed up saw the same, once each.
        assert_in_order(await room_messages(watcher, "#flow", total), total)
    finally:
        for client in clients:
            await client.close()


async def test_a_node_stopped_for_ten_seconds_catches_up(cluster: Cluster) -> None:
    a = await cluster.start_node("a")
    b, c = await asyncio.gather(cluster.start_node("b"), cluster.start_node("c"))
    sender = await cluster.user(a.port, "Sender")
    paused = await cluster.user(b.port, "Paused")
    awake = await cluster.user(c.port, "Awake")
    for client in (sender, paused, awake):
        assert (await client.request("join", room="#flow"))["type"] == "room"
    await send_acked(sender, "#flow", [f"m{i}" for i in range(PHASE)])
    b.pause()
    try:
        await send_acked(sender, "#flow", [f"m{i}" for i in range(PHASE, 2 * PHASE)])
        assert_in_order(await room_messages(awake, "#flow", 2 * PHASE), 2 * PHASE)
        await asyncio.sleep(10)
    finally:
        b.resume()
    await send_acked(sender, "#flow", [f"m{i}" for i in range(2 * PHASE, 3 * PHASE)])
    total = 3 * PHASE
    assert_in_order(await room_messages(paused, "#flow", total), total)
    # Private messages still find a user on the node that was stopped.
    assert (await sender.request("send", to="Paused", text="still there?", msg_id="p1"))[
        "type"
    ] == "sent"
    await paused.event("message", text="still there?")


async def test_redis_restarted_mid_stream(tmp_path: Path) -> None:
    redis = OwnRedis(tmp_path / "redis")
    await redis.start()
    try:
        async for cluster in cluster_of(tmp_path, redis.url):
            a = await cluster.start_node("a")
            b = await cluster.start_node("b")
            sender = await cluster.user(a.port, "Sender")
            reader = await cluster.user(b.port, "Reader")
            for client in (sender, reader):
                assert (await client.request("join", room="#flow"))["type"] == "room"
            await send_acked(sender, "#flow", [f"m{i}" for i in range(PHASE)])
            assert_in_order(await room_messages(reader, "#flow", PHASE), PHASE)

            await redis.stop()
            # Storage still takes messages; the news of them waits for Redis.
            await send_acked(sender, "#flow", [f"m{i}" for i in range(PHASE, 2 * PHASE)])
            down = await reader.event("notice")
            assert "link to the other servers" in down["text"], down
            await redis.start()
            back = await reader.event("notice")
            assert "back" in back["text"], back
            await send_acked(sender, "#flow", [f"m{i}" for i in range(2 * PHASE, 3 * PHASE)])
            messages = await room_messages(reader, "#flow", 2 * PHASE)
            assert [m["seq"] for m in messages] == list(range(PHASE + 1, 3 * PHASE + 1))
            # Named once in each node's log, not once per message.
            for node in cluster.nodes.values():
                assert node.log().count("The bus is unreachable") == 1, node.log()
                assert "Traceback" not in node.log()
    finally:
        await redis.stop()
