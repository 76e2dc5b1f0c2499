"""Limits that outlive a connection, over real TLS on loopback: many guests from one address
flooding and reconnecting, one address's or one account's connections together, listings that
cost more than a ping, and the file tokens one user may hold. Next to each, a user elsewhere
(127.0.0.2: Linux routes all of 127.0.0.0/8 to loopback) keeps chatting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ssl
from typing import Any

from parley.config import ServerConfig
from parley.protocol import transfer
from parley.server.app import ParleyServer
from support import TIMEOUT_SECONDS, FakeClock, RawClient, insecure_context

ELSEWHERE = "127.0.0.2"
PASSWORD = "correct horse battery"


async def _open(port: int, source: str = "127.0.0.1") -> RawClient:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", port, ssl=insecure_context(), local_addr=(source, 0), limit=2**22
        ),
        TIMEOUT_SECONDS,
    )
    return RawClient(reader, writer)


async def _user(port: int, nick: str, source: str = "127.0.0.1", **credentials: str) -> RawClient:
    client = await _open(port, source)
    await client.login(nick, **credentials)
    return client


async def _chats(port: int, speaker: RawClient, listener: RawClient, text: str) -> None:
    """``speaker`` says ``text`` in #general and ``listener`` sees it."""
    reply = await speaker.request("send", to="#general", text=text, msg_id=text)
    assert reply["type"] == "sent", reply
    await listener.event("message", text=text)


async def _replies(client: RawClient, ids: range) -> list[dict[str, Any]]:
    """The replies to the requests ``ids``, in id order (refusals may come first)."""
    replies: dict[int, dict[str, Any]] = {}
    while len(replies) < len(ids):
        frame = await client.frame()
        if frame.get("id") in ids:
            replies[frame["id"]] = frame
    return [replies[number] for number in ids]


async def _flood_until_cut(client: RawClient) -> dict[str, Any]:
    """Send pings without reading until the server closes; the `closing` it sent."""
    for number in range(200):
        client.send(type="ping", id=1000 + number)
    while (frame := await client.frame())["type"] != "closing":
        pass
    return frame


async def test_guests_flooding_from_one_address_cannot_come_back_and_others_chat_on(
    server_config: ServerConfig,
) -> None:
    config = dataclasses.replace(
        server_config,
        flood_burst_requests=5,
        flood_rate_per_second=1.0,
        flood_debt_requests=10,
        flood_penalty_seconds=60.0,
    )
    async with ParleyServer(config) as server:
        alice = await _user(server.port, "Alice", ELSEWHERE)
        bob = await _user(server.port, "Bob", ELSEWHERE)
        flooders = [await _user(server.port, f"Flooder{n}") for n in range(20)]
        cuts = await asyncio.gather(*(_flood_until_cut(flooder) for flooder in flooders))
        assert {cut["code"] for cut in cuts} == {"flooding"}
        await _chats(server.port, alice, bob, "still here")

        # They all come back at once: each is held a few seconds, then refused, told why and
        # when to come back.
        async def come_back() -> dict[str, Any]:
            again = await _open(server.port)
            again.send(type="hello", id=1, versions=[1])
            refused = await again.frame()
            assert await again.closed()
            return refused

        for refused in await asyncio.gather(*(come_back() for _ in range(20))):
            assert refused["type"] == "closing" and refused["code"] == "flood-penalty"
            assert "connect again in" in refused["message"]
            seconds = int(refused["message"].rsplit("in ", 1)[1].split()[0])
            assert 45 <= seconds <= 56, refused
        # Another address is not held: a newcomer from there logs in and chats.
        carol = await _user(server.port, "Carol", ELSEWHERE)
        await _chats(server.port, carol, alice, "hello from elsewhere")
        for client in (alice, bob, carol):
            await client.close()


async def test_a_flooding_account_is_held_back_and_its_neighbours_chat_on(
    server_config: ServerConfig,
) -> None:
    # Behind one NAT: a registered flooder is held back by its account, not by the address.
    clock = FakeClock()
    config = dataclasses.replace(
        server_config,
        flood_burst_requests=5,
        flood_rate_per_second=1.0,
        flood_debt_requests=10,
        flood_penalty_seconds=60.0,
    )
    async with ParleyServer(config, clock=clock) as server:
        flooder = await _user(server.port, "Flooder")
        assert (await flooder.request("register", password=PASSWORD))["type"] == "ok"
        assert (await _flood_until_cut(flooder))["code"] == "flooding"
        # Someone else at the same address comes in and chats.
        neighbour = await _user(server.port, "Neighbour")
        alice = await _user(server.port, "Alice", ELSEWHERE)
        await _chats(server.port, neighbour, alice, "still here")
        # The flooder may not log in again, from any address, and is told when it may.
        for source in ("127.0.0.1", ELSEWHERE):
            again = await _open(server.port, source)
            again.send(type="hello", id=1, versions=[1])
            await again.expect("welcome", id=1)
            again.send(type="nick", id=2, nick="Flooder", password=PASSWORD)
            refused = await again.frame()
            assert refused["type"] == "closing" and refused["code"] == "flood-penalty", refused
            assert refused["message"].endswith("log in again in 60 s."), refused
            assert await again.closed()
        clock.advance(61.0)
        back = await _user(server.port, "Flooder", password=PASSWORD)
        assert (await back.request("ping"))["type"] == "pong"
        for client in (neighbour, alice, back):
            await client.close()


async def test_an_address_is_held_after_several_cuts_until_its_penalty_ends(
    server_config: ServerConfig,
) -> None:
    clock = FakeClock()
    config = dataclasses.replace(
        server_config,
        flood_burst_requests=5,
        flood_rate_per_second=1.0,
        flood_debt_requests=10,
        flood_penalty_seconds=60.0,
        flood_penalty_strikes=3,
    )
    async with ParleyServer(config, clock=clock) as server:
        # Guests can come back under new names: two cuts still let the address in.
        for number in range(3):
            flooder = await _user(server.port, f"Guest{number}")
            assert (await _flood_until_cut(flooder))["code"] == "flooding"
        again = await _open(server.port)
        again.send(type="hello", id=1, versions=[1])
        refused = await again.frame()
        assert refused["code"] == "flood-penalty" and "in 60 s" in refused["message"], refused
        assert await again.closed()
        clock.advance(61.0)
        back = await _user(server.port, "Guest9")
        assert (await back.request("ping"))["type"] == "pong"
        await back.close()
    config = dataclasses.replace(config, flood_penalty_seconds=0.0, flood_penalty_strikes=1)
    async with ParleyServer(config) as server:
        flooder = await _user(server.port, "Flooder")
        assert (await _flood_until_cut(flooder))["code"] == "flooding"
        back = await _user(server.port, "Flooder")
        assert (await back.request("ping"))["type"] == "pong"
        await back.close()


async def test_guests_at_one_address_share_one_budget_whatever_their_number(
    server_config: ServerConfig,
) -> None:
    # Every guest login is a new guest id with a full budget of its own; together, the guests
    # of one address get 60 requests (the clock stands still: nothing refills).
    clock = FakeClock()
    config = dataclasses.replace(
        server_config,
        flood_burst_requests=1000,
        flood_debt_requests=2000,
        request_burst_guests_per_address=60,
        request_rate_guests_per_address=1.0,
    )
    async with ParleyServer(config, clock=clock) as server:

        async def pings(client: RawClient) -> list[dict[str, Any]]:
            for number in range(10):
                client.send(type="ping", id=500 + number)
            return await _replies(client, range(500, 510))

        async def answered(clients: list[RawClient]) -> list[dict[str, Any]]:
            replies = [each for some in await asyncio.gather(*map(pings, clients)) for each in some]
            refused = [reply for reply in replies if reply["type"] == "error"]
            assert all(
                reply["code"] == "rate-limited" and "the guests at your address" in reply["message"]
                for reply in refused
            ), refused
            return [reply for reply in replies if reply["type"] == "pong"]

        guests = await asyncio.gather(*(_user(server.port, f"Guest{n}") for n in range(20)))
        assert len(await answered(guests)) == 60
        # Logging in again as new guests buys nothing.
        await asyncio.gather(*(guest.close() for guest in guests))
        guests = await asyncio.gather(*(_user(server.port, f"Again{n}") for n in range(20)))
        assert await answered(guests) == []
        # An account at the same address, and a guest elsewhere, have budgets of their own.
        member = await _user(server.port, "Member", ELSEWHERE)
        assert (await member.request("register", password=PASSWORD))["type"] == "ok"
        await member.close()
        member = await _user(server.port, "Member", password=PASSWORD)
        elsewhere = await _user(server.port, "Elsewhere", ELSEWHERE)
        assert len(await answered([member, elsewhere])) == 20
        clock.advance(5.0)
        assert len(await answered(guests[:1])) == 5
        for client in (*guests, member, elsewhere):
            await client.close()


async def test_the_connections_of_one_address_share_one_budget(
    server_config: ServerConfig,
) -> None:
    # Each connection on its own could send 1,000 requests at once; the address, 60 in all
    # (the 20 logins take 40) and then one every 2 seconds.
    config = dataclasses.replace(
        server_config,
        flood_burst_requests=1000,
        flood_debt_requests=2000,
        request_burst_per_address=60,
        request_rate_per_address=0.5,
    )
    async with ParleyServer(config) as server:
        guests = [await _user(server.port, f"Guest{n}") for n in range(20)]
        elsewhere = await _user(server.port, "Elsewhere", ELSEWHERE)

        async def pings(client: RawClient) -> list[dict[str, Any]]:
            for number in range(10):
                client.send(type="ping", id=500 + number)
            return await _replies(client, range(500, 510))

        replies = [reply for each in await asyncio.gather(*map(pings, guests)) for reply in each]
        answered = [reply for reply in replies if reply["type"] == "pong"]
        refused = [reply for reply in replies if reply.get("code") == "rate-limited"]
        # 20 left in the burst, and what half a token a second adds while this runs.
        assert 20 <= len(answered) <= 25, len(answered)
        assert len(answered) + len(refused) == 200
        assert all("your address" in reply["message"] for reply in refused)
        # Nobody was cut off, and the other address was never limited.
        for _ in range(20):
            assert (await elsewhere.request("ping"))["type"] == "pong"
        for client in (*guests, elsewhere):
            await client.close()


async def test_an_account_s_budget_outlives_its_connections(server_config: ServerConfig) -> None:
    config = dataclasses.replace(
        server_config,
        flood_burst_requests=1000,
        flood_debt_requests=2000,
        request_burst_per_principal=30,
        request_rate_per_principal=0.5,
    )
    async with ParleyServer(config) as server:
        first = await _user(server.port, "Member")
        assert (await first.request("register", password=PASSWORD))["type"] == "ok"
        replies = [await first.request("ping") for _ in range(20)]
        await first.close()
        await asyncio.sleep(0.2)  # the server has seen it go: the name is free again
        # Back at once, from another address: a budget per address or per connection would
        # start afresh.
        second = await _user(server.port, "Member", ELSEWHERE, password=PASSWORD)
        replies += [await second.request("ping") for _ in range(20)]
        answered = sum(reply["type"] == "pong" for reply in replies)
        refused = [reply for reply in replies if reply["type"] == "error"]
        # 30 less the register and the second login, plus what refilled meanwhile.
        assert 27 <= answered <= 32, answered
        assert all(
            reply["code"] == "rate-limited" and "your account" in reply["message"]
            for reply in refused
        )
        # A guest next to it is not held by the account's budget.
        guest = await _user(server.port, "Guest")
        for _ in range(20):
            assert (await guest.request("ping"))["type"] == "pong"
        for client in (second, guest):
            await client.close()


async def test_listings_cost_more_than_pings(server_config: ServerConfig) -> None:
    config = dataclasses.replace(
        server_config, flood_burst_requests=30, flood_rate_per_second=0.1, expensive_request_cost=5
    )
    async with ParleyServer(config) as server:
        lister = await _user(server.port, "Lister")  # 2 of the 30 tokens
        for number in range(10):
            lister.send(type="rooms", id=500 + number)
        replies = await _replies(lister, range(500, 510))
        # 28 tokens pay for five listings at 5 each; the rest are refused.
        assert [reply["type"] for reply in replies] == ["rooms"] * 5 + ["error"] * 5
        assert {reply["code"] for reply in replies[5:]} == {"rate-limited"}
        pinger = await _user(server.port, "Pinger")
        for number in range(10):
            pinger.send(type="ping", id=500 + number)
        replies = await _replies(pinger, range(500, 510))
        assert [reply["type"] for reply in replies] == ["pong"] * 10
        for client in (lister, pinger):
            await client.close()


async def _share(server: ParleyServer, client: RawClient, data: bytes) -> str:
    """Share ``data`` with #general through the file port; its file id."""
    slot = await client.request(
        "share", to="#general", name="shared.txt", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    assert slot["type"] == "upload", slot
    await _redeem(server, slot["token"], data)
    await client.event("message")  # the announcement: the file is complete
    return str(slot["file_id"])


async def _redeem(server: ParleyServer, token: str, data: bytes = b"") -> bytes:
    """Use ``token`` on a file connection (sending ``data`` for an upload); what came back."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    assert server.files is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.files.port, ssl=context)
    writer.write(transfer.encode(transfer.Start(token=token)))
    writer.write(data)
    answer = await asyncio.wait_for(reader.read(), TIMEOUT_SECONDS)
    writer.close()
    return answer


async def test_unused_file_tokens_are_capped_per_user(server_config: ServerConfig) -> None:
    config = dataclasses.replace(server_config, max_tokens_per_principal=3)
    async with ParleyServer(config) as server:
        data = b"shared with everyone\n"
        # Readers are the room's members when the file is shared.
        hoarder = await _user(server.port, "Hoarder")
        other = await _user(server.port, "Other")
        sharer = await _user(server.port, "Sharer")
        file_id = await _share(server, sharer, data)
        tokens = []
        for _ in range(3):
            ticket = await hoarder.request("get", file_id=file_id)
            assert ticket["type"] == "download", ticket
            tokens.append(ticket["token"])
        refused = await hoarder.request("get", file_id=file_id)
        assert refused["type"] == "error" and refused["code"] == "too-many-tokens"
        assert "max_tokens_per_principal" in refused["message"]
        # Uploads count too.
        upload = await hoarder.request(
            "share", to="#general", name="x.txt", size=1, sha256="0" * 64
        )
        assert upload["code"] == "too-many-tokens"
        # Someone else still gets one; a token used gives its holder room for another.
        assert (await other.request("get", file_id=file_id))["type"] == "download"
        assert data in await _redeem(server, tokens[0])
        assert (await hoarder.request("get", file_id=file_id))["type"] == "download"
        for client in (sharer, hoarder, other):
            await client.close()
