"""How many requests the web client sends for one thing its user does, in Chromium.

    python -m bench.web_requests

A server as shipped (web port on) and one guest in the browser. The WebSocket frames the page
sends are counted, with their flood-control cost (``rooms``, ``who``, ``list``, ``history``
and ``files`` 5, the rest 1), for each action once the page has gone quiet after it:
logging in, opening (joining) a room, switching to a room already open, switching back and
forth between two, opening the members panel on a phone-sized page, typing a command, and
opening 25 rooms one after the other as fast as the page takes the clicks. Prints a table;
needs Debian's Chromium, as the browser tests do.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, WebSocket, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "web")]

# The browser tests' lab: the same server process and log-in as they use (not type-checked).
from web_lab import CHROMIUM, ServerProcess, TlsUser, conversation_button, log_in, say  # type: ignore[import-not-found]  # noqa: E402

EXPENSIVE = {"rooms", "who", "list", "history", "files"}
QUIET_SECONDS = 1.5  # no request for this long: the action's requests are all out
ROOMS = 25
ROOMS_PER_OWNER = 9  # under the rooms a user may create in an hour (10)


class Counted:
    """Every request frame the page's WebSockets send, by type."""

    def __init__(self, page: Page) -> None:
        self.sent: list[str] = []
        self.last = time.monotonic()
        page.on("websocket", self._watch)

    def _watch(self, socket: WebSocket) -> None:
        socket.on("framesent", self._frame)

    def _frame(self, payload: str | bytes) -> None:
        try:
            kind = json.loads(payload)["type"]
        except (ValueError, KeyError, TypeError):
            return
        self.sent.append(str(kind))
        self.last = time.monotonic()

    def settle(self, page: Page) -> None:
        """Wait (at most 30 s) until no request went out for QUIET_SECONDS."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and time.monotonic() - self.last < QUIET_SECONDS:
            page.wait_for_timeout(100)

    def since(self, mark: int) -> tuple[int, int, str]:
        kinds = Counter(self.sent[mark:])
        cost = sum(n * (5 if kind in EXPENSIVE else 1) for kind, n in kinds.items())
        return sum(kinds.values()), cost, ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


Row = tuple[str, int, int, str]


def measure(
    page: Page, counted: Counted, rows: list[Row], name: str, act: Callable[[], None]
) -> None:
    mark = len(counted.sent)
    act()
    counted.settle(page)
    rows.append((name, *counted.since(mark)))


def heading(page: Page, room: str) -> None:
    expect(page.get_by_role("heading", name=re.compile(f"^{re.escape(room)}"))).to_be_visible()


def main() -> None:
    with tempfile.TemporaryDirectory() as home, sync_playwright() as playwright:
        server = ServerProcess(Path(home) / "server", settings={"PARLEY_LOG_LEVEL": "warning"})
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        rows: list[Row] = []
        # The rooms opened exist already, each with its owner in it, a topic and a message;
        # owners on addresses of their own, each under the rooms an address may create.
        owners = [
            TlsUser(server.port, f"Owner{n}", source=f"127.0.0.{n + 2}")
            for n in range((ROOMS + ROOMS_PER_OWNER - 1) // ROOMS_PER_OWNER)
        ]
        for n in range(ROOMS):
            owner = owners[n // ROOMS_PER_OWNER]
            owner.request("join", room=f"#many{n}")
            owner.request("topic", room=f"#many{n}", text=f"topic {n}")
            owner.request("send", to=f"#many{n}", text=f"hello {n}", msg_id=f"m{n}")
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            counted = Counted(page)
            page.goto(server.url + "/")
            login = "log in (as a guest, in #general)"
            measure(page, counted, rows, login, lambda: log_in(page, "Ann"))

            def join(room: str) -> None:
                say(page, f"/join {room}")
                heading(page, room)

            measure(page, counted, rows, "open a room (/join #one)", lambda: join("#one"))
            measure(page, counted, rows, "open a second room (/join #two)", lambda: join("#two"))

            def switch(room: str) -> None:
                conversation_button(page, room).click()
                heading(page, room)

            again = "switch to a room open before (#one)"
            measure(page, counted, rows, again, lambda: switch("#one"))

            def back_and_forth() -> None:
                for _ in range(5):
                    switch("#two")
                    switch("#one")

            measure(page, counted, rows, "switch #two/#one 5 times (10 clicks)", back_and_forth)
            command = "type a command (/away lunch)"
            measure(page, counted, rows, command, lambda: say(page, "/away lunch"))

            def members_panel() -> None:
                page.set_viewport_size({"width": 380, "height": 700})
                page.get_by_role("button", name=re.compile(r"^Members \(")).click()
                expect(page.get_by_role("complementary", name="Members")).to_be_visible()

            measure(page, counted, rows, "open the members panel (phone-sized)", members_panel)
            page.set_viewport_size({"width": 1280, "height": 800})

            opened = [0]

            def many() -> None:
                for n in range(ROOMS):
                    say(page, f"/join #many{n}")
                    try:
                        heading(page, f"#many{n}")
                    except AssertionError:
                        return  # refused: the table says how far it got
                    opened[0] = n + 1

            measure(page, counted, rows, f"open {ROOMS} rooms one after another", many)
            errors = page.get_by_text("You are sending too fast").count()
            opened_rooms = opened[0]
        finally:
            browser.close()
            for owner in owners:
                owner.close()
            server.stop()
    print(f"{'action':45} {'requests':>8} {'cost':>5}  by type")
    for name, count, cost, kinds in rows:
        print(f"{name:45} {count:>8} {cost:>5}  {kinds}")
    print(f"rooms opened of {ROOMS}: {opened_rooms}")
    print(f"'You are sending too fast' shown: {errors} time(s)")


if __name__ == "__main__":
    main()
