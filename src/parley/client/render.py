"""How events read as lines of text: the wording every text front end uses.

Everything that came from a peer passes through ``for_terminal`` here, so no control character
or escape sequence from another user can reach the screen.
"""

from __future__ import annotations

from parley.client.core import ClientEvent, Disconnected
from parley.protocol.messages import Error, Joined, Left, Message, Notice, Users
from parley.protocol.names import is_room, nick_key
from parley.protocol.text import for_terminal as safe


def describe(event: ClientEvent, me: str) -> str | None:
    """The line to show for ``event`` as seen by the user ``me``, or None to show nothing.

    The user's own messages and own join are not repeated: they typed them. A ``closing``
    event shows nothing: the Disconnected event after it carries its reason.
    """
    match event:
        case Message(sender=sender) | Joined(nick=sender) if _is_me(sender, me):
            return None
        case Message(to=to, sender=sender, text=text) if is_room(to):
            return f"{safe(sender)}: {safe(text)}"
        case Message(sender=sender, text=text):
            return f"(private) {safe(sender)}: {safe(text)}"
        case Joined(nick=nick):
            return f"{safe(nick)} has joined the chat!"
        case Left(nick=nick):
            return f"{safe(nick)} has left the chat."
        case Notice(text=text) | Error(message=text) | Disconnected(reason=text):
            return f"*** {safe(text)}"
    return None


def _is_me(nick: str, me: str) -> bool:
    return bool(me) and nick_key(nick) == nick_key(me)


def describe_users(users: Users) -> str:
    names = ", ".join(safe(name) for name in users.users)
    more = f" and {users.total - len(users.users)} more" if users.total > len(users.users) else ""
    return f"Online ({users.total}): {names}{more}"
