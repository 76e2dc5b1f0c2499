"""Fan-out on one node, on its own: one member's failing write cuts that member alone, a frame
published during a delivery waits until every member has the one before, and private frames
for a user still logging in are held for it.
"""

from __future__ import annotations

import logging

import pytest

from hub_parts import RecordingPeer
from parley.server.conversations import private_conversation
from parley.server.delivery import Delivery
from parley.server.metrics import ServerMetrics
from parley.server.rooms import Peer, Write


class Node:
    """One room, #r, of the given members, and the users online by principal."""

    def __init__(self, *members: RecordingPeer) -> None:
        self.room: dict[Peer, Write] = {member: member.write for member in members}
        self.users: dict[str, RecordingPeer] = {member.principal: member for member in members}
        self.logged_out: list[Peer] = []
        self.metrics = ServerMetrics()
        self.delivery = Delivery(
            lambda key: self.room if key == "#r" else None,
            self.users.get,
            self.logged_out.append,
            self.metrics,
        )


def test_a_member_whose_write_raises_is_cut_and_the_others_get_every_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice, bob, carol = RecordingPeer("Alice"), RecordingPeer("Bob"), RecordingPeer("Carol")

    def broken(frame: bytes) -> None:
        raise RuntimeError("injected: a bug in one member's write")

    bob.on_write = broken
    node = Node(alice, bob, carol)
    # What an aborted connection does: it logs out, leaving the room.
    bob.on_abort = lambda: node.room.pop(bob, None)
    with caplog.at_level(logging.ERROR):
        node.delivery.deliver("#r", b"one\n")
        node.delivery.deliver("#r", b"two\n")
    assert alice.frames == carol.frames == [b"one\n", b"two\n"]
    assert bob.frames == []
    assert bob.aborted == 1
    failures = [r.getMessage() for r in caplog.records]
    assert failures == ["Bug: writing to Bob failed; disconnecting it"]
    assert node.logged_out == []


def test_a_member_that_cannot_even_be_cut_is_logged_out() -> None:
    alice, bob = RecordingPeer("Alice"), RecordingPeer("Bob")

    def broken(frame: bytes) -> None:
        raise RuntimeError("injected: write fails")

    def abort() -> None:
        raise RuntimeError("injected: abort fails too")

    bob.on_write = broken
    bob.on_abort = abort
    node = Node(alice, bob)
    node.delivery.deliver("#r", b"one\n")
    assert node.logged_out == [bob]
    assert alice.frames == [b"one\n"]


def test_a_frame_published_during_a_delivery_waits_for_every_member_to_have_the_first() -> None:
    alice, bob, carol = RecordingPeer("Alice"), RecordingPeer("Bob"), RecordingPeer("Carol")
    node = Node(alice, bob, carol)

    def publishes(frame: bytes) -> None:
        # Bob's write publishes (as a member cut off mid-delivery publishes its ``left``).
        if frame == b"first\n":
            node.delivery.deliver("#r", b"second\n")

    bob.on_write = publishes
    node.delivery.deliver("#r", b"first\n")
    for member in (alice, bob, carol):
        assert member.frames == [b"first\n", b"second\n"], member.nick


def test_private_frames_reach_both_sides_or_wait_for_one_logging_in() -> None:
    alice, bob = RecordingPeer("Alice"), RecordingPeer("Bob")
    node = Node(alice)
    conversation = private_conversation(alice.principal, bob.principal)
    with node.delivery.hold(bob.principal) as held:
        node.delivery.deliver(conversation, b"hi bob\n")
    assert held == [(conversation, b"hi bob\n")]
    assert alice.frames == [b"hi bob\n"]
    # Once its login is done (or failed) nothing is held for it any more.
    node.delivery.deliver(conversation, b"later\n")
    assert held == [(conversation, b"hi bob\n")]
    node.users[bob.principal] = bob
    node.delivery.deliver(conversation, b"online\n")
    assert bob.frames == [b"online\n"]
    assert alice.frames == [b"hi bob\n", b"later\n", b"online\n"]


def test_a_frame_of_a_room_not_live_here_goes_to_no_one() -> None:
    alice = RecordingPeer("Alice")
    node = Node(alice)
    node.delivery.deliver("#elsewhere", b"x\n")
    assert alice.frames == []
