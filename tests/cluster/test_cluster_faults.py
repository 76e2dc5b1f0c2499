"""Faults of a cluster under traffic: a node killed (its clients, behind HAProxy, reconnect to
another), a node stopped for ten seconds, Redis restarted. Every member ends with each message
once, in seq order, and nothing a sender was told is stored goes missing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cluster_support import Balanced, Cluster, OwnRedis, cluster_of, room_messages

from parley.protocol.messages import Sent
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


async def test_clients_of_a_killed_node_resume_on_another(cluster: Cluster, tmp_path: Path) -> None:
    cluster.balance("a", "b", "c")
    await asyncio.gather(*(cluster.start_node(name) for name in "abc"))
    await cluster.start_balancer()
    users = Balanced(cluster, tmp_path / "pins")
    try:
        writer = (await users.user("Writer", "#flow")).client
        # Round robin: one reader shares the writer's node, the others are on the other two.
        readers = [await users.user(f"Reader{i}", "#flow") for i in range(3)]
        victim = cluster.node_of("Writer")
        survivor = next(node for node in cluster.nodes.values() if node is not victim)
        assert victim in [cluster.node_of(f"Reader{i}") for i in range(3)]
        # A member connected straight to a node that stays up (not through the balancer).
        watcher = await cluster.user(survivor.port, "Watcher")
        assert (await watcher.request("join", room="#flow"))["type"] == "room"
        total = 3 * PHASE
        following = [
            asyncio.create_task(users.follow(r, "#flow", f"m{total - 1}")) for r in readers
        ]

        acked: dict[str, int] = {}
        for i in range(PHASE):
            acked[f"m{i}"] = (await writer.send("#flow", f"m{i}", msg_id=f"m{i}")).seq
        # Under traffic: these are in flight when the writer's node dies.
        flying = [f"m{i}" for i in range(PHASE, 2 * PHASE)]
        tasks = [asyncio.create_task(writer.send("#flow", text, msg_id=text)) for text in flying]
        await asyncio.sleep(0.05)
        cluster.kill(victim.name)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        unacked = []
        for text, result in zip(flying, results, strict=True):
            if isinstance(result, Sent):
                acked[text] = result.seq
            else:
                unacked.append(text)

        # Back through the balancer, to a node still up, and resumed where it stopped.
        writer = await users.back(writer, "node died")
        assert cluster.node_of("Writer") is not victim
        # What was not acknowledged is sent again under its msg_id: stored once whatever.
        for text in unacked:
            acked[text] = (await writer.send("#flow", text, msg_id=text)).seq
        # The last one is sent last, once all the others are stored: it ends the following.
        for i in range(2 * PHASE, total):
            acked[f"m{i}"] = (await writer.send("#flow", f"m{i}", msg_id=f"m{i}")).seq
        assert sorted(acked.values()) == list(range(1, total + 1))
        for shown in await asyncio.gather(*following):
            # Each reader, moved or not, was shown every message once, in order.
            assert [message.seq for message in shown] == list(range(1, total + 1))
            assert {message.text: message.seq for message in shown} == acked
        assert_in_order(await room_messages(watcher, "#flow", total), total)
        # The balancer's other nodes present the same certificate: nobody saw it change.
        assert len(users.pins.path.read_text().split()) == 2
    finally:
        await users.close()


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
