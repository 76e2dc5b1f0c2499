"""History over real TLS: sequence numbers, paging, resuming, retries stored once, private
messages kept for offline accounts, read markers, and a record that survives restarts."""

from __future__ import annotations

import asyncio
import dataclasses

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from support import NO_SHARED_BUDGETS, RawClient, raw_user

PASSWORD = "correct horse battery"


async def send_many(client: RawClient, to: str, count: int, prefix: str = "m") -> None:
    for n in range(1, count + 1):
        reply = await client.request("send", to=to, text=f"{prefix} {n}", msg_id=f"{prefix}{n}")
        assert reply["type"] == "sent", reply


async def test_history_pages_back_and_resumes_forward(server_config: ServerConfig) -> None:
    # Ten listings in a row (5 tokens each) are past the flood burst: this test pages, it
    # does not pace itself as clients do.
    config = dataclasses.replace(server_config, flood_burst_requests=100)
    async with ParleyServer(config) as server:
        await _pages_back_and_resume_forward(server)


async def _pages_back_and_resume_forward(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    await send_many(alice, "#general", 12)
    latest = await alice.request("history", to="#general", limit=5)
    assert [m["seq"] for m in latest["messages"]] == [8, 9, 10, 11, 12]
    assert latest["more"] is True and all(m["history"] for m in latest["messages"])
    older = await alice.request("history", to="#general", before=8, limit=5)
    assert [m["seq"] for m in older["messages"]] == [3, 4, 5, 6, 7]
    oldest = await alice.request("history", to="#general", before=3, limit=5)
    assert [m["seq"] for m in oldest["messages"]] == [1, 2]
    assert oldest.get("more", False) is False
    resumed = await alice.request("history", to="#general", after=9, limit=2)
    assert [m["seq"] for m in resumed["messages"]] == [10, 11]
    assert resumed["more"] is True
    rest = await alice.request("history", to="#general", after=11)
    assert [m["text"] for m in rest["messages"]] == ["m 12"]
    assert (await alice.request("history", to="#general", limit=0))["code"] == "invalid-message"
    assert (await alice.request("history", to="#general", limit=201))["code"] == ("invalid-message")
    assert (await alice.request("history", to="#secret"))["code"] == "no-such-room"
    await alice.close()


async def test_a_retry_after_reconnecting_is_stored_and_delivered_once(
    server: ParleyServer,
) -> None:
    bob = await raw_user(server.port, "Bob")
    alice = await raw_user(server.port, "Alice")
    first = await alice.request("send", to="#general", text="only once", msg_id="retry-1")
    await alice.close()
    alice = await raw_user(server.port, "Alice")
    again = await alice.request("send", to="#general", text="only once", msg_id="retry-1")
    assert (again["seq"], again["duplicate"]) == (first["seq"], True)
    await alice.request("send", to="#general", text="next", msg_id="retry-2")
    texts = []
    while len(texts) < 2:
        frame = await bob.event("message")
        texts.append(frame["text"])
    assert texts == ["only once", "next"]
    await alice.close()
    await bob.close()


async def test_private_history_is_per_pair_and_numbered_from_one(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    carol = await raw_user(server.port, "Carol")
    assert (await alice.request("send", to="bob", text="hi bob", msg_id="a1"))["seq"] == 1
    assert (await bob.request("send", to="Alice", text="hi alice", msg_id="b1"))["seq"] == 2
    assert (await alice.request("send", to="Carol", text="hi carol", msg_id="a2"))["seq"] == 1
    page = await bob.request("history", to="ALICE")
    assert [(m["sender"], m["text"]) for m in page["messages"]] == [
        ("Alice", "hi bob"),
        ("Bob", "hi alice"),
    ]
    # Carol cannot read Alice and Bob's conversation: hers with Bob is empty.
    assert (await carol.request("history", to="Bob"))["messages"] == []
    for client in (alice, bob, carol):
        await client.close()


async def test_private_messages_wait_for_an_offline_account(server: ParleyServer) -> None:
    bob = await raw_user(server.port, "Bob")
    assert (await bob.request("register", password=PASSWORD))["type"] == "ok"
    await bob.close()
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("send", to="bob", text="while you were out", msg_id="o1"))[
        "type"
    ] == "sent"
    assert (await alice.request("send", to="Nobody", text="lost", msg_id="o2"))["code"] == (
        "no-such-user"
    )
    bob = await RawClient.open(server.port)
    await bob.login("Bob", password=PASSWORD)
    missed = await bob.event("message", sender="Alice")
    assert (missed["text"], missed["history"], missed["to"]) == ("while you were out", True, "Bob")
    await bob.close()
    # Delivered once: the next login brings nothing old.
    bob = await RawClient.open(server.port)
    await bob.login("Bob", password=PASSWORD)
    await bob.request("ping")
    assert not [f for f in bob.events if f["type"] == "message"]
    await bob.close()
    await alice.close()


async def test_unread_counts_follow_read_markers(server: ParleyServer) -> None:
    bob = await raw_user(server.port, "Bob")
    assert (await bob.request("register", password=PASSWORD))["type"] == "ok"
    await bob.request("join", room="#dev")
    alice = await raw_user(server.port, "Alice")
    await alice.request("join", room="#dev")
    await send_many(alice, "#dev", 3)
    unread = await bob.request("unread")
    counts = {entry["to"]: (entry["count"], entry["last_seq"]) for entry in unread["conversations"]}
    assert counts["#dev"] == (3, 3)
    assert (await bob.request("read", to="#dev", seq=2))["type"] == "ok"
    after = await bob.request("unread")
    counts = {entry["to"]: entry["count"] for entry in after["conversations"]}
    assert counts["#dev"] == 1
    # Guests have no markers to keep.
    assert (await alice.request("unread"))["code"] == "account-required"
    # Writing in a room reads it up to there: Bob's own message leaves nothing unread.
    assert (await bob.request("send", to="#dev", text="mine", msg_id="own"))["type"] == "sent"
    for _ in range(50):
        after = await bob.request("unread")
        if "#dev" not in {entry["to"] for entry in after["conversations"]}:
            break
        await asyncio.sleep(0.05)  # the marker is written off the commit path
    assert "#dev" not in {entry["to"] for entry in after["conversations"]}, after
    await alice.close()
    await bob.close()


async def test_an_account_is_back_in_its_rooms_after_reconnecting(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("register", password=PASSWORD))["type"] == "ok"
    await alice.request("join", room="#dev")
    await alice.close()
    alice = await RawClient.open(server.port)
    ok = await alice.login("Alice", password=PASSWORD)
    assert ok["rooms"] == ["#general", "#dev"]
    assert (await alice.request("send", to="#dev", text="back", msg_id="b"))["type"] == "sent"
    await alice.close()


async def test_sequence_numbers_continue_after_a_restart(server_config: ServerConfig) -> None:
    async with ParleyServer(server_config) as first:
        alice = await raw_user(first.port, "Alice")
        await send_many(alice, "#general", 3)
        await alice.close()
    async with ParleyServer(server_config) as second:
        alice = await raw_user(second.port, "Alice")
        assert (await alice.request("send", to="#general", text="4", msg_id="m4"))["seq"] == 4
        # The same msg_id as before the restart is still recognised as a retry.
        assert (await alice.request("send", to="#general", text="m 1", msg_id="m1"))["duplicate"]
        page = await alice.request("history", to="#general")
        assert [m["text"] for m in page["messages"]] == ["m 1", "m 2", "m 3", "4"]
        await alice.close()


async def test_hostile_text_comes_back_byte_exact(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    texts = [
        "'; DROP TABLE messages; --",
        '"double" \\back\\slash %s %(x)s $1 ?',
        "\U0001f600 \u202eevil\u202c \u200b zero width",
        "x" * 4000,
    ]
    for n, text in enumerate(texts):
        assert (await alice.request("send", to="#general", text=text, msg_id=f"h{n}"))[
            "type"
        ] == "sent"
    page = await alice.request("history", to="#general")
    assert [m["text"] for m in page["messages"]] == texts
    await alice.close()


async def test_a_long_history_page_is_cut_to_fit_one_frame(server_config: ServerConfig) -> None:
    config = dataclasses.replace(
        server_config, flood_burst_requests=500, flood_debt_requests=1000, **NO_SHARED_BUDGETS
    )
    async with ParleyServer(config) as server:
        alice = await raw_user(server.port, "Alice")
        big = "\U0001f600" * 4000  # 16 KB a message
        for n in range(80):
            alice.send(type="send", id=1000 + n, to="#general", text=big, msg_id=f"b{n}")
        for _ in range(80):
            await alice.expect("sent")
        page = await alice.request("history", to="#general", limit=200)
        assert page["more"] is True
        seqs = [m["seq"] for m in page["messages"]]
        assert 40 < len(seqs) < 80 and seqs[-1] == 80  # the newest kept, the oldest cut
        await alice.close()


async def test_the_retention_purge_deletes_old_messages_and_keeps_numbering(
    server_config: ServerConfig,
) -> None:
    # Zero days: everything already stored is past retention at the next purge.
    config = dataclasses.replace(server_config, retention_days=0, purge_interval_seconds=0.2)
    async with ParleyServer(config) as server:
        alice = await raw_user(server.port, "Alice")
        await send_many(alice, "#general", 3)
        for _ in range(50):
            page = await alice.request("history", to="#general")
            if not page["messages"]:
                break
            await asyncio.sleep(0.1)
        assert page["messages"] == []
        # Numbers are never reused: the next message is 4, not 1.
        assert (await alice.request("send", to="#general", text="new", msg_id="n"))["seq"] == 4
        await alice.close()


async def test_a_guest_taking_a_freed_nickname_cannot_read_its_private_history(
    server: ParleyServer,
) -> None:
    alice = await raw_user(server.port, "Alice")
    first_bob = await raw_user(server.port, "Bob")
    await alice.request("send", to="Bob", text="my secret", msg_id="s1")
    await first_bob.close()
    await asyncio.sleep(0.05)
    second_bob = await raw_user(server.port, "Bob")
    page = await second_bob.request("history", to="Alice")
    assert page["messages"] == []
    # What is said to the new Bob, it can read back.
    await alice.request("send", to="Bob", text="hello new Bob", msg_id="s2")
    page = await second_bob.request("history", to="Alice")
    assert [m["text"] for m in page["messages"]] == ["hello new Bob"]
    await alice.close()
    await second_bob.close()
