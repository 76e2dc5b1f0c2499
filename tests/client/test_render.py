"""How events read as lines, and that nothing a peer sends can reach the terminal as a control."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator

import pytest

from parley.client.core import Disconnected
from parley.client.render import (
    describe,
    describe_room,
    describe_rooms,
    describe_unread,
    describe_users,
)
from parley.protocol.messages import (
    Error,
    Joined,
    Left,
    Message,
    Notice,
    RoomInfo,
    Rooms,
    RoomSummary,
    TopicChanged,
    Unread,
    UnreadCount,
    Users,
)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """History time stamps in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# 2026-11-25 14:02:30 UTC, and "now" a little later the same day.
TS = calendar.timegm((2026, 11, 25, 14, 2, 30)) * 1000
NOW = TS / 1000 + 3600


def _message(to: str, sender: str, text: str, history: bool = False) -> Message:
    return Message(to=to, sender=sender, text=text, seq=1, ts=TS, msg_id="m", history=history)


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


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (_message("#dev", "Bob", "ship it"), "[#dev] Bob: ship it"),
        (_message("#dev", "Alice", "mine"), None),
        (Joined(room="#dev", nick="Bob"), "[#dev] Bob has joined."),
        (Joined(room="#dev", nick="alice"), None),
        (Left(room="#dev", nick="Bob"), "[#dev] Bob has left."),
        (Left(room="#dev", nick="Alice"), None),  # /part says so itself
        (
            Left(room="#dev", nick="Bob", reason="kicked", by="Carol", message="flooding"),
            "[#dev] Bob was kicked by Carol: flooding",
        ),
        (
            Left(room="#dev", nick="alice", reason="banned", by="Carol"),
            "[#dev] You were banned by Carol.",
        ),
        (
            Left(room="#general", nick="Bob", reason="kicked", by="Carol", message="spam"),
            "Bob was kicked from #general by Carol: spam",
        ),
        (
            TopicChanged(room="#dev", text="Release on Friday", by="Carol"),
            "[#dev] Carol set the topic: Release on Friday",
        ),
        (TopicChanged(room="#general", text="", by="Carol"), "Carol cleared the topic."),
        (Disconnected("gone", expected=True), None),  # the user asked to leave
    ],
)
def test_rooms_other_than_general_are_prefixed(event: object, line: str | None) -> None:
    assert describe(event, "Alice") == line  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (_message("#general", "Bob", "earlier", True), "[14:02] Bob: earlier"),
        (_message("#dev", "Bob", "earlier", True), "[14:02] [#dev] Bob: earlier"),
        # From the record, the user's own messages are shown too.
        (_message("#dev", "Alice", "mine", True), "[14:02] [#dev] Alice: mine"),
        (_message("Alice", "Bob", "while away", True), "[14:02] (private) Bob: while away"),
        (_message("Bob", "Alice", "sent", True), "[14:02] (private to Bob) Alice: sent"),
    ],
)
def test_history_is_marked_with_its_time(event: Message, line: str) -> None:
    assert describe(event, "Alice", now=NOW) == line


def test_history_from_another_day_shows_the_date() -> None:
    line = describe(_message("#dev", "Bob", "old", True), "Alice", now=NOW + 86400)
    assert line == "[2026-11-25 14:02] [#dev] Bob: old"


def test_history_is_stamped_with_the_timestamp_format_setting() -> None:
    event = _message("#dev", "Bob", "old", True)
    assert describe(event, "Alice", now=NOW, time_format="%I:%M %p") == "[02:02 PM] [#dev] Bob: old"
    other_day = describe(event, "Alice", now=NOW + 86400, time_format="%H:%M:%S")
    assert other_day is not None and other_day.startswith("[2026-11-25 14:02:")


def test_a_hostile_server_cannot_inject_escapes_either() -> None:
    # The server refuses such text, but a client must not rely on its server being honest.
    evil = "\x1b]0;title\x07\x1b[2J\r\u009b1m\u202e"
    lines = [
        describe(_message("#general", "Evil\x1b[31m", evil), "Alice"),
        describe(_message("#ev\x1bil", "Evil", evil, True), "Alice"),
        describe(Left(room="#d\x07", nick="B\x1b", reason="kicked", by="\x1b", message=evil), "A"),
        describe(TopicChanged(room="#x\x1b", text=evil, by="E\x07"), "Alice"),
        describe_room(RoomInfo(id=1, room="#r\x1b", topic=evil, topic_by="\x1b", members=1)),
        *describe_rooms(Rooms(id=1, rooms=[RoomSummary("#r\x1b", 1, evil)], total=1)),
        describe_unread(Unread(id=1, conversations=[UnreadCount(evil, 1, 1)])),
        describe_users(Users(id=1, users=[evil], total=1), "#r\x1b"),
    ]
    for line in lines:
        assert line is not None
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in line)


def test_user_list_says_how_many_more_there_are() -> None:
    assert describe_users(Users(id=1, users=["a", "b"], total=2)) == "Online (2): a, b"
    assert describe_users(Users(id=1, users=["a"], total=5)) == "Online (5): a and 4 more"
    assert describe_users(Users(id=1, users=["a", "b"], total=2), "#dev") == "In #dev (2): a, b"


def test_room_replies_read_as_sentences() -> None:
    assert describe_room(RoomInfo(id=1, room="#dev", topic="", topic_by="", members=1)) == (
        "#dev (1 member). No topic is set."
    )
    assert describe_room(
        RoomInfo(id=1, room="#dev", topic="Release Friday", topic_by="Carol", members=3)
    ) == ("#dev (3 members). Topic: Release Friday (set by Carol)")


def test_room_list_is_a_table_and_says_how_to_see_the_next_page() -> None:
    rooms = Rooms(
        id=1,
        rooms=[RoomSummary("#dev", 1, "Release Friday"), RoomSummary("#general", 5)],
        total=3,
        next="#general",
    )
    assert describe_rooms(rooms) == [
        "Rooms (3):",
        "  #dev      1 member  Release Friday",
        "  #general  5 members",
        "More: /rooms #general",
    ]
    assert describe_rooms(Rooms(id=1, rooms=[], total=0)) == ["No rooms."]
    assert describe_rooms(Rooms(id=1, rooms=[], total=3)) == ["No more rooms (3 in all)."]


def test_unread_counts() -> None:
    assert describe_unread(Unread(id=1, conversations=[])) == "No unread messages."
    unread = Unread(id=1, conversations=[UnreadCount("#dev", 3, 9), UnreadCount("Bob", 1, 2)])
    assert describe_unread(unread) == "Unread (4): #dev 3, Bob 1"
    cut = Unread(id=1, conversations=[UnreadCount("Bob", 1, 2)], more=True)
    assert describe_unread(cut) == "Unread (1): Bob 1, and more conversations not listed"


def test_whois_of_an_offline_account_with_and_without_its_role() -> None:
    from parley.client.render import describe_whois
    from parley.protocol.messages import UserInfo

    assert describe_whois(UserInfo(id=1, nick="Carol", online=False, account=True)) == [
        "Carol is an account, not online."
    ]
    seen_by_a_moderator = UserInfo(id=1, nick="Carol", online=False, account=True, role="admin")
    assert describe_whois(seen_by_a_moderator) == ["Carol is an account (admin), not online."]
