"""Fixtures of the end-to-end tests: the real server and clients as processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from processes import Lab


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """A server and clients of one test; whatever still runs is stopped after it."""
    running = Lab(tmp_path)
    yield running
    await running.stop()
