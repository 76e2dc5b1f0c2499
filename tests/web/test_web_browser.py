"""The web client in a real Chromium (Debian's, driven by Playwright), against the real
``parley server`` process with its web port on: browsers chatting with each other and with a
terminal-protocol client over TLS, history, private messages, members, slash commands, hostile
text, the CSP, another site's WebSocket, and reconnecting after a restart.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from support import allow_open_files, insecure_context

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/lib/chromium/chromium")
TIMEOUT_SECONDS = 15.0
XSS = '<img src=x onerror="window.__pwned=1">'


class ServerProcess:
    """``server.py`` with its web port on, in a data dir of its own."""

    def __init__(self, home: Path, port: int = 0, web_port: int = 0) -> None:
        env = dict(os.environ)
        env.update(
            XDG_DATA_HOME=str(home / "data"),
            XDG_CONFIG_HOME=str(home / "config"),
            PYTHONUNBUFFERED="1",
            PARLEY_WEB_PORT=str(web_port),
        )
        self.process = subprocess.Popen(
            [sys.executable, "server.py", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        # Read by a thread, so that waiting for a line has a deadline.
        self._output: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.expect(r"Server is running on 127\.0\.0\.1:(\d+)").group(1))
        match = self.expect(r"Web client on (https://127\.0\.0\.1:(\d+))/")
        self.url = match.group(1)
        self.web_port = int(match.group(2))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._output.put(line.rstrip("\n"))
        self._output.put("")  # the end

    def expect(self, pattern: str) -> re.Match[str]:
        """The next line of output that has ``pattern``; fails after TIMEOUT_SECONDS."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._output.get(timeout=left)
            except queue.Empty:
                break
            assert line, f"server output ended waiting for {pattern!r}: {self.lines}"
            self.lines.append(line)
            if match := regex.search(line):
                return match
        raise AssertionError(f"no {pattern!r} in time: {self.lines}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        status = self.process.wait(timeout=TIMEOUT_SECONDS)
        self._reader.join(TIMEOUT_SECONDS)
        assert self.process.stdout is not None
        self.process.stdout.close()
        assert status == 0, self.lines


@functools.cache
def _client_context() -> ssl.SSLContext:
    """One context for every TlsUser: making one reads the system's CA bundle (tens of ms)."""
    return insecure_context()


class TlsUser:
    """A terminal-protocol client on the TLS port: newline-delimited JSON frames."""

    def __init__(self, port: int, nick: str, source: str = "127.0.0.1", **credentials: str) -> None:
        raw = socket.create_connection(
            ("127.0.0.1", port), timeout=TIMEOUT_SECONDS, source_address=(source, 0)
        )
        self.sock: ssl.SSLSocket = _client_context().wrap_socket(raw)
        self.file = self.sock.makefile("rb")
        self.last_id = 0
        self.events: list[dict[str, Any]] = []
        self.request("hello", versions=[1])
        reply = self.request("nick", nick=nick, **credentials)
        assert reply["type"] == "ok", reply

    def frame(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line, "the server closed the connection"
        result: dict[str, Any] = json.loads(line)
        return result

    def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.last_id += 1
        self.sock.sendall(json.dumps({"type": kind, "id": self.last_id, **fields}).encode() + b"\n")
        while True:
            frame = self.frame()
            if frame.get("id") == self.last_id and frame["type"] != "message":
                return frame
            self.events.append(frame)

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        while True:
            frame = self.events.pop(0) if self.events else self.frame()
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


class Violations:
    """Console messages about the Content Security Policy, from every page of a context."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def watch(self, page: Page) -> Page:
        def seen(message: ConsoleMessage) -> None:
            if (
                "Content Security Policy" in message.text
                or "Content-Security-Policy" in message.text
            ):
                self.messages.append(message.text)

        page.on("console", seen)
        return page


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


def open_page(
    browser: Browser, contexts: list[BrowserContext], violations: Violations, url: str
) -> Page:
    """A page in a browser context of its own (its own cookies and storage: another person)."""
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_SECONDS * 1000)
    contexts.append(context)
    page = violations.watch(context.new_page())
    page.goto(url + "/")
    return page


def log_in(page: Page, nick: str, password: str = "") -> None:
    page.get_by_label("Nickname").fill(nick)
    if password:
        page.get_by_label(re.compile("^Password")).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("status")).to_have_text("Connected")


def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name=re.compile("^Message to"))
    box.fill(text)
    box.press("Enter")


def the_log(page: Page) -> Any:
    return page.get_by_role("log")


def test_browsers_and_a_terminal_client_chat_in_rooms_and_privately(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    tom = TlsUser(server.port, "Tom")
    ann = open_page(browser, contexts, violations, server.url)
    ben = open_page(browser, contexts, violations, server.url)
    log_in(ann, "Ann")
    log_in(ben, "Ben")
    members = ann.get_by_role("complementary", name="Members")
    for nick in ("Ann", "Ben", "Tom"):
        expect(members.get_by_role("button", name=nick, exact=True)).to_be_visible()

    say(ann, "hello from Ann's browser")
    expect(the_log(ben)).to_contain_text("Ann: hello from Ann's browser")
    assert tom.event("message", sender="Ann")["text"] == "hello from Ann's browser"

    tom.request("send", to="#general", text="and hello from a terminal", msg_id="t1")
    expect(the_log(ann)).to_contain_text("Tom: and hello from a terminal")
    expect(the_log(ben)).to_contain_text("Tom: and hello from a terminal")

    # A private message with /pm: it opens a conversation on both sides, and nobody else sees it.
    say(ben, "/pm Ann just between us")
    expect(ann.get_by_role("button", name="Ben", exact=True).first).to_be_visible()
    ann.get_by_role("navigation").get_by_role("button", name="Ben", exact=True).click()
    expect(the_log(ann)).to_contain_text("Ben: just between us")
    expect(ann.get_by_role("heading", name=re.compile("^Ben"))).to_be_visible()
    say(ann, "/me nods")
    expect(the_log(ben)).to_contain_text("* Ann nods")
    tom.request("send", to="Ann", text="psst, from the terminal", msg_id="t2")
    ann.get_by_role("navigation").get_by_role("button", name="Tom", exact=True).click()
    expect(the_log(ann)).to_contain_text("Tom: psst, from the terminal")
    assert "just between us" not in json.dumps(tom.events)

    # Slash commands that are protocol requests answer in the conversation.
    say(ann, "/list")
    expect(the_log(ann)).to_contain_text("Online (3): Ann, Ben, Tom")
    say(ann, "/nosuch")
    expect(the_log(ann)).to_contain_text("Unknown command /nosuch")

    # Leaving shows in the member list of those who stay.
    tom.request("bye")
    tom.close()
    ben.get_by_role("navigation").get_by_role("button", name="#general").click()
    expect(
        ben.get_by_role("complementary", name="Members").get_by_role("button", name="Tom")
    ).to_have_count(0)
    assert violations.messages == []


def test_history_shows_when_a_room_opens_and_rooms_are_listed(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    tom = TlsUser(server.port, "Tom")
    tom.request("join", room="#lobby")
    tom.request("topic", room="#lobby", text="the lobby")
    for number in range(3):
        tom.request("send", to="#lobby", text=f"earlier {number}", msg_id=f"e{number}")
    ann = open_page(browser, contexts, violations, server.url)
    log_in(ann, "Ann")
    ann.get_by_role("button", name="Show rooms").click()
    ann.get_by_role("list", name="Rooms on the server").get_by_role(
        "button", name=re.compile(r"^#lobby \(1\)")
    ).click()
    expect(ann.get_by_role("heading", name=re.compile("^#lobby"))).to_contain_text("the lobby")
    log = the_log(ann)
    for number in range(3):
        expect(log).to_contain_text(f"Tom: earlier {number}")
    assert log.inner_text().index("earlier 0") < log.inner_text().index("earlier 2")
    # Joined by the form too, keyboard only.
    ann.get_by_label("Join a room").fill("#second")
    ann.get_by_label("Join a room").press("Enter")
    expect(ann.get_by_role("heading", name=re.compile("^#second"))).to_be_visible()
    tom.close()


def test_a_password_login_and_keyboard_only_use(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    owner = TlsUser(server.port, "Carol")
    assert owner.request("register", password="correct horse battery")["type"] == "ok"
    owner.request("bye")
    owner.close()
    page = open_page(browser, contexts, violations, server.url)
    # Without the password the name is refused, and the form says why.
    expect(page.get_by_label("Nickname")).to_be_focused()
    page.keyboard.type("Carol")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("password")
    page.get_by_label("Nickname").fill("Carol")
    page.get_by_label("Nickname").press("Tab")
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Connected")
    expect(page.locator("header .me")).to_have_text("Carol")
    # The message box has the focus: typing and Enter sends.
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(the_log(page)).to_contain_text("Carol: typed, not clicked")
    assert violations.messages == []


def test_hostile_text_shows_as_text(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    tom = TlsUser(server.port, "Tom")
    page = open_page(browser, contexts, violations, server.url)
    log_in(page, "Ann")
    tom.request("send", to="#general", text=XSS, msg_id="x1")
    tom.request("join", room="#x")
    say(page, XSS)
    say(page, "/join #x")
    topic = tom.request("topic", room="#x", text=XSS)
    assert topic["type"] == "ok", topic
    expect(page.get_by_role("heading", name=re.compile("^#x"))).to_contain_text(XSS)
    page.get_by_role("navigation").get_by_role("button", name="#general").click()
    expect(the_log(page)).to_contain_text(f"Tom: {XSS}")
    expect(the_log(page)).to_contain_text(f"Ann: {XSS}")
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    tom.close()
    # A nickname cannot hold markup (the server refuses it); the refusal shows as text too.
    other = open_page(browser, contexts, violations, server.url)
    other.get_by_label("Nickname").fill(XSS)
    other.get_by_role("button", name="Log in").click()
    expect(other.get_by_role("status")).to_contain_text("Nicknames are")
    assert other.locator("img").count() == 0
    assert other.evaluate("window.__pwned") is None
    assert violations.messages == []


def test_the_csp_is_sent_and_nothing_breaks_it(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    context = browser.new_context(ignore_https_errors=True)
    contexts.append(context)
    page = violations.watch(context.new_page())
    response = page.goto(server.url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    log_in(page, "Ann")
    say(page, "/help")
    expect(the_log(page)).to_contain_text("/join #room")
    # The policy is in force: an inline script is refused, and the browser says so.
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__inline = 1'; document.body.appendChild(s); }"
    )
    assert page.evaluate("window.__inline") is None
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not violations.messages and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(violations.messages) == 1, violations.messages


def test_another_sites_page_cannot_open_the_websocket(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    context = browser.new_context(ignore_https_errors=True)
    contexts.append(context)
    # Another site's page, served from this machine (the browser keeps public sites away from
    # loopback addresses on its own, which would hide what the server does).
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    foreign = f"http://127.0.0.1:{site.server_address[1]}/"
    opening = """url => new Promise(done => {
        const ws = new WebSocket(url);
        ws.onopen = () => { done("open"); ws.close(); };
        ws.onclose = event => done("closed " + event.code);
    })"""
    socket_url = server.url.replace("https://", "wss://") + "/ws"
    page = context.new_page()
    page.goto(foreign)
    assert page.evaluate(opening, socket_url) == "closed 1006"  # no WebSocket was opened
    server.expect(r"Refused a WebSocket from 127\.0\.0\.1: its Origin 'http://127\.0\.0\.1:\d+'")
    # The same script on the server's own page opens it.
    site.shutdown()
    site.server_close()
    own = violations.watch(context.new_page())
    own.goto(server.url + "/")
    assert own.evaluate(opening, socket_url) == "open"


class _OtherSite(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><p>another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_reconnects_after_a_restart_and_says_so(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    tmp_path: Path,
) -> None:
    port, web_port = _free_port(), _free_port()
    first = ServerProcess(tmp_path / "server", port=port, web_port=web_port)
    try:
        page = open_page(browser, contexts, violations, first.url)
        log_in(page, "Ann")
        say(page, "/join #kept")
        expect(page.get_by_role("heading", name=re.compile("^#kept"))).to_be_visible()
        say(page, "before the restart")
        expect(the_log(page)).to_contain_text("Ann: before the restart")
    finally:
        first.stop()
    status = page.get_by_role("status")
    expect(status).to_contain_text("Connection lost; trying again")
    second = ServerProcess(tmp_path / "server", port=port, web_port=web_port)
    try:
        expect(status).to_have_text("Connected", timeout=30_000)
        tom = TlsUser(second.port, "Tom")
        tom.request("join", room="#kept")
        say(page, "after the restart")
        assert "history" not in tom.event("message", sender="Ann", text="after the restart")
        # The room's history shows once, not twice.
        expect(the_log(page).get_by_text("Ann: before the restart")).to_have_count(1)
        tom.close()
    finally:
        second.stop()
    assert violations.messages == []


@pytest.fixture
def many_open_files() -> None:
    """Room for a connection per guest, in this process and in the server (which inherits
    the limit: this fixture comes before ``server``).
    """
    allow_open_files(4096)


def test_lists_longer_than_one_reply_are_shown_whole(
    many_open_files: None,
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    # More users online than one `users` reply holds: the web client reads every page. (Each
    # leaves #general, so that arrivals are not sent to all the others.)
    count = 1010
    guests = []
    for n in range(count):
        guest = TlsUser(server.port, f"G{n:04}", source=f"127.0.0.{1 + n % 3}")
        assert guest.request("part", room="#general")["type"] == "ok"
        guests.append(guest)
    ann = open_page(browser, contexts, violations, server.url)
    log_in(ann, "Ann")
    say(ann, "/list")
    names = ", ".join(sorted(["Ann", *(f"G{n:04}" for n in range(count))], key=str.lower))
    expect(the_log(ann)).to_contain_text(f"Online ({count + 1}): {names}")
    for guest in guests:
        guest.close()
    assert violations.messages == []
