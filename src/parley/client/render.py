"""How events and replies read as lines of text: the wording every text front end uses.

#general reads as the original chat did (``Bob: hi``, ``Bob has joined the chat!``); every other
room's lines start with ``[#room] ``. A message from the record rather than live (the history
after a join, messages kept while away, /history) starts with its time, ``[14:02] `` (with the
date when not from today). Everything that came from a peer passes through ``for_terminal``
here, so no control character or escape sequence from another user can reach the screen.
"""

from __future__ import annotations

import time

from parley.client.core import HISTORY_RELOADED_TEXT, ClientEvent, Disconnected, HistoryReloaded
from parley.protocol.files import FileNotice, human_size, parse_notice
from parley.protocol.messages import (
    Error,
    GoingAway,
    Joined,
    Left,
    Message,
    Notice,
    RoomInfo,
    Rooms,
    TopicChanged,
    Unread,
    UserInfo,
    Users,
)
from parley.protocol.names import is_room, nick_key, room_key
from parley.protocol.text import ACTION_PREFIX
from parley.protocol.text import for_terminal as safe

_GENERAL = room_key("#general")


def describe(
    event: ClientEvent, me: str, now: float | None = None, time_format: str = "%H:%M"
) -> str | None:
    """The line to show for ``event`` as seen by the user ``me``, or None to show nothing.

    The user's own live messages and own joins and parts are not repeated: they typed them
    (a private message to oneself is shown: it is what it was sent to).
    A ``closing`` event shows nothing: the Disconnected event after it carries its reason.
    ``now`` (seconds since the epoch, default the clock) decides whether a message from the
    record is from today; ``time_format`` (the ``timestamp_format`` setting) stamps it, with the
    date before it when it is from another day.
    """
    match event:
        case Message(history=True):
            return f"{_stamp(event.ts, now, time_format)}{describe_message(event, me)}"
        case Message(sender=sender, to=to) if _is_me(sender, me) and _is_me(to, me):
            # A note to oneself: the only copy there is to show.
            return describe_message(event, me)
        case Message(sender=sender) | Joined(nick=sender) if _is_me(sender, me):
            return None
        case Message():
            return describe_message(event, me)
        case Joined(room=room, nick=nick) if _is_general(room):
            return f"{safe(nick)} has joined the chat!"
        case Joined(room=room, nick=nick):
            return f"{_prefix(room)}{safe(nick)} has joined."
        case Left(reason="kicked" | "banned"):
            return _describe_removal(event, me)
        case Left(nick=nick) if _is_me(nick, me):
            return None
        case Left(room=room, nick=nick) if _is_general(room):
            return f"{safe(nick)} has left the chat."
        case Left(room=room, nick=nick):
            return f"{_prefix(room)}{safe(nick)} has left."
        case TopicChanged(room=room, text=text, by=by) if text:
            return f"{_prefix(room)}{safe(by)} set the topic: {safe(text)}"
        case TopicChanged(room=room, by=by):
            return f"{_prefix(room)}{safe(by)} cleared the topic."
        case HistoryReloaded(to=to) if is_room(to):
            # The reloaded lines follow; those printed before cannot be taken back.
            return f"*** {_prefix(to)}{HISTORY_RELOADED_TEXT}"
        case HistoryReloaded(to=to):
            return f"*** (private with {safe(to)}) {HISTORY_RELOADED_TEXT}"
        case Disconnected(expected=True):
            return None
        case (
            Notice(text=text)
            | Error(message=text)
            | GoingAway(message=text)
            | Disconnected(reason=text)
        ):
            return f"*** {safe(text)}"
    return None


def describe_message(message: Message, me: str) -> str:
    """A chat message as a line, without a time stamp."""
    sender, text = safe(message.sender), safe(message.text)
    said = f"{sender}: {text}"
    shared = parse_notice(message.text)
    if shared is not None:
        said = f"{sender} {describe_shared(shared)}"
    elif message.text.startswith(ACTION_PREFIX):
        said = f"* {sender} {safe(message.text[len(ACTION_PREFIX) :])}"
    if is_room(message.to):
        return f"{_prefix(message.to)}{said}"
    if _is_me(message.sender, me) and not _is_me(message.to, me):
        return f"(private to {safe(message.to)}) {said}"
    return f"(private) {said}"


def describe_shared(shared: FileNotice) -> str:
    """``shared report.pdf (2.4 MB) — /get 7f3a1b2c``."""
    return f"shared {safe(shared.name)} ({human_size(shared.size)}) — /get {safe(shared.id[:8])}"


def _describe_removal(left: Left, me: str) -> str:
    who = "You were" if _is_me(left.nick, me) else f"{safe(left.nick)} was"
    by = f" by {safe(left.by)}" if left.by else ""
    why = f": {safe(left.message)}" if left.message else "."
    # #general lines have no room prefix; say which room it was.
    where = " from #general" if _is_general(left.room) else ""
    return f"{_prefix(left.room)}{who} {left.reason}{where}{by}{why}"


def _stamp(ts_ms: int, now: float | None, time_format: str) -> str:
    when = time.localtime(ts_ms / 1000)
    today = time.localtime(time.time() if now is None else now)
    if (when.tm_year, when.tm_yday) == (today.tm_year, today.tm_yday):
        return time.strftime(f"[{time_format}] ", when)
    return time.strftime(f"[%Y-%m-%d {time_format}] ", when)


def _prefix(room: str) -> str:
    return "" if _is_general(room) else f"[{safe(room)}] "


def _is_general(room: str) -> bool:
    return room_key(room) == _GENERAL


def _is_me(nick: str, me: str) -> bool:
    return bool(me) and nick_key(nick) == nick_key(me)


# --- replies ---------------------------------------------------------------------------------


def describe_users(users: Users, room: str | None = None) -> str:
    """The reply to ``list`` (who is online) or, with ``room``, to ``who``."""
    names = ", ".join(safe(name) for name in users.users)
    more = f" and {users.total - len(users.users)} more" if users.total > len(users.users) else ""
    where = "Online" if room is None else f"In {safe(room)}"
    return f"{where} ({users.total}): {names}{more}"


def describe_room(info: RoomInfo) -> str:
    """A room's state: the reply to ``join`` and to ``topic`` without text."""
    people = "1 member" if info.members == 1 else f"{info.members} members"
    if not info.topic:
        return f"{safe(info.room)} ({people}). No topic is set."
    by = f" (set by {safe(info.topic_by)})" if info.topic_by else ""
    return f"{safe(info.room)} ({people}). Topic: {safe(info.topic)}{by}"


def describe_rooms(rooms: Rooms) -> list[str]:
    """A page of the reply to ``rooms``: a heading, one line per room in name order, and how
    to ask for the next page when there is one.
    """
    if not rooms.rooms:
        return ["No rooms."] if not rooms.total else [f"No more rooms ({rooms.total} in all)."]
    width = max(len(safe(summary.room)) for summary in rooms.rooms)
    lines = [f"Rooms ({rooms.total}):"]
    for summary in rooms.rooms:
        people = "1 member" if summary.members == 1 else f"{summary.members} members"
        topic = f"  {safe(summary.topic)}" if summary.topic else ""
        lines.append(f"  {safe(summary.room):<{width}}  {people}{topic}")
    if rooms.next:
        lines.append(f"More: /rooms {safe(rooms.next)}")
    return lines


def describe_unread(unread: Unread) -> str:
    """The reply to ``unread``."""
    if not unread.conversations:
        return "No unread messages."
    parts = [f"{safe(entry.to)} {entry.count}" for entry in unread.conversations]
    total = sum(entry.count for entry in unread.conversations)
    more = ", and more conversations not listed" if unread.more else ""
    return f"Unread ({total}): {', '.join(parts)}{more}"


def describe_whois(info: UserInfo) -> list[str]:
    """The reply to ``whois``: who, since when, where, and whether away."""
    nick = safe(info.nick)
    # An offline account's role is shown to server moderators only.
    role = f" ({safe(info.role)})" if info.role else ""
    kind = f"an account{role}" if info.account else "a guest"
    if not info.online:
        return [f"{nick} is {kind}, not online."]
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.connected_ms / 1000))
    idle = f", idle {_span(info.idle_seconds)}" if info.idle_seconds >= 60 else ""
    lines = [f"{nick} is {kind}, online since {since}{idle}."]
    if info.rooms:
        lines.append(f"{nick} is in {', '.join(safe(room) for room in info.rooms)}.")
    if info.away:
        lines.append(f"{nick} is away: {safe(info.away)}")
    return lines


def _span(seconds: int) -> str:
    """``2h 5m`` for 7500 seconds: the two largest units."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2]) or "0s"
