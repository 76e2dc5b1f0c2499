"""Shared fixtures: every async test runs on uvloop, the loop the server ships with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import uvloop

from parley.config import ServerConfig
from parley.server.app import ParleyServer


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Any]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    """Settings for an in-process server on a free loopback port with its own data dir."""
    return ServerConfig(port=0, data_dir=tmp_path / "server-data")


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    async with ParleyServer(server_config) as running:
        yield running


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], dict[str, str]]:
    """XDG dirs under tmp_path, so pins and data never touch the real home directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))

    def env() -> dict[str, str]:
        import os

        return dict(os.environ)

    return env
