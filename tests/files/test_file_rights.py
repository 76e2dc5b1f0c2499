"""Who may offer a file, over real TLS: guests share one quota per address (new guest names
make no more room), a server may keep guests from sharing at all, and a muted user cannot
share into the room it is muted in.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from support import NO_SHARED_BUDGETS, RawClient, insecure_context, raw_user

KIB = 1024
MIB = 1024 * KIB
PASSWORD = "correct horse battery"


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    # The default quotas: 1 GiB per account, 256 MiB for the guests of one address.
    config = dataclasses.replace(server_config, flood_burst_requests=1000, **NO_SHARED_BUDGETS)
    async with ParleyServer(config) as running:
        yield running


async def _share(client: RawClient, size: int, n: int, to: str = "#general") -> dict[str, Any]:
    return await client.request("share", to=to, name=f"f{n}.bin", size=size, sha256=f"{n:064x}")


async def _user_from(port: int, address: str, nick: str) -> RawClient:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=insecure_context(), local_addr=(address, 0)
    )
    client = RawClient(reader, writer)
    await client.login(nick)
    return client


async def test_guests_of_one_address_share_one_quota(server: ParleyServer) -> None:
    first = await raw_user(server.port, "Guest1")
    assert (await _share(first, 100 * MIB, 1))["type"] == "upload"
    assert (await _share(first, 100 * MIB, 2))["type"] == "upload"
    # A second name from the same address finds the pool mostly used.
    second = await raw_user(server.port, "Guest2")
    refused = await _share(second, 100 * MIB, 3)
    assert refused["code"] == "quota-exceeded" and "your address" in refused["message"]
    assert (await _share(second, 50 * MIB, 4))["type"] == "upload"
    # An account has a quota of its own, wherever it is.
    account = await raw_user(server.port, "Member")
    assert (await account.request("register", password=PASSWORD))["type"] == "ok"
    assert (await _share(account, 100 * MIB, 5))["type"] == "upload"
    # And guests elsewhere have a pool of their own.
    elsewhere = await _user_from(server.port, "127.0.0.2", "Guest3")
    assert (await _share(elsewhere, 100 * MIB, 6))["type"] == "upload"
    for client in (first, second, account, elsewhere):
        await client.close()


async def test_a_server_may_keep_guests_from_sharing(server_config: ServerConfig) -> None:
    config = dataclasses.replace(server_config, allow_guest_files=False)
    async with ParleyServer(config) as server:
        guest = await raw_user(server.port, "Guest")
        refused = await _share(guest, KIB, 1)
        assert refused["code"] == "account-required" and "/register" in refused["message"]
        assert (await guest.request("register", password=PASSWORD))["type"] == "ok"
        assert (await _share(guest, KIB, 1))["type"] == "upload"
        await guest.close()


async def test_a_muted_user_cannot_share_into_the_room(server: ParleyServer) -> None:
    op = await raw_user(server.port, "Op")
    await op.request("join", room="#dev")
    bob = await raw_user(server.port, "Bob")
    await bob.request("join", room="#dev")
    assert (await _share(bob, KIB, 1, "#dev"))["type"] == "upload"
    assert (await op.request("mute", room="#dev", nick="Bob"))["type"] == "ok"
    muted = await _share(bob, KIB, 2, "#dev")
    assert muted["code"] == "muted"
    # Elsewhere Bob still shares.
    assert (await _share(bob, KIB, 3, "#general"))["type"] == "upload"
    assert (await op.request("unmute", room="#dev", nick="Bob"))["type"] == "ok"
    assert (await _share(bob, KIB, 4, "#dev"))["type"] == "upload"
    await op.close()
    await bob.close()
