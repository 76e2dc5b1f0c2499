"""Two server events in a real Chromium: a big room's ``members`` summaries (the count, a
summary line, and a member list read a page at a time), and ``going-away`` from a node of a
cluster that restarts (the page finishes, leaves, and carries on on the other node with
nothing missing or shown twice).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from web_lab import (
    HoldingProxy,
    ServerProcess,
    TlsUser,
    Violations,
    logged_in,
    say,
    the_log,
)

from cluster.cluster_support import ClusterStorage
from parley.tls import ensure_certificate

T = TypeVar("T")

# Rooms of more than five are big here, summarised every 0.2 s.
BIG_ROOMS = {"PARLEY_ROOM_ANNOUNCE_LIMIT": "5", "PARLEY_ROOM_SUMMARY_SECONDS": "0.2"}


def members_pane(page: Page) -> Any:
    return page.get_by_role("complementary", name="Members")


def member_names(page: Page) -> list[str]:
    names: list[str] = members_pane(page).locator("li button").all_inner_texts()
    return [name.strip() for name in names]


def message_texts(page: Page) -> list[str]:
    texts: list[str] = the_log(page).locator("li.message .text").all_inner_texts()
    return texts


def in_room(port: int, nick: str, room: str) -> TlsUser:
    user = TlsUser(port, nick)
    reply = user.request("join", room=room)
    assert reply["type"] == "room", reply
    return user


def test_a_big_room_shows_its_count_a_summary_and_its_members_a_page_at_a_time(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "server", settings=BIG_ROOMS)
    users: list[TlsUser] = []
    try:
        ann = logged_in(browser, contexts, violations, server.url, "Ann")
        say(ann, "/join #big")
        title = ann.get_by_role("heading", name=re.compile("^#big"))
        expect(title).to_contain_text("1 member")
        # A small room: each join is announced, and listed.
        users += [in_room(server.port, f"User{number:03}", "#big") for number in range(4)]
        expect(the_log(ann)).to_contain_text("User003 joined.")
        expect(members_pane(ann).get_by_role("heading")).to_have_text("Members (5)")
        assert member_names(ann) == ["Ann", "User000", "User001", "User002", "User003"]
        # Past room_announce_limit the joins come as counts: no line each, a summary instead.
        users += [in_room(server.port, f"User{number:03}", "#big") for number in range(4, 202)]
        expect(members_pane(ann).get_by_role("heading")).to_have_text("Members (203)")
        expect(title).to_contain_text("203 members")
        expect(members_pane(ann).locator(".summary")).to_have_text(
            re.compile(r"^\d+ joined since the count before\.$")
        )
        # The list is read again after the summaries: its first page (200 names), the rest
        # counted.
        expect(members_pane(ann).locator("li")).to_have_count(200)
        expect(members_pane(ann).locator(".more-members")).to_contain_text("and 3 more")
        expect(the_log(ann).get_by_text(re.compile(r"joined\.$"))).to_have_count(4)
        parting = users.pop()
        parting.request("part", room="#big")
        parting.close()
        expect(members_pane(ann).get_by_role("heading")).to_have_text("Members (202)")
        expect(members_pane(ann).locator(".summary")).to_have_text("1 left since the count before.")
        expect(the_log(ann).get_by_text(re.compile(r"left\.$"))).to_have_count(0)

        # Coming into a big room: its count and first page; the whole list when asked for.
        bob = logged_in(browser, contexts, violations, server.url, "Bob")
        say(bob, "/join #big")
        expect(bob.get_by_role("heading", name=re.compile("^#big"))).to_contain_text("203 members")
        expect(members_pane(bob).locator("li")).to_have_count(200)
        more = members_pane(bob).get_by_role("button", name="Show all 203")
        more.click()
        # The pages after the first are read as they are now (the first may be a second old).
        expect(members_pane(bob).get_by_role("button", name="User200")).to_be_visible()
        expect(more).to_have_count(0)
        assert member_names(bob)[-3:] == ["User198", "User199", "User200"]

        # A storm of departures: every list follows, without a line for each.
        for user in users[3:]:
            assert user.request("part", room="#big")["type"] == "ok"
            user.close()
        del users[3:]
        left = ["Ann", "Bob", "User000", "User001", "User002"]
        for page in (ann, bob):
            expect(members_pane(page).get_by_role("heading")).to_have_text("Members (5)")
            expect(members_pane(page).locator("li")).to_have_count(5)
            assert member_names(page) == left
        expect(the_log(ann).get_by_text(re.compile(r"left\.$"))).to_have_count(0)
        # /who reads every page, with the count.
        say(bob, "/who")
        expect(the_log(bob)).to_contain_text("In #big (5): Ann, Bob, User000, User001, User002")
    finally:
        for user in users:
            user.close()
        server.stop()
    assert violations.all() == []


def _run(work: Coroutine[Any, Any, T]) -> T:
    """``work`` to its end on an event loop of its own, in a thread: Playwright's synchronous
    API keeps a loop running on this one.
    """
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


@pytest.fixture
def cluster_settings(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The settings two nodes of one cluster share: a PostgreSQL schema and a Redis prefix of
    the test's own, one certificate, and a drain of 10 s.
    """
    storage = _run(ClusterStorage.make())
    cert_file, key_file = ensure_certificate(tmp_path / "certificate")
    try:
        yield {
            "PARLEY_DATABASE": storage.database,
            "PARLEY_BUS": storage.bus,
            "PARLEY_CERT_FILE": str(cert_file),
            "PARLEY_KEY_FILE": str(key_file),
            "PARLEY_SHUTDOWN_DRAIN_SECONDS": "10",
        }
    finally:
        _run(storage.drop())


def test_a_node_going_away_moves_the_page_to_another_without_gap_or_duplicate(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    tmp_path: Path,
    cluster_settings: dict[str, str],
) -> None:
    # The balancer in front of both nodes' web ports: it sends new connections to node a
    # until a is taken out of rotation for its restart.
    proxy = HoldingProxy()
    settings = {**cluster_settings, "PARLEY_WEB_PUBLIC_URL": proxy.url}
    logs = {name: tmp_path / f"{name}.log" for name in "ab"}

    def node(name: str) -> ServerProcess:
        return ServerProcess(
            tmp_path / name, settings={**settings, "PARLEY_LOG_FILE": str(logs[name])}
        )

    nodes = [node("a")]
    try:
        nodes.append(node("b"))
        a, b = nodes
        proxy.upstream_port = a.web_port
        tom = in_room(b.port, "Tom", "#flow")
        page = logged_in(browser, contexts, violations, proxy.url, "Ann")
        say(page, "/join #flow")
        expect(page.get_by_role("heading", name=re.compile("^#flow"))).to_be_visible()
        say(page, "before the move")
        tom.event("message", sender="Ann", text="before the move")
        tom.request("send", to="#flow", text="from Tom 0", msg_id="t0")
        expect(the_log(page)).to_contain_text("Tom: from Tom 0")

        proxy.upstream_port = b.web_port
        a.process.terminate()  # a rolling restart: node a drains
        expect(the_log(page)).to_contain_text("Server: This server is going away (a restart)")
        # Said while the page moves: on a before it leaves, or missed and fetched on b.
        for number in range(1, 4):
            tom.request("send", to="#flow", text=f"from Tom {number}", msg_id=f"t{number}")
        say(page, "typed while moving")
        status = page.get_by_role("status")
        expect(status).to_have_text("Connected", timeout=30_000)
        tom.event("message", sender="Ann", text="typed while moving")
        expect(the_log(page)).to_contain_text("Ann: typed while moving")
        expected = [
            "before the move",
            "from Tom 0",
            "from Tom 1",
            "from Tom 2",
            "from Tom 3",
            "typed while moving",
        ]
        assert message_texts(page) == expected
        history = tom.request("history", to="#flow", limit=50)["messages"]
        assert [message["text"] for message in history] == expected
        # The page left node a by itself, with bye, before the drain was over.
        a.stop()
        log = logs["a"].read_text()
        assert "Draining: told 1 connections to move to another node" in log, log
        assert "still open after" not in log, log
        # Node b serves it: a message from there arrives live, once.
        tom.request("send", to="#flow", text="on b", msg_id="t4")
        expect(the_log(page)).to_contain_text("Tom: on b")
        assert message_texts(page) == [*expected, "on b"]
        tom.close()
    finally:
        proxy.close()
        for node in nodes:
            node.stop()
    assert violations.all() == []
