"""The real server on PostgreSQL: accounts, rooms and history survive a restart."""

from __future__ import annotations

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
