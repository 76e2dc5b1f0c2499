"""Events as the lines of a windowed client (full-screen terminal, desktop): which window each
goes in and how it reads. Everything from a peer passes through ``for_terminal``.

``/me`` actions travel as message text starting with ``/me `` (see docs/protocol.md); here they
become action lines, ``* Alice waves``.
"""

from __future__ import annotations

import time

from parley.client.core import ClientEvent
from parley.client.render import describe_shared
from parley.client.windows import Line, Style, mentions
from parley.protocol.files import parse_notice
from parley.protocol.messages import Error, Joined, Left, Message, Notice, TopicChanged
from parley.protocol.names import is_room, nick_key
from parley.protocol.text import ACTION_PREFIX, for_terminal


def place(event: ClientEvent, me: str) -> tuple[str | None, Line] | None:
    """The window for ``event`` (a room, a nickname, or None for the window in view) and its
    line; None for events that show nothing (the user's own join, a connection's end).
    """
    now = time.time()
    match event:
        case Message():
            return conversation_name(event, me), message_line(event, me)
        case Joined(room=room, nick=nick) if not _is_me(nick, me):
            return room, Line(
                now, f"{for_terminal(nick)} has joined {for_terminal(room)}", Style.EVENT
            )
        case Left(reason="kicked" | "banned"):
            # Our own removal shows where the user is looking: its room is closed to them.
            where = None if _is_me(event.nick, me) else event.room
            return where, Line(
                now, _removal(event, me), Style.EVENT, mention=_is_me(event.nick, me)
            )
        case Left(room=room, nick=nick) if not _is_me(nick, me):
            return room, Line(
                now, f"{for_terminal(nick)} has left {for_terminal(room)}", Style.EVENT
            )
        case TopicChanged(room=room, text=text, by=by) if text:
            return room, Line(
                now, f"{for_terminal(by)} set the topic: {for_terminal(text)}", Style.EVENT
            )
        case TopicChanged(room=room, by=by):
            return room, Line(now, f"{for_terminal(by)} cleared the topic", Style.EVENT)
        case Notice(text=text):
            return None, Line(now, for_terminal(text), Style.NOTICE)
        case Error(message=text):
            return None, Line(now, for_terminal(text), Style.ERROR)
    return None


def conversation_name(message: Message, me: str) -> str:
    """The room, or for a private message the other user's nickname."""
    if is_room(message.to) or not _is_me(message.sender, me):
        return message.to if is_room(message.to) else message.sender
    return message.to


def message_line(message: Message, me: str) -> Line:
    own = _is_me(message.sender, me)
    text, style, file_id = message.text, Style.MESSAGE, ""
    shared = parse_notice(text)
    if shared is not None:
        text, style, file_id = describe_shared(shared), Style.ACTION, shared.id
    elif text.startswith(ACTION_PREFIX):
        text, style = text[len(ACTION_PREFIX) :], Style.ACTION
    return Line(
        message.ts / 1000,
        for_terminal(text),
        style,
        sender=for_terminal(message.sender),
        own=own,
        mention=not own and mentions(text, me),
        history=message.history,
        file_id=file_id,
    )


def _removal(left: Left, me: str) -> str:
    who = "You were" if _is_me(left.nick, me) else f"{for_terminal(left.nick)} was"
    by = f" by {for_terminal(left.by)}" if left.by else ""
    why = f": {for_terminal(left.message)}" if left.message else ""
    return f"{who} {left.reason} from {for_terminal(left.room)}{by}{why}"


def _is_me(nick: str, me: str) -> bool:
    return bool(me) and nick_key(nick) == nick_key(me)
