"""Two server processes on one PostgreSQL database: the database is the only sequencer."""

from __future__ import annotations

import asyncio

from parley.storage import NewMessage
from parley.storage.postgres import PostgresStorage
from postgres_support import POSTGRES_URL, postgres_schema


async def test_two_nodes_appending_to_one_room_share_one_sequence() -> None:
    async for schema in postgres_schema():
        nodes = [await PostgresStorage.open(POSTGRES_URL, schema=schema) for _ in range(2)]
        try:

            async def write(storage: PostgresStorage, node: int, batch: int) -> None:
                await storage.append(
                    [
                        NewMessage("#shared", "A", f"n{node}", "#shared", "x", f"{batch}-{n}")
                        for n in range(10)
                    ]
                )

            await asyncio.gather(
                *(write(nodes[batch % 2], batch % 2, batch) for batch in range(40))
            )
            seqs = [m.seq for m in await nodes[0].history("#shared", limit=1000)]
            assert seqs == list(range(1, 401))
            # A retry reaching the other node is still recognised.
            [again] = await nodes[1].append(
                [NewMessage("#shared", "A", "n0", "#shared", "x", "0-0")]
            )
            assert again.duplicate
        finally:
            for node in nodes:
                await node.close()
