"""How events read as lines, and that nothing a peer sends can reach the terminal as a control."""

from __future__ import annotations

import pytest

from parley.client.core import Disconnected
from parley.client.render import describe, describe_users
from parley.protocol.messages import Error, Joined, Left, Message, Notice, Users


def _message(to: str, sender: str, text: str) -> Message:
    return Message(to=to, sender=sender, text=text, seq=1, ts=0, msg_id="m")


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (_message("#general", "Bob", "Hi Alice!"), "Bob: Hi Alice!"),
        (_message("Alice", "Bob", "psst"), "(private) Bob: psst"),
        (_message("#general", "alice", "mine"), None),  # own message, any case
        (Joined(room="#general", nick="Bob"), "Bob has joined the chat!"),
        (Joined(room="#general", nick="Alice"), None),
        (Left(room="#general", nick="Bob"), "Bob has left the chat."),
        (Notice(text="Maintenance at noon"), "*** Maintenance at noon"),
        (Error(code="x", message="Bad thing"), "*** Bad thing"),
        (Disconnected("The server is shutting down."), "*** The server is shutting down."),
    ],
)
def test_lines_read_like_the_original_chat(event: object, line: str | None) -> None:
    assert describe(event, "Alice") == line  # type: ignore[arg-type]


def test_a_hostile_server_cannot_inject_escapes_either() -> None:
    # The server refuses such text, but a client must not rely on its server being honest.
    event = _message("#general", "Evil\x1b[31m", "\x1b]0;title\x07\x1b[2J\r\u009b1m\u202e")
    line = describe(event, "Alice")
    assert line is not None
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in line)


def test_user_list_says_how_many_more_there_are() -> None:
    assert describe_users(Users(id=1, users=["a", "b"], total=2)) == "Online (2): a, b"
    assert describe_users(Users(id=1, users=["a"], total=5)) == "Online (5): a and 4 more"
