"""The real server on PostgreSQL: accounts, rooms and history survive a restart."""

from __future__ import annotations

from pathlib import Path

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from parley.storage.postgres import PostgresStorage
from postgres_support import POSTGRES_URL, postgres_schema
from support import raw_user


async def test_history_and_accounts_survive_a_restart_on_postgresql(
    server_config: ServerConfig,
) -> None:
    async for schema in postgres_schema():
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        async with ParleyServer(server_config, storage=storage) as first:
            alice = await raw_user(first.port, "Alice")
            assert (await alice.request("register", password="correct horse battery"))["token"]
            await alice.request("join", room="#pg")
            for n in range(3):
                await alice.request(
                    "send", to="#pg", text=f"m{n} '; DROP TABLE x; --", msg_id=f"{n}"
                )
            await alice.close()
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        async with ParleyServer(server_config, storage=storage) as second:
            assert second.admin_password is None  # made once, on the first start
            alice = await raw_user(second.port, "Alice", password="correct horse battery")
            page = await alice.request("history", to="#pg")
            assert [m["text"] for m in page["messages"]] == [
                f"m{n} '; DROP TABLE x; --" for n in range(3)
            ]
            again = await alice.request("send", to="#pg", text="m0", msg_id="0")
            assert (again["seq"], again["duplicate"]) == (1, True)
            await alice.close()


async def test_files_are_shared_on_postgresql(server_config: ServerConfig, tmp_path: Path) -> None:
    from parley.client.core import ChatClient
    from parley.client.transfer import download, upload

    source = tmp_path / "pg.bin"
    source.write_bytes(b"stored in postgres" * 1000)
    async for schema in postgres_schema():
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        async with ParleyServer(server_config, storage=storage) as server:
            alice = await ChatClient.connect("127.0.0.1", server.port, pins=None)
            await alice.login("Alice")
            bob = await ChatClient.connect("127.0.0.1", server.port, pins=None)
            await bob.login("Bob")
            file_id = await upload(alice, source, "Bob")
            assert [entry.file_id for entry in (await bob.files("Alice")).files] == [file_id]
            saved = await download(bob, file_id, tmp_path / "bob")
            assert saved.read_bytes() == source.read_bytes()
            await alice.close()
            await bob.close()


async def test_a_password_change_on_one_node_cuts_the_old_login_on_another(
    tmp_path: Path,
) -> None:
    async for schema in postgres_schema():
        configs = [ServerConfig(port=0, data_dir=tmp_path / f"node{n}") for n in range(2)]
        first_storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        second_storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        async with (
            ParleyServer(configs[0], storage=first_storage) as first,
            ParleyServer(configs[1], storage=second_storage) as second,
        ):
            owner = await raw_user(first.port, "Alice")
            token = (await owner.request("register", password="correct horse battery"))["token"]
            # Someone with the saved login is on the other node.
            thief = await raw_user(second.port, "Alice", token=token)
            changed = await owner.request("passwd", old="correct horse battery",
                                          new="a brand new passphrase")  # fmt: skip
            assert changed["type"] == "ok"
            closing = await thief.event("closing")
            assert closing["code"] == "revoked"
            assert await thief.closed()
            # The owner's own login goes on, on its new session.
            assert (await owner.request("ping"))["type"] == "pong"
            again = await raw_user(second.port, "Alice", token=changed["token"])
            await again.close()
            await owner.close()
