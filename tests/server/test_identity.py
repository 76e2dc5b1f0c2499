"""Identity you can trust, over real TLS: what a guest leaves behind belongs to no later holder
of its name, sanctions and rights belong to an account and not to its name, and a server
moderator can give a room whose guest creator left an operator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.client.core import ChatClient
from parley.client.transfer import download, upload
from parley.config import ServerConfig
from parley.protocol.errors import RequestRefused
from parley.server.app import ParleyServer
from support import NO_SHARED_BUDGETS, RawClient, raw_user

PASSWORD = "correct horse battery"


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    config = dataclasses.replace(server_config, flood_burst_requests=1000, **NO_SHARED_BUDGETS)
    async with ParleyServer(config) as running:
        yield running


async def _client(server: ParleyServer, nick: str, password: str | None = None) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    await client.login(nick, password=password)
    return client


async def _account(server: ParleyServer, nick: str) -> ChatClient:
    client = await _client(server, nick)
    await client.register(PASSWORD)
    return client


async def test_a_guest_name_taken_later_gets_none_of_its_history_or_files(
    server: ParleyServer, tmp_path: Path
) -> None:
    bob = await _account(server, "Bob")
    eve = await _client(server, "Eve")
    await eve.send("Bob", "my secret plan")
    await bob.send("Eve", "here is the contract")
    source = tmp_path / "contract.txt"
    source.write_bytes(b"for Eve only\n" * 1000)
    file_id = await upload(bob, source, "Eve")
    # While she is here, Eve has both.
    seen = [m.text for m in (await eve.history("Bob")).messages]
    assert seen[:2] == ["my secret plan", "here is the contract"]
    assert [f.file_id for f in (await eve.files()).files] == [file_id]
    await eve.close()

    # Someone else takes the name, and even registers it.
    mallory = await _account(server, "Eve")
    earlier = [m.text for m in (await mallory.history("Bob")).messages]
    assert "my secret plan" not in earlier and "here is the contract" not in earlier
    assert (await mallory.files()).files == []
    for attempt in (mallory.get_file(file_id), mallory.delete_file(file_id)):
        with pytest.raises(RequestRefused) as refused:
            await attempt
        assert refused.value.code == "no-such-file"

    # Bob, the registered side, keeps what is his: the file he sent, whole.
    assert [f.file_id for f in (await bob.files()).files] == [file_id]
    (tmp_path / "back").mkdir()
    fetched = await download(bob, file_id, tmp_path / "back")
    assert fetched.read_bytes() == source.read_bytes()
    # ...and what Mallory says to him now is a conversation of its own.
    await mallory.send("Bob", "hello, new here")
    assert [m.text for m in (await bob.history("Eve")).messages] == ["hello, new here"]
    for client in (bob, mallory):
        await client.close()


async def test_a_room_made_by_a_guest_has_no_operator_once_it_leaves(
    server: ParleyServer,
) -> None:
    founder = await raw_user(server.port, "Founder")
    assert (await founder.request("join", room="#club"))["type"] == "room"
    member = await raw_user(server.port, "Member")
    await member.request("join", room="#club")
    # While it stays, the guest runs its room.
    assert (await founder.request("topic", room="#club", text="welcome"))["type"] == "ok"
    await founder.close()

    taker = await raw_user(server.port, "Founder")
    assert (await taker.request("register", password=PASSWORD))["type"] == "ok"
    assert (await taker.request("join", room="#club"))["type"] == "room"
    for refused in (
        await taker.request("topic", room="#club", text="mine now"),
        await taker.request("ban", room="#club", nick="Member"),
        await taker.request("op", room="#club", nick="Founder"),
    ):
        assert refused["code"] == "not-permitted", refused

    # A server moderator appoints an operator; it runs the room from then on, and after
    # logging in again.
    assert server.admin_password is not None
    admin = await raw_user(server.port, "admin", password=server.admin_password)
    assert (await admin.request("op", room="#club", nick="Nobody"))["code"] == "no-such-user"
    assert (await admin.request("op", room="#nowhere", nick="Member"))["code"] == "no-such-room"
    guest = await admin.request("op", room="#club", nick="Member")
    assert guest["code"] == "no-such-user" and "account" in guest["message"]
    assert (await member.request("register", password=PASSWORD))["type"] == "ok"
    assert (await admin.request("op", room="#club", nick="member"))["type"] == "ok"
    notice = await member.event("notice")
    assert "operator of #club" in notice["text"]
    assert (await member.request("topic", room="#club", text="under new care"))["type"] == "ok"
    await member.close()
    member = await raw_user(server.port, "Member", password=PASSWORD)
    assert (await member.request("kick", room="#club", nick="Founder"))["type"] == "ok"
    entries = await server.storage.audit_log(5)
    assert ("admin", "op", "#club", "Member") in [
        (e.actor, e.action, e.room, e.target) for e in entries
    ]
    for client in (taker, admin, member):
        await client.close()


async def test_a_sanction_belongs_to_the_account_not_its_name(server: ParleyServer) -> None:
    op = await raw_user(server.port, "Op")
    assert (await op.request("register", password=PASSWORD))["type"] == "ok"
    await op.request("join", room="#dev")
    troll = await raw_user(server.port, "Troll")
    assert (await troll.request("register", password=PASSWORD))["type"] == "ok"
    await troll.request("join", room="#dev")
    assert (await op.request("ban", room="#dev", nick="Troll"))["type"] == "ok"
    await troll.close()
    # The banned account comes back: still banned.
    troll = await raw_user(server.port, "Troll", password=PASSWORD)
    assert (await troll.request("join", room="#dev"))["code"] == "banned"
    await troll.close()
    # The account is deleted, and someone else registers the name: a new principal, with
    # neither the old account's ban nor anything else of it.
    assert await server.storage.delete_account("troll")
    newcomer = await raw_user(server.port, "Troll")
    assert (await newcomer.request("register", password=PASSWORD))["type"] == "ok"
    assert (await newcomer.request("join", room="#dev"))["type"] == "room"
    # A guest is held by its name as well as its login: reconnecting does not shed a ban.
    pest = await raw_user(server.port, "Pest")
    await pest.request("join", room="#dev")
    assert (await op.request("ban", room="#dev", nick="Pest"))["type"] == "ok"
    await pest.close()
    pest = await raw_user(server.port, "Pest")
    assert (await pest.request("join", room="#dev"))["code"] == "banned"
    assert (await op.request("unban", room="#dev", nick="Pest"))["type"] == "ok"
    assert (await pest.request("join", room="#dev"))["type"] == "room"
    for client in (op, newcomer, pest):
        await client.close()


async def test_whois_of_an_offline_account_keeps_its_role_from_users(
    server: ParleyServer,
) -> None:
    plain = await raw_user(server.port, "Plain")
    about = await plain.request("whois", nick="admin")
    assert (about["online"], about["account"]) == (False, True)
    assert "role" not in about
    await plain.close()


async def test_a_guest_is_not_the_account_it_is_named_like(server: ParleyServer) -> None:
    # A stranger cannot reach an account's private conversation by guessing its id or name.
    alice = await _account(server, "Alice")
    bob = await _account(server, "Bob")
    await alice.send("Bob", "between us")
    await bob.close()
    guest = await RawClient.open(server.port)
    assert (await guest.try_login("Bob"))["code"] == "password-required"
    await guest.close()
    other = await _client(server, "Carol")
    with pytest.raises(RequestRefused) as refused:
        await other.history("Nobody")
    assert refused.value.code == "no-such-user"
    assert (await other.history("Bob")).messages == []
    await alice.close()
    await other.close()


async def test_the_owner_logging_in_twice_is_told_it_is_their_own_session(
    server: ParleyServer,
) -> None:
    alice = await _account(server, "Alice")
    second = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    try:
        with pytest.raises(RequestRefused) as refused:
            await second.login("Alice", password=PASSWORD)
        assert refused.value.code == "nick-taken"
        assert "Alice is already logged in on another connection" in refused.value.message
        with pytest.raises(RequestRefused) as stranger:
            await second.login("ALICE", password="wrong password")
        assert stranger.value.code == "auth-failed"
    finally:
        await second.close()
        await alice.close()
