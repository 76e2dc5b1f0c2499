"""The Storage contract, run against every backend (see conftest.py)."""

from __future__ import annotations

import asyncio

import pytest

from parley.storage import (
    Account,
    NewMessage,
    Role,
    Room,
    Sanction,
    SanctionKind,
    Storage,
    StorageUnavailable,
)

HOSTILE = [
    "'; DROP TABLE messages; --",
    '"double" \\back\\slash %s %(x)s $1 ? :name',
    "\U0001f600 \u202eevil\u202c \u200b\ufeff",
    "x" * 100_000,
]


def message(conversation: str, msg_id: str, text: str = "hi", sender: str = "alice") -> NewMessage:
    return NewMessage(conversation, sender.title(), sender, conversation, text, msg_id)


async def test_each_conversation_numbers_from_one_without_gaps(storage: Storage) -> None:
    stored = await storage.append(
        [message("#a", "1"), message("#b", "1"), message("#a", "2"), message("#a", "3")]
    )
    assert [(s.conversation, s.seq) for s in stored] == [("#a", 1), ("#b", 1), ("#a", 2), ("#a", 3)]
    more = await storage.append([message("#b", "2")])
    assert more[0].seq == 2


async def test_a_retry_is_the_original_marked_duplicate(storage: Storage) -> None:
    [first] = await storage.append([message("#a", "m", "original")])
    [again] = await storage.append([message("#a", "m", "changed text")])
    assert again.duplicate and (again.seq, again.ts, again.text) == (1, first.ts, "original")
    # Within one batch too, and another sender's same id is another message.
    batch = await storage.append(
        [message("#a", "n"), message("#a", "n"), message("#a", "n", sender="bob")]
    )
    assert [(s.seq, s.duplicate) for s in batch] == [(2, False), (2, True), (3, False)]
    assert [m.text for m in await storage.history("#a", limit=10)] == ["original", "hi", "hi"]


async def test_concurrent_appends_never_share_or_skip_a_number(storage: Storage) -> None:
    await asyncio.gather(
        *(storage.append([message("#busy", f"{task}-{n}") for n in range(5)]) for task in range(20))
    )
    seqs = [m.seq for m in await storage.history("#busy", limit=200)]
    assert seqs == list(range(1, 101))


async def test_history_pages_back_and_forward(storage: Storage) -> None:
    await storage.append([message("#a", str(n), f"m{n}") for n in range(1, 11)])
    assert [m.seq for m in await storage.history("#a", limit=3)] == [8, 9, 10]
    assert [m.seq for m in await storage.history("#a", limit=3, before_seq=8)] == [5, 6, 7]
    assert [m.seq for m in await storage.history("#a", limit=3, after_seq=2)] == [3, 4, 5]
    assert await storage.history("#a", limit=3, after_seq=10) == []
    assert await storage.history("#empty", limit=3) == []


async def test_text_comes_back_byte_exact(storage: Storage) -> None:
    await storage.append([message("#a", str(n), text) for n, text in enumerate(HOSTILE)])
    assert [m.text for m in await storage.history("#a", limit=10)] == HOSTILE
    for n, text in enumerate(HOSTILE):
        room = Room(key=f"#r{n}", name=f"#R{n}", topic=text, topic_by=text, created_by=text)
        assert await storage.create_room(room)
        assert await storage.room(f"#r{n}") == room
        await storage.record_audit(ts=n, actor=text, action="kick", room=text, detail=text)
    entries = await storage.audit_log(10)
    assert [e.detail for e in entries] == HOSTILE[::-1]


async def test_accounts_and_sessions(storage: Storage) -> None:
    alice = Account("alice", "Alice", "hash-1", Role.USER, 5)
    assert await storage.create_account(alice)
    assert not await storage.create_account(alice)
    assert await storage.account("alice") == alice
    assert await storage.account("nobody") is None
    assert await storage.update_account("alice", role=Role.MODERATOR)
    assert await storage.update_account("alice", password_hash="hash-2")
    changed = await storage.account("alice")
    assert changed is not None and (changed.role, changed.password_hash) == (
        Role.MODERATOR,
        "hash-2",
    )
    assert not await storage.update_account("nobody", role=Role.ADMIN)
    await storage.create_session("t1", "alice", expires_ms=1000)
    await storage.create_session("t2", "alice", expires_ms=1000)
    await storage.create_session("t3", "alice", expires_ms=1000)
    assert await storage.session_account("t1", now_ms=999) == "alice"
    assert await storage.session_account("t1", now_ms=1000) is None  # expired
    assert await storage.revoke_session("t1")
    assert not await storage.revoke_session("t1")
    assert await storage.revoke_sessions("alice", keep="t3") == 1
    assert await storage.session_account("t3", now_ms=0) == "alice"
    assert [a.key for a in await storage.accounts()] == ["alice"]


async def test_deleting_an_account_takes_what_belongs_to_it(storage: Storage) -> None:
    await storage.create_account(Account("bob", "Bob", "h", Role.USER, 0))
    await storage.create_room(Room(key="#a", name="#a"))
    await storage.create_session("t", "bob", expires_ms=10**15)
    await storage.add_member("#a", "bob")
    await storage.mark_read("bob", "#a", 1)
    assert await storage.delete_account("bob")
    assert not await storage.delete_account("bob")
    assert await storage.session_account("t", now_ms=0) is None
    assert await storage.memberships("bob") == {}


async def test_rooms_members_and_operators(storage: Storage) -> None:
    await storage.create_account(Account("alice", "Alice", "h", Role.USER, 0))
    assert await storage.create_room(Room(key="#b", name="#B", created_by="alice"))
    assert not await storage.create_room(Room(key="#b", name="#b"))
    assert await storage.create_room(Room(key="#a", name="#a"))
    assert [r.key for r in await storage.rooms()] == ["#a", "#b"]
    assert await storage.set_topic("#b", "news", "Alice", 7)
    room = await storage.room("#b")
    assert room is not None and (room.topic, room.topic_by, room.topic_ms) == ("news", "Alice", 7)
    assert not await storage.set_topic("#zz", "x", "y", 1)
    assert await storage.set_retention("#b", 30)
    await storage.add_member("#b", "alice", operator=True)
    await storage.add_member("#b", "alice")  # never downgrades
    await storage.add_member("#a", "alice")
    assert await storage.memberships("alice") == {"#a": False, "#b": True}
    assert await storage.is_operator("#b", "alice")
    assert not await storage.is_operator("#a", "alice")
    assert await storage.remove_member("#a", "alice")
    assert not await storage.remove_member("#a", "alice")


async def test_sanctions_expire_and_are_replaced(storage: Storage) -> None:
    ban = Sanction("#a", "bob", SanctionKind.BAN, 100, "Alice", "spam", 1)
    await storage.add_sanction(ban)
    assert await storage.sanction("#a", "bob", SanctionKind.BAN, now_ms=99) == ban
    assert await storage.sanction("#a", "bob", SanctionKind.BAN, now_ms=100) is None
    assert await storage.sanction("#a", "bob", SanctionKind.MUTE, now_ms=0) is None
    forever = Sanction("#a", "bob", SanctionKind.BAN, None, "Op", "again", 2)
    await storage.add_sanction(forever)
    assert await storage.sanction("#a", "bob", SanctionKind.BAN, now_ms=10**15) == forever
    assert await storage.remove_sanction("#a", "bob", SanctionKind.BAN)
    assert not await storage.remove_sanction("#a", "bob", SanctionKind.BAN)


async def test_audit_log_is_newest_first(storage: Storage) -> None:
    for n in range(5):
        await storage.record_audit(ts=n, actor="a", action=f"act{n}")
    entries = await storage.audit_log(3)
    assert [e.action for e in entries] == ["act4", "act3", "act2"]
    assert entries[0].id > entries[1].id


async def test_unread_counts_rooms_and_private_conversations(storage: Storage) -> None:
    # Private conversations go by principal id: "a..." is Alice's, "b..." Bob's.
    alice, bob = "a" * 32, "b" * 32
    await storage.create_account(Account("bob", "Bob", "h", Role.USER, 0, bob))
    await storage.create_room(Room(key="#a", name="#a"))
    await storage.add_member("#a", "bob")
    conversation = f"dm:{alice}:{bob}"
    dm = NewMessage(conversation, "Alice", alice, "Bob", "psst", "p1", (alice, bob))
    await storage.append([message("#a", "1"), message("#a", "2"), dm, message("#other", "x")])
    unread = await storage.unread("bob", "", 100)
    assert [(u.conversation, u.count) for u in unread] == [("#a", 2), (conversation, 1)]
    await storage.mark_read("bob", "#a", 2)
    await storage.mark_read("bob", "#a", 1)  # never back
    unread = await storage.unread("bob", "", 100)
    assert [(u.conversation, u.read_seq, u.last_seq) for u in unread] == [(conversation, 0, 1)]


async def test_unread_pages_after_a_conversation(storage: Storage) -> None:
    await storage.create_account(Account("bob", "Bob", "h", Role.USER, 0, "b" * 32))
    rooms = [f"#r{n:02}" for n in range(7)]
    for room in rooms:
        await storage.create_room(Room(key=room, name=room))
        await storage.add_member(room, "bob")
    await storage.append([message(room, f"m{room}") for room in rooms])
    seen: list[str] = []
    after = ""
    while page := await storage.unread("bob", after, 3):
        assert len(page) <= 3
        seen += [entry.conversation for entry in page]
        after = page[-1].conversation
    assert seen == rooms


async def test_a_new_account_of_a_deleted_name_gets_a_new_id(storage: Storage) -> None:
    first = Account("bob", "Bob", "h", Role.USER, 0)
    assert await storage.create_account(first)
    assert await storage.account_by_id(first.id) == first
    # An id is taken even under another name.
    assert not await storage.create_account(Account("other", "Other", "h", Role.USER, 0, first.id))
    assert await storage.delete_account("bob")
    second = Account("bob", "Bob", "h", Role.USER, 1)
    assert await storage.create_account(second)
    assert second.id != first.id and len(second.id) == 32
    assert await storage.account_by_id(first.id) is None
    # Nothing of the first account's private conversations is the second's.
    dm = NewMessage(f"dm:{first.id}:{'c' * 32}", "Bob", first.id, "Carol", "hi", "1",
                    (first.id, "c" * 32))  # fmt: skip
    await storage.append([dm])
    assert await storage.unread("bob", "", 100) == []


async def test_account_changes_are_recorded_in_order(storage: Storage) -> None:
    start = await storage.last_account_change()
    await storage.create_account(Account("bob", "Bob", "h", Role.USER, 0))
    await storage.create_session("t1", "bob", 2**62)
    assert await storage.account_changes(start, 10) == []  # creating is not a change
    await storage.update_account("bob", role=Role.MODERATOR)
    await storage.revoke_sessions("bob")
    await storage.update_account("nobody", role=Role.ADMIN)  # no such account: no change
    await storage.delete_account("bob")
    changes = await storage.account_changes(start, 10)
    assert [key for _, key in changes] == ["bob", "bob", "bob"]
    seqs = [seq for seq, _ in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert await storage.last_account_change() == seqs[-1]
    assert await storage.account_changes(seqs[0], 1) == [changes[1]]
    assert await storage.forget_account_changes(2**62) == 3
    assert await storage.account_changes(start, 10) == []


async def test_login_attempts_count_before_and_refund_after(storage: Storage) -> None:
    keys = ["address:1.2.3.4", "account:bob@1.2.3.4", "account:bob"]
    assert await storage.count_attempts(keys, 1000, 0) == [(1, 0)] * 3
    assert await storage.count_attempts(keys, 2000, 0) == [(2, 1000)] * 3
    # Another account's attempt from the same address shares only the address's count.
    other = ["address:1.2.3.4", "account:carol@1.2.3.4", "account:carol"]
    assert await storage.count_attempts(other, 3000, 0) == [(3, 2000), (1, 0), (1, 0)]
    await storage.refund_attempts(other)
    assert await storage.count_attempts(keys, 4000, 0) == [(3, 3000), (3, 2000), (3, 2000)]
    # A count last touched before the cut-off starts again.
    assert await storage.count_attempts(keys, 9000, 5000) == [(1, 0)] * 3
    assert await storage.forget_attempts(9001) == 5
    assert await storage.count_attempts(keys, 9500, 0) == [(1, 0)] * 3


async def test_concurrent_attempts_each_get_their_own_count(storage: Storage) -> None:
    keys = ["address:::1", "account:bob@::1", "account:bob"]
    results = await asyncio.gather(*(storage.count_attempts(keys, 1000, 0) for _ in range(50)))
    assert sorted(counts[0][0] for counts in results) == list(range(1, 51))


async def test_rooms_come_in_pages_by_key(storage: Storage) -> None:
    for n in range(7):
        await storage.create_room(Room(key=f"#r{n}", name=f"#R{n}"))
    assert await storage.room_count() == 7
    first = await storage.rooms("", 3)
    assert [r.key for r in first] == ["#r0", "#r1", "#r2"]
    assert [r.key for r in await storage.rooms(first[-1].key, 3)] == ["#r3", "#r4", "#r5"]
    assert [r.key for r in await storage.rooms("#r5", 3)] == ["#r6"]
    assert len(await storage.rooms()) == 7


async def test_purge_follows_retention_and_never_reuses_numbers(storage: Storage) -> None:
    await storage.create_room(Room(key="#short", name="#short", retention_days=1))
    await storage.create_room(Room(key="#default", name="#default"))
    await storage.append([message("#short", "1"), message("#default", "1")])
    [stored] = await storage.history("#short", limit=1)
    day = 86_400_000
    # Forever by default: only the room with its own retention loses its message.
    assert await storage.purge(stored.ts + 2 * day, None) == 1
    assert await storage.history("#short", limit=5) == []
    assert len(await storage.history("#default", limit=5)) == 1
    assert await storage.purge(stored.ts + 2 * day, 1) == 1
    [after] = await storage.append([message("#short", "2")])
    assert after.seq == 2


async def test_a_closed_storage_refuses_with_storage_unavailable(storage: Storage) -> None:
    await storage.close()
    with pytest.raises(StorageUnavailable):
        await storage.append([message("#a", "1")])


async def test_a_nul_is_kept_exactly_or_refused_never_altered(storage: Storage) -> None:
    # The protocol never lets a NUL through to storage; if one came anyway, SQLite keeps it and
    # PostgreSQL (whose text cannot hold it) refuses the batch. Either way nothing is altered.
    try:
        await storage.append([message("#a", "nul", "before\x00after")])
    except StorageUnavailable:
        assert await storage.history("#a", limit=5) == []
    else:
        [stored] = await storage.history("#a", limit=5)
        assert stored.text == "before\x00after"
    [next_one] = await storage.append([message("#a", "ok", "fine")])
    assert next_one.text == "fine"


async def test_window_slots_are_counted_only_when_every_key_allows(storage: Storage) -> None:
    user, address = ("room-by:u1", 2), ("room-from:1.2.3.4", 3)
    assert await storage.take_window_slots([user, address], 1000, 0)
    assert await storage.take_window_slots([user, address], 1000, 0)  # the same millisecond
    # The user is at its limit: refused, and the address's count is not used up.
    assert not await storage.take_window_slots([user, address], 2000, 0)
    other = ("room-by:u2", 2)
    assert await storage.take_window_slots([other, address], 2000, 0)
    assert not await storage.take_window_slots([other, address], 2000, 0)
    # Events before the window's start no longer count; forgotten ones are deleted.
    assert await storage.take_window_slots([user, address], 3000, 1500)
    assert await storage.forget_window_slots(1500) == 2
    # The address's two left (at 2000 and 3000) and one more make its three.
    assert await storage.take_window_slots([address], 3000, 0)
    assert not await storage.take_window_slots([address], 3000, 0)
    assert await storage.take_window_slots([("register:x", 0)], 3000, 0) is False


async def test_concurrent_window_slots_never_pass_the_limit(storage: Storage) -> None:
    results = await asyncio.gather(
        *(storage.take_window_slots([("register:::1", 3)], 1000 + n, 0) for n in range(30))
    )
    assert sorted(results) == [False] * 27 + [True] * 3
