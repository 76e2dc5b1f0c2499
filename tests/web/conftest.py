"""Fixtures of the browser tests: Debian's Chromium (no browser download; the tests fail, not
skip, without it), the real server process, and the browser contexts a test opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright
from web_lab import CHROMIUM, TIMEOUT_SECONDS, ServerProcess, Violations


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"no {CHROMIUM}: install Debian's Chromium (apt-get install chromium)"
    expect.set_options(timeout=TIMEOUT_SECONDS * 1000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path / "server")
    yield running
    running.stop()


@pytest.fixture
def violations() -> Violations:
    return Violations()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    made: list[BrowserContext] = []
    yield made
    for context in made:
        context.close()
