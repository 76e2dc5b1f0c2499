"""Accounts over real TLS: register, log in by password or token, change it, log out,
throttling, guests switched off, the admin account made on first start."""

from __future__ import annotations

import dataclasses

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from support import RawClient, raw_user

PASSWORD = "correct horse battery"


async def register(port: int, nick: str, password: str = PASSWORD) -> str:
    """Register ``nick`` and return its session token."""
    client = await raw_user(port, nick)
    reply = await client.request("register", password=password)
    assert reply["type"] == "ok", reply
    await client.close()
    token: str = reply["token"]
    return token


async def test_a_registered_nickname_needs_its_password(server: ParleyServer) -> None:
    await register(server.port, "Alice")
    client = await RawClient.open(server.port)
    assert (await client.try_login("alice"))["code"] == "password-required"
    wrong = await client.request("nick", nick="Alice", password="not the password")
    assert wrong["code"] == "auth-failed"
    ok = await client.request("nick", nick="ALICE", password=PASSWORD)
    assert ok["type"] == "ok"
    assert (ok["nick"], ok["role"], ok["rooms"]) == ("Alice", "user", ["#general"])
    assert len(ok["token"]) >= 40
    await client.close()


async def test_a_token_logs_in_without_the_password(server: ParleyServer) -> None:
    token = await register(server.port, "Alice")
    client = await raw_user(server.port, "Alice", token=token)
    # Resuming gives no new token: the client keeps the one it has.
    await client.close()
    other = await RawClient.open(server.port)
    reply = await other.try_login("Alice", token=token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert reply["code"] == "session-expired"
    await other.close()


async def test_no_such_account_and_wrong_password_read_the_same(server: ParleyServer) -> None:
    await register(server.port, "Alice")
    first = await RawClient.open(server.port)
    wrong = await first.try_login("Alice", password="wrong password")
    second = await RawClient.open(server.port)
    missing = await second.try_login("Nobody", password="wrong password")
    assert (wrong["code"], wrong["message"]) == (missing["code"], missing["message"])
    assert wrong["code"] == "auth-failed"
    await first.close()
    await second.close()


async def test_failed_logins_are_throttled(server: ParleyServer) -> None:
    await register(server.port, "Alice")
    client = await RawClient.open(server.port)
    codes = [(await client.try_login("Alice", password="guess number 0"))["code"]]
    for n in range(1, 5):
        codes.append((await client.request("nick", nick="Alice", password=f"guess {n}"))["code"])
    assert codes == ["auth-failed"] * 5
    # Even the right password waits now: a guesser learns nothing from trying it.
    blocked = await client.request("nick", nick="Alice", password=PASSWORD)
    assert blocked["code"] == "too-many-attempts"
    assert "seconds" in blocked["message"]
    await client.close()


async def test_password_change_revokes_other_sessions(server: ParleyServer) -> None:
    old_token = await register(server.port, "Alice")
    client = await raw_user(server.port, "Alice", password=PASSWORD)
    assert (await client.request("passwd", old="wrong one!", new="x" * 12))["code"] == "auth-failed"
    assert (await client.request("passwd", old=PASSWORD, new="short"))["code"] == (
        "invalid-password"
    )
    changed = await client.request("passwd", old=PASSWORD, new="a new long password")
    assert changed["type"] == "ok" and changed["token"]
    await client.close()
    stale = await RawClient.open(server.port)
    assert (await stale.try_login("Alice", token=old_token))["code"] == "session-expired"
    assert (await stale.request("nick", nick="Alice", password=PASSWORD))["code"] == "auth-failed"
    ok = await stale.request("nick", nick="Alice", token=changed["token"])
    assert ok["type"] == "ok"
    await stale.close()


async def test_logout_revokes_the_token_and_closes(server: ParleyServer) -> None:
    token = await register(server.port, "Alice")
    client = await raw_user(server.port, "Alice", token=token)
    assert (await client.request("logout"))["type"] == "ok"
    assert await client.closed()
    again = await RawClient.open(server.port)
    assert (await again.try_login("Alice", token=token))["code"] == "session-expired"
    await again.close()


async def test_register_refuses_bad_passwords_and_taken_names(server: ParleyServer) -> None:
    await register(server.port, "Alice")
    guest = await raw_user(server.port, "Bob")
    assert (await guest.request("register", password="short"))["code"] == "invalid-password"
    assert (await guest.request("register", password=" " * 12))["code"] == "invalid-password"
    # Over the length cap the frame itself is refused, before any hashing.
    assert (await guest.request("register", password="p" * 257))["code"] == "invalid-message"
    hostile = "'; DROP TABLE accounts; --\"\\ \U0001f600"
    assert (await guest.request("register", password=hostile))["type"] == "ok"
    assert (await guest.request("register", password=hostile))["code"] == "already-registered"
    await guest.close()
    back = await raw_user(server.port, "bob", password=hostile)
    await back.close()


async def test_registrations_are_rate_limited_per_address(server: ParleyServer) -> None:
    replies = []
    for n in range(4):
        client = await raw_user(server.port, f"Newcomer{n}")
        replies.append((await client.request("register", password=PASSWORD))["type"])
        await client.close()
    assert replies == ["ok", "ok", "ok", "error"]


async def test_the_registration_limit_is_a_setting(server_config: ServerConfig) -> None:
    # A classroom behind one NAT: the operator raises it.
    config = dataclasses.replace(server_config, registrations_per_address_per_hour=5)
    async with ParleyServer(config) as server:
        replies = []
        for n in range(6):
            client = await raw_user(server.port, f"Pupil{n}")
            replies.append((await client.request("register", password=PASSWORD))["type"])
            await client.close()
    assert replies == ["ok"] * 5 + ["error"]


async def test_guests_can_be_switched_off(server_config: ServerConfig) -> None:
    config = dataclasses.replace(server_config, allow_guests=False)
    async with ParleyServer(config) as server:
        assert server.admin_password is not None
        client = await RawClient.open(server.port)
        assert (await client.try_login("Guest"))["code"] == "account-required"
        ok = await client.request("nick", nick="admin", password=server.admin_password)
        assert (ok["type"], ok["role"]) == ("ok", "admin")
        await client.close()


async def test_the_admin_password_is_made_once(server_config: ServerConfig) -> None:
    async with ParleyServer(server_config) as first:
        password = first.admin_password
        assert password is not None and len(password) >= 16
    async with ParleyServer(server_config) as second:
        assert second.admin_password is None
        admin = await raw_user(second.port, "admin", password=password)
        await admin.close()


async def test_accounts_survive_a_restart(server_config: ServerConfig) -> None:
    async with ParleyServer(server_config) as first:
        token = await register(first.port, "Alice")
    async with ParleyServer(server_config) as second:
        client = await raw_user(second.port, "Alice", token=token)
        await client.close()
