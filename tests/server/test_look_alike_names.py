"""Look-alike and invisible names, and messages or file names that show nothing, over real TLS:
each refused case next to the one that is allowed.
"""

from __future__ import annotations

from parley.server.app import ParleyServer
from support import RawClient, raw_user

PASSWORD = "correct horse battery"

# 'Alice' with a Cyrillic capital A: Latin mixed with Cyrillic, refused by the script rules.
MIXED_ALICE = "\u0410lice"
# 'alice' written wholly in Cyrillic (a, palochka, i, es, ie): one script, so only the
# skeleton tells it from the Latin name.
CYRILLIC_ALICE = "\u0430\u04c0\u0456\u0441\u0435"
# 'aIice' with a Latin capital I for the small l.
CAPITAL_I_ALICE = "aIice"
INVISIBLE_ALICES = ["Alice\u034f", "Alice\ufe0f", "Ali\u200dce", "\u3164", "\u3164\u3164Alice"]


async def refused(port: int, nick: str, code: str) -> str:
    """Try to log in as ``nick``; check the refusal's code, return its message."""
    client = await RawClient.open(port)
    reply = await client.try_login(nick)
    await client.close()
    assert reply["type"] == "error" and reply["code"] == code, (nick, reply)
    message: str = reply["message"]
    return message


async def register(port: int, nick: str) -> None:
    client = await raw_user(port, nick)
    assert (await client.request("register", password=PASSWORD))["type"] == "ok"
    await client.close()


async def test_a_look_alike_of_someone_online_is_refused(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    message = await refused(server.port, CYRILLIC_ALICE, "nick-taken")
    assert "looks like Alice" in message
    await refused(server.port, CAPITAL_I_ALICE, "nick-taken")
    await refused(server.port, MIXED_ALICE, "invalid-nick")
    for nick in INVISIBLE_ALICES:
        await refused(server.port, nick, "invalid-nick")
    # A different name is fine, and so is the look-alike once Alice has gone.
    alicia = await raw_user(server.port, "Alicia")
    assert (await alicia.request("list"))["users"] == ["Alice", "Alicia"]
    assert (await alice.request("bye"))["type"] == "ok"
    await alice.close()
    await alicia.event("left", nick="Alice")
    look_alike = await raw_user(server.port, CAPITAL_I_ALICE)
    await look_alike.close()
    await alicia.close()


async def test_a_look_alike_of_a_registered_name_is_refused_while_it_is_offline(
    server: ParleyServer,
) -> None:
    await register(server.port, "Alice")
    for nick in (CYRILLIC_ALICE, CAPITAL_I_ALICE):
        message = await refused(server.port, nick, "nick-taken")
        assert "looks like Alice, which is registered" in message
    await refused(server.port, MIXED_ALICE, "invalid-nick")
    # The owner still logs in, under any case; someone else still picks another name.
    owner = await RawClient.open(server.port)
    assert (await owner.try_login("ALICE", password=PASSWORD))["nick"] == "Alice"
    other = await raw_user(server.port, "Alicia")
    await owner.close()
    await other.close()


async def test_a_room_that_looks_like_an_existing_one_is_refused(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("join", room="#coop"))["type"] == "room"
    assert (await alice.request("part", room="#coop"))["type"] == "ok"
    # Nobody is in #coop now; it still exists, and so does #general.
    for name, like in [("#\u0441\u043e\u043e\u0440", "#coop"), ("#generaI", "#general")]:
        reply = await alice.request("join", room=name)
        assert reply["code"] == "room-taken", reply
        assert f"looks like {like}" in reply["message"]
    for name in ("#g\u0435neral", "#general\u034f", "#gen\ufe0feral"):
        assert (await alice.request("join", room=name))["code"] == "invalid-room"
    rooms = (await alice.request("rooms"))["rooms"]
    assert sorted(room["room"] for room in rooms) == ["#coop", "#general"]
    # A different name makes a new room; the look-alike of a room is the room itself by key.
    assert (await alice.request("join", room="#coop2"))["type"] == "room"
    assert (await alice.request("join", room="#COOP"))["room"] == "#coop"
    await alice.close()


async def test_a_banned_user_cannot_return_under_a_look_alike(server: ParleyServer) -> None:
    op = await raw_user(server.port, "Op")
    assert (await op.request("join", room="#dev"))["type"] == "room"
    await register(server.port, "Bob")
    bob = await RawClient.open(server.port)
    await bob.login("Bob", password=PASSWORD)
    assert (await bob.request("join", room="#dev"))["type"] == "room"
    assert (await op.request("ban", room="#dev", nick="Bob"))["type"] == "ok"
    assert (await bob.request("join", room="#dev"))["code"] == "banned"
    await bob.close()
    for nick in ("B0b", "B\u043eb", "Bob\u034f"):
        code = "nick-taken" if nick == "B0b" else "invalid-nick"
        await refused(server.port, nick, code)
    # Someone else, with a name of their own, may still come in.
    carol = await raw_user(server.port, "Carol")
    assert (await carol.request("join", room="#dev"))["type"] == "room"
    await carol.close()
    await op.close()


async def test_a_banned_guest_is_held_under_a_look_alike_too(server: ParleyServer) -> None:
    op = await raw_user(server.port, "Op")
    assert (await op.request("join", room="#dev"))["type"] == "room"
    mallory = await raw_user(server.port, "Mallory")
    assert (await mallory.request("join", room="#dev"))["type"] == "room"
    assert (await op.request("ban", room="#dev", nick="Mallory"))["type"] == "ok"
    await mallory.close()
    # Back as a new guest, under the name and under look-alikes of it: still banned.
    for nick in ("Mallory", "MaIlory", "Ma11ory"):
        again = await raw_user(server.port, nick)
        assert (await again.request("join", room="#dev"))["code"] == "banned", nick
        await again.close()
    # A name of one's own is not held.
    carol = await raw_user(server.port, "Carol")
    assert (await carol.request("join", room="#dev"))["type"] == "room"
    await carol.close()
    await op.close()


async def test_a_message_that_shows_nothing_is_refused_and_the_sender_stays(
    server: ParleyServer,
) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    for number, text in enumerate(["\u200b", "\u200b\u200c\u200d", "\u3164", "\ufe0f \u2800"]):
        reply = await alice.request("send", to="#general", text=text, msg_id=f"blank{number}")
        assert reply["code"] == "invalid-text", reply
        assert "invisible" in reply["message"]
        private = await alice.request("send", to="Bob", text=text, msg_id=f"pm{number}")
        assert private["code"] == "invalid-text"
    assert (await alice.request("send", to="#general", text="hi\u200b", msg_id="1"))["seq"] == 1
    # The first message Bob sees is the visible one.
    seen = await bob.event("message", to="#general")
    assert seen["text"] == "hi\u200b"
    assert (await alice.request("ping"))["type"] == "pong"
    await alice.close()
    await bob.close()


async def test_a_file_name_that_shows_nothing_is_refused(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    share = {"to": "#general", "size": 3, "sha256": "a" * 64}
    reply = await alice.request("share", name="\u200b\u2060", **share)
    assert reply["code"] == "invalid-file", reply
    assert "visible" in reply["message"]
    assert (await alice.request("share", name="\u200bnotes.txt", **share))["type"] == "upload"
    await alice.close()
