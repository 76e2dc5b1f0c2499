"""What one node tells the others when room state changes, so that it takes effect on every
node at once: storage holds the record (topics, sanctions, memberships); these carry the news
to the rooms and users held in memory elsewhere.

Each event is applied by the nodes that hold what it names and ignored by the rest. The node
that made the change applies it itself, directly, and is not sent its own events.
"""

from __future__ import annotations

import msgspec


class TopicSet(msgspec.Struct, tag="topic", frozen=True):
    room: str
    text: str
    by: str


class MuteChanged(msgspec.Struct, tag="mute", frozen=True):
    """Mutes of ``keys`` (sanction keys) in ``room`` set until ``until_ms`` (None: until
    lifted), or lifted.
    """

    room: str
    keys: list[str]
    until_ms: int | None
    lifted: bool


class Removed(msgspec.Struct, tag="remove", frozen=True):
    """The user ``principal`` was kicked or banned from ``room``: the node it is on takes it
    out, telling the room.
    """

    room: str
    principal: str
    reason: str
    by: str
    message: str


class OperatorAdded(msgspec.Struct, tag="op", frozen=True):
    room: str
    principal: str


class Told(msgspec.Struct, tag="tell", frozen=True):
    """A notice for the user ``principal``, wherever it is connected."""

    principal: str
    text: str


class MembersCame(msgspec.Struct, tag="members", frozen=True):
    """In the big room ``room``, ``joined`` members came and ``left`` went on the sending node
    since its last summary: every node's next summary counts them.
    """

    room: str
    joined: int
    left: int


ClusterEvent = TopicSet | MuteChanged | Removed | OperatorAdded | Told | MembersCame

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ClusterEvent)


def encode_event(event: ClusterEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> ClusterEvent:
    """Raises msgspec.DecodeError (or ValidationError) for what is not an event."""
    event: ClusterEvent = _decoder.decode(data)
    return event
