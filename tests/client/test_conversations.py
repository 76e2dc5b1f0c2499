"""Seq bookkeeping on its own: which message is new, in rooms and private conversations."""

from __future__ import annotations

from parley.client.conversations import SEEN_WINDOW, Conversations, conversation_of
from parley.protocol.messages import Message


def _message(to: str, sender: str, seq: int = 1) -> Message:
    return Message(to=to, sender=sender, text="x", seq=seq, ts=0, msg_id=f"m{seq}")


def test_rooms_are_keyed_by_room_key_and_private_ones_by_the_other_user() -> None:
    assert conversation_of(_message("#Dev", "bob"), "Alice") == ("#dev", "#Dev")
    # Received and sent private messages land in the same conversation: the other user's.
    assert conversation_of(_message("Alice", "Bob"), "alice") == ("bob", "Bob")
    assert conversation_of(_message("BOB", "Alice"), "alice") == ("bob", "BOB")


def test_a_seq_seen_once_is_refused_after_in_any_order() -> None:
    seen = Conversations()
    assert [seen.accept("#dev", "#dev", seq) for seq in (3, 4, 4, 1, 3, 2, 5)] == [
        True,
        True,
        False,
        True,
        False,
        True,
        True,
    ]
    assert (seen.first_seq("#dev"), seen.last_seq("#dev")) == (1, 5)
    # Conversations are separate: seq 1 of another is new.
    assert seen.accept("bob", "Bob", 1)
    assert seen.known() == [("#dev", "#dev", 5), ("bob", "Bob", 1)]
    assert seen.last_seq("#nothing") == 0


def test_memory_stays_bounded_and_old_seqs_count_as_seen() -> None:
    seen = Conversations()
    for seq in range(1, 5 * SEEN_WINDOW):
        assert seen.accept("#busy", "#busy", seq)
    assert len(seen._seen["#busy"].recent) <= 2 * SEEN_WINDOW
    assert not seen.accept("#busy", "#busy", 10)
    assert not seen.accept("#busy", "#busy", 5 * SEEN_WINDOW - 1)
    assert seen.accept("#busy", "#busy", 5 * SEEN_WINDOW)


def test_a_conversation_started_anew_under_the_same_name_is_not_taken_for_duplicates() -> None:
    seen = Conversations()
    for seq in (1, 2, 3):
        assert seen.accept("bob", "Bob", seq, f"old-{seq}")
    assert not seen.accept("bob", "Bob", 2, "old-2")  # the same message again
    assert not seen.accept("bob", "Bob", 2)  # without its msg_id: taken as seen
    # Someone new under the name (a guest came back): its conversation counts from 1 again.
    assert seen.accept("bob", "Bob", 1, "new-1")
    assert seen.last_seq("bob") == 1 and seen.first_seq("bob") == 1
    assert not seen.accept("bob", "Bob", 1, "new-1")
    assert seen.accept("bob", "Bob", 2, "new-2")
