"""A user clicking through many rooms in the browser, on a server with flood control as shipped:
every room shows its history and topic, nobody is told to slow down, and what the page knows
already is not asked for again. And where the server does refuse for longer than the page
retries, the user is told.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, expect
from web_lab import (
    ServerProcess,
    TlsUser,
    Violations,
    conversation_button,
    logged_in,
    say,
    the_log,
)

ROOMS = 25
ROOMS_PER_OWNER = 9  # under the 10 rooms a user may create in an hour
TOO_FAST = "You are sending too fast"


class SentRequests:
    """The request types the page sends on its WebSockets, counted."""

    def __init__(self, page: Page) -> None:
        self.kinds: Counter[str] = Counter()
        page.on("websocket", self._watch)

    def _watch(self, socket: WebSocket) -> None:
        socket.on("framesent", self._sent)

    def _sent(self, payload: str | bytes) -> None:
        self.kinds[str(json.loads(payload)["type"])] += 1


@pytest.fixture
def owners(server: ServerProcess) -> Iterator[list[TlsUser]]:
    """Three users, on addresses of their own, who made rooms #r0..#r24 (each with a topic and
    a message) and stay in them.
    """
    made = [
        TlsUser(server.port, f"Owner{n}", source=f"127.0.0.{n + 2}")
        for n in range(-(-ROOMS // ROOMS_PER_OWNER))
    ]
    for n in range(ROOMS):
        owner = made[n // ROOMS_PER_OWNER]
        assert owner.request("join", room=f"#r{n}")["type"] == "room"
        assert owner.request("topic", room=f"#r{n}", text=f"about {n}")["type"] == "ok"
        said = owner.request("send", to=f"#r{n}", text=f"said in {n}", msg_id=f"m{n}")
        assert said["type"] == "sent"
    yield made
    for owner in made:
        owner.close()


def heading(page: Page) -> object:
    return page.get_by_role("main").get_by_role("heading", level=2)


def test_clicking_through_25_rooms_shows_each_and_is_never_told_to_slow_down(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
    owners: list[TlsUser],
) -> None:
    page = logged_in(browser, contexts, violations, server.url, "Ann")
    sent = SentRequests(page)
    log = the_log(page)
    page.get_by_role("button", name="Show rooms").click()
    listed = page.get_by_role("list", name="Rooms on the server")
    expect(listed.get_by_role("button")).to_have_count(ROOMS + 1)  # and #general

    # Every room clicked as fast as the page takes clicks, none waited for.
    for n in range(ROOMS):
        listed.get_by_role("button", name=re.compile(rf"^#r{n} \(")).click()
    for n in range(ROOMS):
        expect(conversation_button(page, f"#r{n}")).to_be_visible()

    # Each shows its topic, its count and what was said in it before Ann came.
    for n in range(ROOMS):
        conversation_button(page, f"#r{n}").click()
        expect(heading(page)).to_contain_text(f"#r{n}")
        expect(heading(page)).to_contain_text(f"about {n}")
        expect(heading(page)).to_contain_text("2 members")
        expect(log).to_contain_text(f"said in {n}")
        expect(log).not_to_contain_text(TOO_FAST)

    # Back and forth: what is known is not read again (topics came with the joins, history
    # with the joins too; the names of a room are kept up by its joins and parts).
    before = sent.kinds.copy()
    for _ in range(10):
        conversation_button(page, "#r0").click()
        conversation_button(page, "#r24").click()
    expect(heading(page)).to_contain_text("about 24")
    expect(page.get_by_role("complementary", name="Members")).to_contain_text("Owner2")
    again = sent.kinds - before
    assert (again["history"], again["topic"], again["join"]) == (0, 0, 0), again
    assert sent.kinds["history"] == 0  # the 25 rooms' came with their joins

    # What changed meanwhile in a room not in view shows when it is opened again.
    tom = TlsUser(server.port, "Tom")
    tom.request("join", room="#r5")
    owners[0].request("topic", room="#r5", text="moved on")
    owners[0].request("send", to="#r5", text="one more", msg_id="late")
    conversation_button(page, "#r5").click()
    expect(heading(page)).to_contain_text("moved on")
    expect(heading(page)).to_contain_text("3 members")
    expect(page.get_by_role("complementary", name="Members")).to_contain_text("Tom")
    expect(log).to_contain_text("one more")

    # Typing still goes through.
    say(page, "/away lunch")
    expect(page.locator("header .away-mark")).to_have_text("(away)")
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(log).not_to_contain_text(TOO_FAST)
    tom.close()
    assert violations.all() == []


@pytest.fixture
def stingy_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose flood control lets a connection 20 requests' cost at once and then one
    every 20 seconds: less than comes back while the page retries.
    """
    running = ServerProcess(
        tmp_path / "server",
        settings={"PARLEY_FLOOD_BURST_REQUESTS": "20", "PARLEY_FLOOD_RATE_PER_SECOND": "0.05"},
    )
    yield running
    running.stop()


def test_a_server_that_keeps_refusing_still_tells_the_user_to_slow_down(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    stingy_server: ServerProcess,
) -> None:
    page = logged_in(browser, contexts, violations, stingy_server.url, "Ann")
    # Logging in costs 13 (#general's history and names, 5 each): 7 left.
    members = page.get_by_role("complementary", name="Members")
    expect(members.get_by_role("button", name="Ann")).to_be_visible()
    # Each /away costs one: the last two are refused, retried for some 14 s (refilling less
    # than one), and then said so. Their retries stay far under the debt (60) that would cut
    # the connection.
    for _ in range(9):
        say(page, "/away lunch")
    expect(the_log(page)).to_contain_text(TOO_FAST, timeout=30_000)
    expect(page.get_by_role("status")).to_have_text("Connected")
    assert violations.all() == []
