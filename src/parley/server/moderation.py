"""Kick, ban, unban, mute, unmute and op: who may, what happens, and the audit log.

Room operators (whoever created the room, or was made one) act on users in their room; server
moderators and admins act everywhere; only an admin acts on a moderator; nobody acts on
themselves. A sanction of an account is against its principal id, never its name: a later
account of the same name is not touched by it. A guest is a new principal at every login, so
its sanction holds against its id and against guests using its name (hub.sanction_keys). Bans
and mutes are stored (so they outlast reconnects and restarts) and every action is audited.

With several nodes, the target may be connected to another one: the action is stored here and
announced (cluster_events), and the node the target is on applies it to its connection.
"""

from __future__ import annotations

import logging

from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.messages import Left, Notice, encode
from parley.protocol.names import nick_key, normalize_nick
from parley.protocol.text import check_reason
from parley.server.cluster_events import MuteChanged, OperatorAdded, Removed, Told
from parley.server.hub import Hub, guest_sanction_key, sanction_keys
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
    target = hub.user(nick_key(target_name))
    account = await storage.account(nick_key(target_name))
    # Online on another node: its principal, to act on it there.
    remote = await hub.find_remote(nick_key(target_name)) if target is None else None
    if remote is not None:
        if account is not None and account.id == remote.principal:
            target_keys = [account.id]
            target_role = account.role
        else:
            account = None
            target_keys = [remote.principal, guest_sanction_key(remote.nick)]
            target_role = Role.USER
    elif target is not None:
        target_keys = sanction_keys(target)
        target_role = target.role
        if account is not None and account.id != target.principal:
            account = None  # a guest online under the name of an account made since
    elif account is not None:
        target_keys = [account.id]
        target_role = account.role
    else:
        # A guest who has left (or was never here): held by the name guests use.
        target_keys = [guest_sanction_key(target_name)]
        target_role = Role.USER
    outranked = target_role is not Role.USER and RANK[target_role] >= RANK[actor.role]
    if actor.principal in target_keys or (outranked and actor.role is not Role.ADMIN):
        raise PeerError(ErrorCode.NOT_PERMITTED, f"You cannot {action} {target_name}.")
    now = hub.clock.now_ms()
    if action == "kick":
        # One on another node is taken out there, if it is in the room.
        if remote is None and (target is None or target not in room.members):
            raise PeerError(ErrorCode.NOT_IN_ROOM, f"{target_name} is not in {room.name}.")
    elif action in ("ban", "mute"):
        until = now + seconds * 1000 if seconds is not None else None
        kind = SanctionKind(action)
        for key in target_keys:
            await storage.add_sanction(
                Sanction(room.key, key, kind, until, actor.nick, reason, now)
            )
            if kind is SanctionKind.MUTE:
                room.muted[key] = until
        if kind is SanctionKind.MUTE:
            hub.announce(MuteChanged(room.key, target_keys, until, lifted=False))
    else:
        kind = SanctionKind.BAN if action == "unban" else SanctionKind.MUTE
        lifted = False
        for key in target_keys:
            lifted = await storage.remove_sanction(room.key, key, kind) or lifted
            if kind is SanctionKind.MUTE:
                room.muted.pop(key, None)
        if kind is SanctionKind.MUTE:
            hub.announce(MuteChanged(room.key, target_keys, None, lifted=True))
        if not lifted:
            raise PeerError(
                ErrorCode.NOT_PERMITTED, f"{target_name} is not {kind.value}ned in {room.name}."
            )
    detail = reason + (f" ({seconds} s)" if seconds is not None else "")
    await storage.record_audit(
        ts=now, actor=actor.nick, action=action, room=room.name, target=target_name, detail=detail
    )
    log.info(
        "%s: %s %s in %s %s",
        actor.nick,
        action,
        target_name,
        room.name,
        detail,
        extra={"nick_key": actor.nick_key, "event": action, "room": room.name},
    )
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
        elif remote is not None:
            why = "kicked" if action == "kick" else "banned"
            hub.announce(Removed(room.key, remote.principal, why, actor.nick, reason))
    else:
        text = _NOTICES[action].format(room=room.name, by=actor.nick)
        text += f" Reason: {reason}" if reason else ""
        if target is not None:
            target.write(encode(Notice(text=text)))
        elif remote is not None:
            hub.announce(Told(remote.principal, text))


async def appoint(hub: Hub, actor: Peer, raw_room: str, raw_nick: str) -> str:
    """Make the account ``raw_nick`` an operator of a room, for good (server moderators and
    admins only: how a room whose guest creator has left gets an operator). Returns the room's
    name. Raises PeerError: NOT_PERMITTED, INVALID_ROOM, NO_SUCH_ROOM, INVALID_NICK,
    NO_SUCH_USER (no account of that name: an operator's rights outlive a connection).
    """
    if actor.role is Role.USER:
        raise PeerError(ErrorCode.NOT_PERMITTED, "Only server moderators appoint operators.")
    room = await hub.room_named(raw_room)
    target_name = normalize_nick(raw_nick)
    account = await hub.storage.account(nick_key(target_name))
    if account is None:
        raise PeerError(
            ErrorCode.NO_SUCH_USER, f"{target_name} has no account; only accounts run rooms."
        )
    await hub.storage.add_member(room.key, account.key, operator=True)
    target = hub.user(account.key)
    room.operators.add(account.id)
    hub.announce(OperatorAdded(room.key, account.id))
    text = f"You are now an operator of {room.name} (made so by {actor.nick})."
    if target is not None and target.principal == account.id:
        target.write(encode(Notice(text=text)))
    else:
        hub.announce(Told(account.id, text))
    await hub.storage.record_audit(
        ts=hub.clock.now_ms(), actor=actor.nick, action="op", room=room.name, target=account.name
    )
    log.info(
        "%s: op %s in %s",
        actor.nick,
        account.name,
        room.name,
        extra={"nick_key": actor.nick_key, "event": "op", "room": room.name},
    )
    return room.name
