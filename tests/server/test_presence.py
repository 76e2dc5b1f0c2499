"""Presence over real TLS: away (and the ``sent`` that tells a sender), whois of guests,
accounts online and off, unknown and invalid names, hostile away texts, idle time."""

from __future__ import annotations

import time

import pytest

from parley.config import ServerConfig
from parley.protocol import limits
from parley.server.app import ParleyServer
from parley.storage import StorageUnavailable
from support import FakeClock, RawClient, assert_still_serving, raw_user

PASSWORD = "correct horse battery"


async def test_away_shows_in_whois_until_cleared(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    assert (await bob.request("away", text="gone for lunch"))["type"] == "ok"
    assert (await alice.request("whois", nick="bob"))["away"] == "gone for lunch"
    # Changing it replaces it.
    assert (await bob.request("away", text="in a meeting"))["type"] == "ok"
    assert (await alice.request("whois", nick="bob"))["away"] == "in a meeting"
    assert (await bob.request("away", text=""))["type"] == "ok"
    assert "away" not in await alice.request("whois", nick="bob")
    # No text at all, or only blanks, is back too.
    await bob.request("away", text="brb")
    assert (await bob.request("away"))["type"] == "ok"
    assert "away" not in await alice.request("whois", nick="bob")
    await bob.request("away", text="brb")
    await bob.request("away", text="  \t ")
    assert "away" not in await alice.request("whois", nick="bob")
    # Nothing about it was broadcast.
    await alice.request("ping")
    assert not [event for event in alice.events if event["type"] != "joined"]
    await alice.close()
    await bob.close()


async def test_a_private_message_to_someone_away_says_so(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    await bob.request("away", text="gone for lunch")
    sent = await alice.request("send", to="BOB", text="lunch?", msg_id="p1")
    assert (sent["type"], sent["away"]) == ("sent", "gone for lunch")
    message = await bob.event("message", msg_id="p1")
    assert (message["sender"], message["text"]) == ("Alice", "lunch?")
    # A retry is still answered with the away text; a room message is not about anyone.
    retry = await alice.request("send", to="bob", text="lunch?", msg_id="p1")
    assert (retry["duplicate"], retry["away"]) == (True, "gone for lunch")
    assert "away" not in await alice.request("send", to="#general", text="hi", msg_id="r1")
    await bob.request("away", text="")
    assert "away" not in await alice.request("send", to="Bob", text="back?", msg_id="p2")
    await alice.close()
    await bob.close()


async def test_away_ends_with_the_connection(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    await bob.request("away", text="gone")
    assert (await bob.request("bye"))["type"] == "ok"
    assert (await alice.request("whois", nick="Bob"))["code"] == "no-such-user"
    again = await raw_user(server.port, "Bob")
    assert "away" not in await alice.request("whois", nick="Bob")
    assert "away" not in await alice.request("send", to="Bob", text="hi", msg_id="p1")
    await alice.close()
    await again.close()


async def test_away_needs_a_login(server: ParleyServer) -> None:
    client = await RawClient.open(server.port)
    client.send(type="hello", id=1, versions=[1])
    await client.expect("welcome", id=1)
    for kind, fields in (("away", {"text": "x"}), ("whois", {"nick": "admin"})):
        assert (await client.request(kind, **fields))["code"] == "not-allowed-now"
    await client.close()


async def test_whois_of_an_online_guest(server: ParleyServer) -> None:
    before = time.time_ns() // 1_000_000
    bob = await raw_user(server.port, "Bob")
    after = time.time_ns() // 1_000_000
    await bob.request("join", room="#dev")
    await bob.request("join", room="#Apps")
    alice = await raw_user(server.port, "Alice")
    info = await alice.request("whois", nick="ＢＯＢ")  # full-width: the same name
    assert info["type"] == "whois"
    assert (info["nick"], info["online"], info["account"]) == ("Bob", True, False)
    assert "role" not in info and "away" not in info
    assert info["rooms"] == ["#Apps", "#dev", "#general"]
    assert before <= info["connected_ms"] <= after
    assert info.get("idle_seconds", 0) == 0
    # A room left is no longer listed.
    await bob.request("part", room="#dev")
    assert (await alice.request("whois", nick="bob"))["rooms"] == ["#Apps", "#general"]
    # Asking about oneself works too.
    mine = await alice.request("whois", nick="alice")
    assert (mine["nick"], mine["online"], mine["rooms"]) == ("Alice", True, ["#general"])
    await alice.close()
    await bob.close()


async def test_whois_of_an_account_online_and_offline(server: ParleyServer) -> None:
    carol = await raw_user(server.port, "Carol")
    assert (await carol.request("register", password=PASSWORD))["type"] == "ok"
    await carol.request("away", text="busy")
    alice = await raw_user(server.port, "Alice")
    online = await alice.request("whois", nick="carol")
    assert (online["nick"], online["online"], online["account"], online["role"]) == (
        "Carol",
        True,
        True,
        "user",
    )
    assert (online["away"], online["rooms"]) == ("busy", ["#general"])
    assert (await carol.request("bye"))["type"] == "ok"
    offline = await alice.request("whois", nick="CAROL")
    assert (offline["nick"], offline["online"], offline["account"]) == ("Carol", False, True)
    # An offline account's role is for moderators to know, not for anyone probing for admins.
    for absent in ("role", "away", "rooms", "connected_ms", "idle_seconds"):
        assert absent not in offline, offline
    admin = await alice.request("whois", nick="Admin")
    assert (admin["nick"], admin["online"], admin["account"]) == ("admin", False, True)
    assert "role" not in admin, admin
    assert server.admin_password is not None
    moderator = await raw_user(server.port, "admin", password=server.admin_password)
    seen = await moderator.request("whois", nick="carol")
    assert (seen["online"], seen["role"]) == (False, "user")
    await moderator.close()
    await alice.close()


async def test_whois_of_unknown_and_invalid_names(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    unknown = await alice.request("whois", nick="Nobody")
    assert (unknown["type"], unknown["code"]) == ("error", "no-such-user")
    bad_names = ["", "two words", "#general", "x" * (limits.MAX_NICK_CHARS + 1), "nul\x00",
                 "esc\x1b[2J", "'; DROP TABLE accounts; --", "\u0301accent"]  # fmt: skip
    for bad in bad_names:
        assert (await alice.request("whois", nick=bad))["code"] == "invalid-nick", bad
    assert (await alice.request("whois"))["code"] == "invalid-message"
    assert (await alice.request("whois", nick=7))["code"] == "invalid-message"
    assert (await alice.request("ping"))["type"] == "pong"
    await alice.close()


@pytest.mark.parametrize(
    "text",
    [
        "\x1b[31mred\x1b[0m",
        "\x1b]0;owned\x07",
        "line\nbreak",
        "carriage\rreturn",
        "nul\x00",
        "del\x7f",
        "c1 csi \x9b2J",
        "fake\u2028line",
        "x" * (limits.MAX_AWAY_CHARS + 1),
        "x" * 10_000,
    ],
    ids=["sgr", "osc", "lf", "cr", "nul", "del", "c1", "u2028", "201", "10000"],
)
async def test_hostile_away_texts_are_refused(server: ParleyServer, text: str) -> None:
    bob = await raw_user(server.port, "Bob")
    alice = await raw_user(server.port, "Alice")
    await bob.request("away", text="gone for lunch")
    refused = await bob.request("away", text=text)
    assert (refused["type"], refused["code"]) == ("error", "invalid-text")
    # The earlier away text stands; the connection still works, and so does everyone else's.
    assert (await alice.request("whois", nick="Bob"))["away"] == "gone for lunch"
    assert (await bob.request("ping"))["type"] == "pong"
    assert (await alice.request("send", to="Bob", text="hi", msg_id="m"))["type"] == "sent"
    await assert_still_serving(server.port)
    await alice.close()
    await bob.close()


async def test_away_texts_up_to_the_limit_come_back_as_given(server: ParleyServer) -> None:
    bob = await raw_user(server.port, "Bob")
    alice = await raw_user(server.port, "Alice")
    for text in (
        "x" * limits.MAX_AWAY_CHARS,
        '\'; DROP TABLE accounts; -- "quoted" \\ %s $1 \U0001f680 \u202e\ttab',
    ):
        assert (await bob.request("away", text=text))["type"] == "ok"
        assert (await alice.request("whois", nick="bob"))["away"] == text
        assert (await alice.request("send", to="bob", text="hi", msg_id=text[:60]))["away"] == text
    await alice.close()
    await bob.close()


async def test_idle_time_counts_from_the_last_chat_message(server_config: ServerConfig) -> None:
    clock = FakeClock()
    async with ParleyServer(server_config, clock=clock) as server:
        bob = await raw_user(server.port, "Bob")
        alice = await raw_user(server.port, "Alice")
        assert (await alice.request("whois", nick="Bob")).get("idle_seconds", 0) == 0
        clock.advance(90)
        assert (await alice.request("whois", nick="Bob"))["idle_seconds"] == 90
        # Requests that are not chat do not count as activity.
        await bob.request("ping")
        await bob.request("whois", nick="Alice")
        await bob.request("away", text="thinking")
        assert (await alice.request("whois", nick="Bob"))["idle_seconds"] == 90
        await bob.request("send", to="#general", text="I'm back", msg_id="b1")
        assert (await alice.request("whois", nick="Bob")).get("idle_seconds", 0) == 0
        # A private message counts too.
        clock.advance(110)
        assert (await alice.request("whois", nick="Bob"))["idle_seconds"] == 110
        await bob.request("send", to="Alice", text="psst", msg_id="b2")
        assert (await alice.request("whois", nick="Bob")).get("idle_seconds", 0) == 0
        await alice.close()
        await bob.close()


async def test_whois_of_an_offline_name_without_storage_is_unavailable(
    server: ParleyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")

    async def broken(key: str) -> None:
        raise StorageUnavailable("database is locked")

    monkeypatch.setattr(server.storage, "account", broken)
    assert (await alice.request("whois", nick="Carol"))["code"] == "unavailable"
    # Someone online needs no storage.
    assert (await alice.request("whois", nick="Bob"))["online"] is True
    monkeypatch.undo()
    assert (await alice.request("whois", nick="Carol"))["code"] == "no-such-user"
    await alice.close()
    await bob.close()
