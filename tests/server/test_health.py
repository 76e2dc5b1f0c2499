"""The storage health log, on a clock the test moves: one line when storage fails, one when
it recovers, with how long it was down and what failed meanwhile."""

from __future__ import annotations

import logging

import pytest

from parley.server.health import StorageHealth
from parley.storage import StorageUnavailable
from support import FakeClock


def test_an_outage_is_two_lines_with_its_length(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    health = StorageHealth(clock)
    health.succeeded()  # healthy: nothing to say
    with caplog.at_level(logging.WARNING, logger="parley.server"):
        health.failed(StorageUnavailable("database is locked"), messages=3)
        clock.advance(12.5)
        health.failed(StorageUnavailable("database is locked"))
        assert health.degraded
        health.succeeded()
    assert [record.getMessage() for record in caplog.records] == [
        "Storage degraded: database is locked",
        "Storage recovered after 12.5 s: 2 operations failed, 3 messages refused",
    ]
    assert not health.degraded
