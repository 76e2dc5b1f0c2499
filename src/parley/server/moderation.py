"""Kick, ban, unban, mute and unmute: who may, what happens, and the audit log.

Room operators (whoever created the room) act on users in their room; server moderators and
admins act everywhere; only an admin acts on a moderator; nobody acts on themselves. Bans and
mutes are stored (so they outlast reconnects and restarts) and every action is audited.
"""

from __future__ import annotations

import logging

from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.messages import Left, Notice, encode
from parley.protocol.names import nick_key, normalize_nick
from parley.protocol.text import check_reason
from parley.server.hub import Hub, now_ms
from parley.server.rooms import RANK, Peer
from parley.storage import Role, Sanction, SanctionKind

log = logging.getLogger(__name__)

ACTIONS = ("kick", "ban", "unban", "mute", "unmute")
# What the target is told ({room}, {by} filled in); kicks and bans show as a 'left' event.
_NOTICES = {
    "mute": "You were muted in {room} by {by}.",
    "unmute": "You may speak in {room} again ({by} lifted the mute).",
    "unban": "You may join {room} again ({by} lifted the ban).",
}


async def moderate(
    hub: Hub,
    actor: Peer,
    action: str,
    raw_room: str,
    raw_nick: str,
    *,
    seconds: int | None = None,
    reason: str = "",
) -> None:
    """Apply ``action`` (one of ACTIONS) to ``raw_nick`` in a room, and audit it.

    Raises PeerError: INVALID_TEXT (reason), INVALID_ROOM, NO_SUCH_ROOM, INVALID_NICK,
    NOT_PERMITTED (not an operator, or outranked), NOT_IN_ROOM (kick), or NOT_PERMITTED when
    lifting a ban or mute that is not there.
    """
    check_reason(reason)
    room = await hub.room_named(raw_room)
    if not room.may_moderate(actor):
        raise PeerError(ErrorCode.NOT_PERMITTED, f"You are not an operator of {room.name}.")
    storage = hub.storage
    target_name = normalize_nick(raw_nick)
    target_key = nick_key(target_name)
    target = hub.user(target_key)
    account = await storage.account(target_key)
    target_role = account.role if account is not None else Role.USER
    outranked = target_role is not Role.USER and RANK[target_role] >= RANK[actor.role]
    if target_key == actor.nick_key or (outranked and actor.role is not Role.ADMIN):
        raise PeerError(ErrorCode.NOT_PERMITTED, f"You cannot {action} {target_name}.")
    now = now_ms()
    if action == "kick":
        if target is None or target not in room.members:
            raise PeerError(ErrorCode.NOT_IN_ROOM, f"{target_name} is not in {room.name}.")
    elif action in ("ban", "mute"):
        until = now + seconds * 1000 if seconds is not None else None
        kind = SanctionKind(action)
        await storage.add_sanction(
            Sanction(room.key, target_key, kind, until, actor.nick, reason, now)
        )
        if kind is SanctionKind.MUTE:
            room.muted[target_key] = until
    else:
        kind = SanctionKind.BAN if action == "unban" else SanctionKind.MUTE
        if not await storage.remove_sanction(room.key, target_key, kind):
            raise PeerError(
                ErrorCode.NOT_PERMITTED, f"{target_name} is not {kind.value}ned in {room.name}."
            )
        if kind is SanctionKind.MUTE:
            room.muted.pop(target_key, None)
    detail = reason + (f" ({seconds} s)" if seconds is not None else "")
    await storage.record_audit(
        ts=now, actor=actor.nick, action=action, room=room.name, target=target_name, detail=detail
    )
    log.info("%s: %s %s in %s %s", actor.nick, action, target_name, room.name, detail)
    if action in ("kick", "ban"):
        # Out of the room for good: not back in it at the account's next login.
        if account is not None:
            await storage.remove_member(room.key, account.key)
        if target is not None and target in room.members:
            left = Left(
                room=room.name,
                nick=target.nick,
                reason="kicked" if action == "kick" else "banned",
                by=actor.nick,
                message=reason,
            )
            hub.remove(target, room, left)
    elif target is not None:
        text = _NOTICES[action].format(room=room.name, by=actor.nick)
        target.write(encode(Notice(text=text + (f" Reason: {reason}" if reason else ""))))
