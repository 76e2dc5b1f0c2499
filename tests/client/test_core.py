"""The client core's half of the no-duplicates contract: a message whose seq was seen is dropped,
and a reconnecting client catches up with no gap, no duplicate and nothing out of order.

A scripted server (frames in, frames out, no socket) pins down the orderings a real server
produces only by chance; the real server over TLS checks the whole path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Callable
from typing import Any, cast

import pytest

from parley.client.conversations import Conversations
from parley.client.core import (
    ChatClient,
    ClientEvent,
    ConnectionLost,
    Disconnected,
    HistoryReloaded,
    ServerIdentity,
)
from parley.config import ServerConfig
from parley.protocol.messages import (
    History,
    HistoryPage,
    Join,
    Message,
    Ok,
    Ping,
    Pong,
    Request,
    RoomInfo,
    ServerFrame,
    decode_request,
    encode,
)
from parley.server.app import ParleyServer
from support import TIMEOUT_SECONDS

Script = Callable[[Request], list[ServerFrame]]


class ScriptedServer:
    """The server end of a connection: each request is answered by ``script``; frames can be
    pushed at any time. Stands in for the socket's writer too.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.reader = asyncio.StreamReader()
        self.requests: list[Request] = []

    def push(self, *frames: ServerFrame) -> None:
        for frame in frames:
            self.reader.feed_data(encode(frame))

    # The StreamWriter methods the client uses.
    def write(self, data: bytes) -> None:
        for line in data.splitlines():
            request = decode_request(line)
            self.requests.append(request)
            self.push(*self.script(request))

    def close(self) -> None:
        if not self.reader.at_eof():
            self.reader.feed_eof()

    async def wait_closed(self) -> None:
        return None

    def client(self, conversations: Conversations | None = None) -> ChatClient:
        identity = ServerIdentity("scripted:1", "", False, None)
        return ChatClient(self.reader, cast(Any, self), identity, conversations)


def _message(to: str, seq: int, sender: str = "Bob", history: bool = False) -> Message:
    return Message(
        to=to, sender=sender, text=f"{to} {seq}", seq=seq, ts=0, msg_id=f"{sender}{seq}",
        history=history,
    )  # fmt: skip


def _answers(**extra: Callable[[Any], list[ServerFrame]]) -> Script:
    def script(request: Request) -> list[ServerFrame]:
        kind = type(request).__name__
        if kind in extra:
            return extra[kind](request)
        if isinstance(request, Ping):
            return [Pong(id=request.id)]
        return [Ok(id=request.id)]

    return script


async def _drain(client: ChatClient) -> list[ClientEvent]:
    """Every event queued so far (the client's own tasks have run)."""
    await asyncio.sleep(0.01)
    events = []
    while not client._events.empty():
        events.append(await client.next_event())
    return events


def _seqs(events: list[ClientEvent]) -> list[tuple[str, int]]:
    return [(event.to, event.seq) for event in events if isinstance(event, Message)]


async def test_a_message_seen_before_is_dropped() -> None:
    server = ScriptedServer(_answers())
    client = server.client()
    server.push(
        Ok(id=99, nick="Alice"),  # logged in (as far as the client's bookkeeping goes)
        _message("#general", 1),
        _message("#general", 2),
        _message("#general", 2),
        _message("Alice", 1),  # another conversation: its own numbering
        _message("#general", 1, history=True),
        _message("#general", 3),
    )
    assert _seqs(await _drain(client)) == [
        ("#general", 1),
        ("#general", 2),
        ("Alice", 1),
        ("#general", 3),
    ]
    await client.close()


async def test_joining_a_room_seen_before_fills_the_gap_once_and_in_order() -> None:
    seen = Conversations()
    for seq in (1, 2):
        seen.accept("#dev", "#dev", seq)

    def join(request: Join) -> list[ServerFrame]:
        # The room's latest messages follow the reply, and a live one right after.
        latest = [_message("#dev", seq, history=True) for seq in (5, 6, 7)]
        return [RoomInfo(id=request.id, room="#dev", topic="", topic_by="", members=2), *latest]

    def history(request: History) -> list[ServerFrame]:
        assert request.to == "#dev"
        if request.after == 2:
            server.push(_message("#dev", 8))  # live, while the gap is being fetched
            page = [_message("#dev", seq, history=True) for seq in (3, 4, 5)]
            return [HistoryPage(id=request.id, to="#dev", messages=page, more=True)]
        assert request.after == 5
        page = [_message("#dev", seq, history=True) for seq in (6, 7, 8)]
        return [HistoryPage(id=request.id, to="#dev", messages=page)]

    server = ScriptedServer(_answers(Join=join, History=history))
    client = server.client(seen)
    info = await client.join("#dev")
    assert info.room == "#dev" and client.rooms["#dev"] == "#dev"
    assert [seq for _, seq in _seqs(await _drain(client))] == [3, 4, 5, 6, 7, 8]
    await client.close()


async def test_catch_up_holds_live_messages_back_until_the_missed_ones_are_out() -> None:
    seen = Conversations()
    seen.accept("#general", "#general", 10)
    seen.accept("bob", "Bob", 4)

    def history(request: History) -> list[ServerFrame]:
        if request.to == "#general":
            server.push(_message("#general", 13))  # arrives before the reply
            page = [_message("#general", seq, history=True) for seq in (11, 12, 13)]
        else:
            page = [_message("Alice", 5, history=True), _message("Bob", 6, "Alice", True)]
        return [HistoryPage(id=request.id, to=request.to, messages=page)]

    server = ScriptedServer(_answers(History=history))
    client = server.client(seen)
    server.push(Ok(id=99, nick="Alice"))
    await _drain(client)
    assert await client.catch_up() == 5
    assert _seqs(await _drain(client)) == [
        ("#general", 11),
        ("#general", 12),
        ("#general", 13),
        ("Alice", 5),
        ("Bob", 6),
    ]
    asked = [(r.to, r.after) for r in server.requests if isinstance(r, History)]
    assert asked == [("#general", 10), ("Bob", 4)]
    await client.close()


# --- against the real server -----------------------------------------------------------------


async def _connect(server: ParleyServer, seen: Conversations | None = None) -> ChatClient:
    return await ChatClient.connect("127.0.0.1", server.port, pins=None, conversations=seen)


async def _messages_until(client: ChatClient, last_text: str) -> list[Message]:
    """Message events up to the one with ``last_text``, and a check that none follows it."""
    messages: list[Message] = []
    while not messages or messages[-1].text != last_text:
        event = await asyncio.wait_for(client.next_event(), TIMEOUT_SECONDS)
        assert not isinstance(event, Disconnected), event
        if isinstance(event, Message):
            messages.append(event)
    await client.ping()
    assert not _seqs(await _drain(client))
    return messages


def _roomy(config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(config, flood_burst_requests=1000, flood_debt_requests=2000)


async def test_a_guest_rejoining_sees_every_missed_message_once(
    server_config: ServerConfig,
) -> None:
    async with ParleyServer(_roomy(server_config)) as server:
        bob = await _connect(server)
        await bob.login("Bob")
        await bob.join("#dev")
        alice = await _connect(server)
        await alice.login("Alice")
        await alice.join("#dev")
        for n in range(1, 4):
            await bob.send("#dev", f"before {n}")
        before = await _messages_until(alice, "before 3")
        assert [m.seq for m in before] == [1, 2, 3]
        seen = alice.conversations
        await alice.close()

        # More than a join's history (50) while away: the join alone would leave a gap.
        for n in range(1, 71):
            await bob.send("#dev", f"away {n}")
        alice = await _connect(server, seen)
        await alice.login("Alice")
        await alice.join("#dev")
        await bob.send("#dev", "live")
        after = await _messages_until(alice, "live")
        assert [m.seq for m in after] == list(range(4, 75))
        assert after[-1].history is False
        await alice.close()
        await bob.close()


async def test_an_account_catches_up_on_rooms_and_private_messages(
    server_config: ServerConfig,
) -> None:
    async with ParleyServer(_roomy(server_config)) as server:
        alice = await _connect(server)
        await alice.login("Alice")
        await alice.register("correct horse battery")
        await alice.join("#dev")
        bob = await _connect(server)
        await bob.login("Bob")
        await bob.join("#dev")
        await bob.send("#dev", "room 1")
        await bob.send("Alice", "private 1")
        await _messages_until(alice, "private 1")
        seen, token = alice.conversations, alice.token
        await alice.close()

        for n in range(2, 61):
            await bob.send("#dev", f"room {n}")
        await bob.send("Alice", "private 2")
        alice = await _connect(server, seen)
        ok = await alice.login("Alice", token=token)
        assert ok.rooms == ["#general", "#dev"] and ok.token == ""
        assert alice.token == token and alice.is_account
        await alice.catch_up()
        await bob.send("#dev", "live")
        messages = await _messages_until(alice, "live")
        texts = [m.text for m in messages]
        # The private message kept while away comes at login; the room's, from catch_up.
        assert texts == ["private 2", *(f"room {n}" for n in range(2, 61)), "live"]
        await alice.close()
        await bob.close()


async def test_away_and_whois(server: ParleyServer) -> None:
    import pytest

    from parley.protocol.errors import RequestRefused

    alice = await _connect(server)
    await alice.login("Alice")
    bob = await _connect(server)
    await bob.login("Bob")
    await alice.away("gone for lunch")
    info = await bob.whois("alice")
    assert (info.nick, info.online, info.account, info.role) == ("Alice", True, False, "")
    assert (info.away, info.rooms) == ("gone for lunch", ["#general"])
    assert info.connected_ms > 0
    assert (await bob.send("Alice", "lunch?")).away == "gone for lunch"
    await alice.away()
    assert (await bob.whois("Alice")).away == ""
    assert (await bob.send("Alice", "back?")).away == ""
    with pytest.raises(RequestRefused) as refused:
        await alice.away("\x1b[2J")
    assert refused.value.code == "invalid-text"
    with pytest.raises(RequestRefused) as unknown:
        await alice.whois("Nobody")
    assert unknown.value.code == "no-such-user"
    await alice.close()
    await bob.close()


async def test_resume_after_a_restart_puts_an_account_back_with_nothing_lost_or_doubled(
    server_config: ServerConfig,
) -> None:
    first = ParleyServer(_roomy(server_config))
    await first.start()
    config = dataclasses.replace(_roomy(server_config), port=first.port)
    alice = await _connect(first)
    await alice.login("Alice")
    await alice.register("correct horse battery")
    await alice.join("#dev")
    bob = await _connect(first)
    await bob.login("Bob")
    await bob.join("#dev")
    await bob.send("#dev", "room 1")
    await bob.send("Alice", "private 1")
    await _messages_until(alice, "private 1")
    await bob.close()
    await first.stop()  # Alice's connection is lost with it
    while not isinstance(await alice.next_event(), Disconnected):
        pass
    assert set(alice.rooms) == {"#general", "#dev"}  # the shutdown's `left` is not a part

    async with ParleyServer(config) as second:
        bob = await _connect(second)
        await bob.login("Bob")
        await bob.join("#dev")
        for n in range(2, 61):
            await bob.send("#dev", f"room {n}")
        await bob.send("Alice", "private 2")
        again = await _connect(second, alice.conversations)
        sending = asyncio.create_task(bob.send("#dev", "during the resume"))
        assert await again.resume(alice) == []
        await sending
        await bob.send("#dev", "live")
        messages = await _messages_until(again, "live")
        # Each conversation in order; between conversations, any order.
        assert [m.text for m in messages if m.to == "Alice"] == ["private 2"]
        room = [m.text for m in messages if m.to == "#dev"]
        assert room.count("during the resume") == 1
        room.remove("during the resume")  # before or after the missed ones: both are right
        assert room == [*(f"room {n}" for n in range(2, 61)), "live"]
        seqs = [m.seq for m in messages if m.to == "#dev"]
        assert seqs == sorted(seqs)
        assert again.is_account and set(again.rooms) == {"#general", "#dev"}
        await again.close()
        await bob.close()


async def test_a_resume_across_a_raised_history_epoch_reloads_even_after_a_false_start(
    server_config: ServerConfig,
) -> None:
    config = dataclasses.replace(_roomy(server_config), sqlite_synchronous="normal")
    first = ParleyServer(config)
    await first.start()
    config = dataclasses.replace(config, port=first.port)
    alice = await _connect(first)
    await alice.login("Alice")
    await alice.register("correct horse battery")
    await alice.join("#dev")
    bob = await _connect(first)
    await bob.login("Bob")
    await bob.register("another horse battery")  # his private conversation outlives him
    await bob.join("#dev")
    for text in ("kept", "lost 1", "lost 2"):
        await bob.send("#dev", text)
    await bob.send("Alice", "private")
    await _messages_until(alice, "private")
    await bob.close()
    await first.stop()
    while not isinstance(await alice.next_event(), Disconnected):
        pass
    # As after a power cut under "normal": the run never recorded its stop, and #dev's last
    # two messages are gone.
    db = sqlite3.connect(config.data_dir / "parley.sqlite3")
    with db:
        db.execute("UPDATE history_epoch SET running = 'normal'")
        db.execute("DELETE FROM messages WHERE conversation = '#dev' AND seq > 1")
        db.execute("UPDATE conversations SET last_seq = 1 WHERE id = '#dev'")
    db.close()

    async with ParleyServer(config) as second:
        assert second.history_epoch.raised
        # An attempt cut short after the client has given up on its seqs.
        cut = await _connect(second, alice.conversations)
        assert cut.history_epoch != alice.history_epoch
        await cut.close()
        with pytest.raises(ConnectionLost):
            await cut.resume(alice)
        again = await _connect(second, alice.conversations)
        assert await again.resume(alice) == []
        bob = await _connect(second)
        await bob.login("Bob", password="another horse battery")
        await bob.send("#dev", "new 2")  # the seq of "lost 1"
        events: list[ClientEvent] = []
        while not any(isinstance(e, Message) and e.text == "new 2" for e in events):
            events.append(await asyncio.wait_for(again.next_event(), TIMEOUT_SECONDS))
        reloaded = [e.to for e in events if isinstance(e, HistoryReloaded)]
        assert sorted(reloaded) == ["#dev", "Bob"]
        shown = [(e.to, e.text) for e in events if isinstance(e, Message)]
        # What the server has, once each (the conversations in either order), then the new.
        assert sorted(shown[:-1]) == [("#dev", "kept"), ("Alice", "private")], shown
        assert shown[-1] == ("#dev", "new 2"), shown
        # Each announcement comes before any message of its conversation.
        for name, to in (("#dev", "#dev"), ("Bob", "Alice")):
            said = next(
                i for i, e in enumerate(events) if isinstance(e, HistoryReloaded) and e.to == name
            )
            first = next(i for i, e in enumerate(events) if isinstance(e, Message) and e.to == to)
            assert said < first, events
        await again.close()
        await bob.close()


async def test_resume_rejoins_a_guest_and_reports_a_room_it_cannot_rejoin(
    server_config: ServerConfig,
) -> None:
    async with ParleyServer(_roomy(server_config)) as server:
        owner = await _connect(server)
        await owner.login("Owner")
        await owner.register("correct horse battery")
        await owner.join("#ops")
        alice = await _connect(server)
        await alice.login("Alice")
        await alice.join("#dev")
        await alice.join("#ops")
        await alice.close()
        await owner.ban("#ops", "Alice")
        again = await _connect(server, alice.conversations)
        refused = await again.resume(alice)
        assert [(room, refusal.code) for room, refusal in refused] == [("#ops", "banned")]
        assert set(again.rooms) == {"#general", "#dev"}
        await again.close()
        await owner.close()
