"""Moderation over real TLS: kick, ban (with expiry), mute, who may do it, and the audit log."""

from __future__ import annotations

import asyncio

from parley.server.app import ParleyServer
from support import RawClient, raw_user


async def room_with(server: ParleyServer, *nicks: str) -> list[RawClient]:
    """Clients logged in as ``nicks``, all in #dev, which the first one created (its operator)."""
    clients = [await raw_user(server.port, nick) for nick in nicks]
    for client in clients:
        assert (await client.request("join", room="#dev"))["type"] == "room"
    return clients


async def test_an_operator_kicks_and_the_user_may_come_back(server: ParleyServer) -> None:
    op, bob, carol = await room_with(server, "Op", "Bob", "Carol")
    assert (await op.request("kick", room="#dev", nick="bob", reason="calm down"))["type"] == "ok"
    seen = await carol.event("left", room="#dev", nick="Bob")
    assert (seen["reason"], seen["by"], seen["message"]) == ("kicked", "Op", "calm down")
    await bob.event("left", room="#dev", nick="Bob", reason="kicked")
    assert (await bob.request("send", to="#dev", text="hi", msg_id="1"))["code"] == "not-in-room"
    assert (await bob.request("join", room="#dev"))["type"] == "room"
    assert (await op.request("kick", room="#dev", nick="Nobody"))["code"] == "not-in-room"
    for reason in ("line\nbreak", "\x1b[31mred", "\x00"):
        refused = await op.request("kick", room="#dev", nick="Bob", reason=reason)
        assert refused["code"] == "invalid-text"
    assert (await op.request("kick", room="#dev", nick="Bob", reason="r" * 301))["code"] == (
        "invalid-message"
    )
    for client in (op, bob, carol):
        await client.close()


async def test_only_operators_moderate_and_nobody_moderates_themselves(
    server: ParleyServer,
) -> None:
    op, bob = await room_with(server, "Op", "Bob")
    for action in ("kick", "ban", "mute", "unban", "unmute"):
        refused = await bob.request(action, room="#dev", nick="Op")
        assert refused["code"] == "not-permitted", (action, refused)
    assert (await op.request("kick", room="#dev", nick="Op"))["code"] == "not-permitted"
    assert (await op.request("kick", room="#nowhere", nick="Bob"))["code"] == "no-such-room"
    # #general was made by the server: only moderators and admins run it.
    assert (await op.request("kick", room="#general", nick="Bob"))["code"] == "not-permitted"
    await op.close()
    await bob.close()


async def test_a_ban_keeps_a_user_out_until_lifted(server: ParleyServer) -> None:
    op, bob = await room_with(server, "Op", "Bob")
    assert (await op.request("ban", room="#dev", nick="Bob", reason="spam"))["type"] == "ok"
    left = await op.event("left", room="#dev", nick="Bob")
    assert (left["reason"], left["message"]) == ("banned", "spam")
    assert (await bob.request("join", room="#dev"))["code"] == "banned"
    assert (await op.request("unban", room="#dev", nick="Bob"))["type"] == "ok"
    assert (await op.request("unban", room="#dev", nick="Bob"))["code"] == "not-permitted"
    assert (await bob.request("join", room="#dev"))["type"] == "room"
    await op.close()
    await bob.close()


async def test_a_timed_ban_ends_by_itself(server: ParleyServer) -> None:
    op, bob = await room_with(server, "Op", "Bob")
    assert (await op.request("ban", room="#dev", nick="Bob", seconds=1))["type"] == "ok"
    assert (await bob.request("join", room="#dev"))["code"] == "banned"
    await asyncio.sleep(1.1)
    assert (await bob.request("join", room="#dev"))["type"] == "room"
    assert (await op.request("ban", room="#dev", nick="Bob", seconds=0))["code"] == (
        "invalid-message"
    )
    await op.close()
    await bob.close()


async def test_a_muted_user_reads_but_cannot_send(server: ParleyServer) -> None:
    op, bob = await room_with(server, "Op", "Bob")
    assert (await op.request("mute", room="#dev", nick="Bob", reason="shouting"))["type"] == "ok"
    notice = await bob.event("notice")
    assert "muted in #dev by Op" in notice["text"] and "shouting" in notice["text"]
    assert (await bob.request("send", to="#dev", text="hi", msg_id="1"))["code"] == "muted"
    # Elsewhere Bob still talks.
    assert (await bob.request("send", to="#general", text="hi", msg_id="2"))["type"] == "sent"
    await op.request("send", to="#dev", text="bob can read this", msg_id="3")
    assert (await bob.event("message", to="#dev"))["text"] == "bob can read this"
    assert (await op.request("unmute", room="#dev", nick="Bob"))["type"] == "ok"
    assert (await bob.request("send", to="#dev", text="thanks", msg_id="4"))["type"] == "sent"
    await op.close()
    await bob.close()


async def test_a_mute_outlasts_a_reconnect(server: ParleyServer) -> None:
    op, bob = await room_with(server, "Op", "Bob")
    await op.request("mute", room="#dev", nick="Bob")
    await bob.close()
    bob = await raw_user(server.port, "Bob")
    await bob.request("join", room="#dev")
    assert (await bob.request("send", to="#dev", text="sneaky", msg_id="1"))["code"] == "muted"
    await op.close()
    await bob.close()


async def test_moderators_outrank_operators_and_admins_outrank_all(server: ParleyServer) -> None:
    assert server.admin_password is not None
    admin = await raw_user(server.port, "admin", password=server.admin_password)
    op, bob = await room_with(server, "Op", "Bob")
    await admin.request("join", room="#dev")
    assert (await op.request("kick", room="#dev", nick="admin"))["code"] == "not-permitted"
    assert (await admin.request("kick", room="#general", nick="Bob"))["type"] == "ok"
    assert (await admin.request("mute", room="#dev", nick="Op"))["type"] == "ok"
    entries = await server.storage.audit_log(10)
    assert [(e.actor, e.action, e.room, e.target) for e in entries[:2]] == [
        ("admin", "mute", "#dev", "Op"),
        ("admin", "kick", "#general", "Bob"),
    ]
    for client in (admin, op, bob):
        await client.close()


async def test_an_account_that_made_a_room_runs_it_after_leaving(server: ParleyServer) -> None:
    owner = await raw_user(server.port, "Owner")
    assert (await owner.request("register", password="correct horse battery"))["type"] == "ok"
    await owner.request("join", room="#mine")
    await owner.request("part", room="#mine")
    await owner.close()
    bob = await raw_user(server.port, "Bob")
    await bob.request("join", room="#mine")
    owner = await raw_user(server.port, "Owner", password="correct horse battery")
    await owner.request("join", room="#mine")
    assert (await owner.request("kick", room="#mine", nick="Bob"))["type"] == "ok"
    # A guest who made a room runs it only while it stays.
    guest = await raw_user(server.port, "Guest")
    await guest.request("join", room="#fleeting")
    await guest.request("part", room="#fleeting")
    await bob.request("join", room="#fleeting")
    await guest.request("join", room="#fleeting")
    assert (await guest.request("kick", room="#fleeting", nick="Bob"))["code"] == "not-permitted"
    for client in (owner, bob, guest):
        await client.close()
