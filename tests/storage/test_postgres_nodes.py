"""Two server processes on one PostgreSQL database: the database is the only sequencer."""

from __future__ import annotations

import asyncio

from parley.storage import NewMessage
from parley.storage.postgres import PostgresStorage
from postgres_support import POSTGRES_URL, postgres_schema
from support import FakeClock


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


async def test_two_nodes_storing_one_retry_at_once_store_it_once() -> None:
    async for schema in postgres_schema():
        nodes = [await PostgresStorage.open(POSTGRES_URL, schema=schema) for _ in range(2)]
        try:
            for round_ in range(20):
                # The same message (a client's retry through another node) in two batches
                # that each also carry a message of their own, at the same moment.
                same = NewMessage("#r", "A", "a", "#r", "hello", f"same-{round_}")
                batches = [
                    [same, NewMessage("#r", "B", f"b{node}", "#r", "own", f"own-{round_}")]
                    for node in range(2)
                ]
                stored = await asyncio.gather(
                    *(node.append(batch) for node, batch in zip(nodes, batches, strict=True))
                )
                firsts = [batch[0] for batch in stored]
                assert sorted(record.duplicate for record in firsts) == [False, True]
                assert firsts[0].seq == firsts[1].seq
                assert not any(batch[1].duplicate for batch in stored)
            seqs = [m.seq for m in await nodes[0].history("#r", limit=1000)]
            assert seqs == list(range(1, 61))
        finally:
            for node in nodes:
                await node.close()


async def test_times_never_go_backwards_within_a_conversation_across_nodes() -> None:
    async for schema in postgres_schema():
        ahead, behind = FakeClock(), FakeClock()
        behind.advance(-60)  # a node whose clock is a minute slow
        nodes = [
            await PostgresStorage.open(POSTGRES_URL, schema=schema, clock=clock)
            for clock in (ahead, behind)
        ]
        try:
            stamps = []
            for n in range(6):
                [record] = await nodes[n % 2].append(
                    [NewMessage("#t", "A", "a", "#t", "x", f"t{n}")]
                )
                stamps.append(record.ts)
            assert stamps == sorted(stamps)
            assert [m.ts for m in await nodes[1].history("#t", limit=10)] == stamps
        finally:
            for node in nodes:
                await node.close()


async def test_nodes_counting_one_limit_at_once_allow_it_once_in_all() -> None:
    async for schema in postgres_schema():
        nodes = [await PostgresStorage.open(POSTGRES_URL, schema=schema) for _ in range(3)]
        try:
            for round_ in range(5):
                limits = [(f"room-by:u{round_}", 4), (f"room-from:10.0.0.{round_}", 2)]
                results = await asyncio.gather(
                    *(nodes[n % 3].take_window_slots(limits, 1000, 0) for n in range(30))
                )
                assert sorted(results) == [False] * 28 + [True] * 2, round_
        finally:
            for node in nodes:
                await node.close()
