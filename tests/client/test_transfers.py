"""The owner of a front end's background transfers: waits for them, cancels them, and
collects every outcome.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from parley.client.transfer import Transfers


async def test_cancel_stops_every_transfer_and_waits_for_it() -> None:
    transfers = Transfers()
    stopped: list[int] = []

    async def transfer(number: int) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # its clean-up takes a turn of the loop
            stopped.append(number)

    for number in range(3):
        transfers.start(transfer(number))
    await asyncio.sleep(0)
    assert len(transfers) == 3
    await transfers.cancel()
    assert sorted(stopped) == [0, 1, 2]  # each finished its clean-up before cancel returned
    assert len(transfers) == 0


async def test_finish_waits_for_transfers_started_meanwhile() -> None:
    transfers = Transfers()
    done: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0.05)
        done.append("second")

    async def first() -> None:
        await asyncio.sleep(0.01)
        transfers.start(second())
        done.append("first")

    transfers.start(first())
    await asyncio.wait_for(transfers.finish(), 5)
    assert done == ["first", "second"]


async def test_an_unexpected_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    transfers = Transfers()

    async def broken() -> None:
        raise RuntimeError("a bug")

    transfers.start(broken())
    with caplog.at_level(logging.ERROR, logger="parley.client"):
        await transfers.finish()
        await asyncio.sleep(0)
    assert any("a bug" in record.getMessage() for record in caplog.records)
