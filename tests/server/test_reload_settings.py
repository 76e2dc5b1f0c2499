"""The settings a reload applies live are real settings, and the settings page says which."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from parley.config import ServerConfig
from parley.server.reload import LIVE_SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def test_live_settings_are_settings() -> None:
    names = {field.name for field in dataclasses.fields(ServerConfig)}
    assert sorted(LIVE_SETTINGS - names) == []
    # What is read once at start stays out.
    assert not {"host", "port", "files_port", "data_dir", "database"} & LIVE_SETTINGS


def test_the_settings_page_lists_the_live_settings() -> None:
    page = (ROOT / "docs" / "server-settings.md").read_text(encoding="utf-8")
    section = page.split("## Reloading: SIGHUP", 1)[1].split("\n## ", 1)[0]
    live = section.split("every other setting", 1)[0]
    assert sorted(name for name in LIVE_SETTINGS if f"`{name}`" not in live) == []
