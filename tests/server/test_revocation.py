"""Revocation reaches live logins: ``parley admin reset``, ``delete`` and ``role`` run as real
processes against the database of a running server, which cuts (or re-ranks) the login at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator

import pytest

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from support import RawClient, raw_user

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


async def admin(server: ParleyServer, *args: str, stdin: str = "") -> str:
    """Run ``parley admin`` on the server's data dir; its output (fails the test if refused)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley", "admin", "--data-dir", str(server.config.data_dir), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _owner_and_thief(server: ParleyServer) -> RawClient:
    """Alice registers, and someone who stole her saved login uses it: the thief's client."""
    owner = await raw_user(server.port, "Alice")
    token = (await owner.request("register", password=PASSWORD))["token"]
    await owner.close()
    thief = await raw_user(server.port, "Alice", token=token)
    assert (await thief.request("send", to="#general", text="hi", msg_id="1"))["type"] == "sent"
    return thief


async def _revoked(client: RawClient) -> dict[str, object]:
    closing = await client.event("closing")
    assert closing["code"] == "revoked", closing
    assert await client.closed()
    return closing


async def test_a_password_reset_cuts_a_login_on_a_stolen_token(server: ParleyServer) -> None:
    thief = await _owner_and_thief(server)
    await admin(server, "reset", "alice", stdin=NEW_PASSWORD + "\n")
    closing = await _revoked(thief)
    assert "log in again" in str(closing["message"])
    owner = await raw_user(server.port, "Alice", password=NEW_PASSWORD)
    await owner.close()


async def test_deleting_an_account_cuts_its_login(server: ParleyServer) -> None:
    thief = await _owner_and_thief(server)
    bystander = await raw_user(server.port, "Bob")
    await admin(server, "delete", "alice", "--yes")
    await _revoked(thief)
    # Everyone else carries on, and the name is free again (for a new principal).
    await bystander.event("left", nick="Alice")
    newcomer = await raw_user(server.port, "Alice")
    await newcomer.close()
    await bystander.close()


@pytest.fixture
async def slow_watch(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    """A server that looks for revocations only once a minute."""
    config = dataclasses.replace(server_config, revocation_poll_seconds=60.0)
    async with ParleyServer(config) as running:
        yield running


async def test_the_owner_is_not_kept_out_by_a_revoked_login(slow_watch: ParleyServer) -> None:
    thief = await _owner_and_thief(slow_watch)
    await admin(slow_watch, "reset", "alice", stdin=NEW_PASSWORD + "\n")
    # Before the watch comes round, the owner logs in: the revoked holder makes way.
    owner = await RawClient.open(slow_watch.port)
    assert (await owner.try_login("Alice", password=NEW_PASSWORD))["type"] == "ok"
    await _revoked(thief)
    await owner.close()


async def test_a_valid_login_still_keeps_its_name(slow_watch: ParleyServer) -> None:
    owner = await raw_user(slow_watch.port, "Alice")
    assert (await owner.request("register", password=PASSWORD))["type"] == "ok"
    second = await RawClient.open(slow_watch.port)
    assert (await second.try_login("Alice", password=PASSWORD))["code"] == "nick-taken"
    assert (await owner.request("ping"))["type"] == "pong"
    await owner.close()
    await second.close()


async def test_a_role_change_applies_to_the_login_at_once(server: ParleyServer) -> None:
    founder = await raw_user(server.port, "Founder")
    await founder.request("join", room="#dev")
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("register", password=PASSWORD))["type"] == "ok"
    await alice.request("join", room="#dev")
    assert (await alice.request("topic", room="#dev", text="x"))["code"] == "not-permitted"
    await admin(server, "role", "alice", "moderator")
    notice = await alice.event("notice")
    assert "now moderator" in notice["text"]
    assert (await alice.request("topic", room="#dev", text="moderated"))["type"] == "ok"
    await admin(server, "role", "alice", "user")
    assert "now user" in (await alice.event("notice"))["text"]
    assert (await alice.request("topic", room="#dev", text="again"))["code"] == "not-permitted"
    for client in (founder, alice):
        await client.close()
