"""The web client in a real Chromium (Debian's, driven by Playwright), against the real
``parley server`` process with its web port on: browsers chatting with each other and with a
terminal-protocol client over TLS, history, private messages, members, slash commands, hostile
text, the CSP, another site's WebSocket, and reconnecting after a restart.
"""

from __future__ import annotations

import http.server
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, expect
from web_lab import (
    TIMEOUT_SECONDS,
    ClientProcess,
    ServerProcess,
    TlsUser,
    Violations,
    conversation_button,
    free_port,
    log_in,
    logged_in,
    new_context,
    open_page,
    say,
    the_log,
)

from support import allow_open_files

XSS = '<img src=x onerror="window.__pwned=1">'


def test_browsers_and_a_terminal_client_chat_in_rooms_and_privately(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
    tmp_path: Path,
) -> None:
    tom = ClientProcess(tmp_path / "tom", server.port, "Tom")
    ann = logged_in(browser, contexts, violations, server.url, "Ann")
    ben = logged_in(browser, contexts, violations, server.url, "Ben")
    members = ann.get_by_role("complementary", name="Members")
    for nick in ("Ann", "Ben", "Tom"):
        expect(members.get_by_role("button", name=nick, exact=True)).to_be_visible()

    say(ann, "hello from Ann's browser")
    expect(the_log(ben)).to_contain_text("Ann: hello from Ann's browser")
    tom.expect(r"Ann: hello from Ann's browser$")

    tom.type("and hello from a terminal")
    expect(the_log(ann)).to_contain_text("Tom: and hello from a terminal")
    expect(the_log(ben)).to_contain_text("Tom: and hello from a terminal")

    # A private message with /pm: it opens a conversation on both sides, and nobody else sees it.
    say(ben, "/pm Ann just between us")
    expect(conversation_button(ann, "Ben")).to_be_visible()
    conversation_button(ann, "Ben").click()
    expect(the_log(ann)).to_contain_text("Ben: just between us")
    expect(ann.get_by_role("heading", name=re.compile("^Ben"))).to_be_visible()
    say(ann, "/me nods")
    expect(the_log(ben)).to_contain_text("* Ann nods")
    # The terminal and a browser, privately, both ways.
    tom.type("/pm Ann psst, from the terminal")
    conversation_button(ann, "Tom").click()
    expect(the_log(ann)).to_contain_text("Tom: psst, from the terminal")
    say(ann, "got it, Tom")
    tom.expect(r"\(private\) Ann: got it, Tom$")
    assert "just between us" not in "\n".join(tom.output.lines)
    assert "nods" not in "\n".join(tom.output.lines)

    # Slash commands that are protocol requests answer in the conversation.
    say(ann, "/list")
    expect(the_log(ann)).to_contain_text("Online (3): Ann, Ben, Tom")
    say(ann, "/nosuch")
    expect(the_log(ann)).to_contain_text("Unknown command /nosuch")

    # Leaving shows in the member list of those who stay.
    tom.quit()
    ben.get_by_role("navigation").get_by_role("button", name="#general").click()
    expect(
        ben.get_by_role("complementary", name="Members").get_by_role("button", name="Tom")
    ).to_have_count(0)
    assert violations.all() == []


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
    ann = logged_in(browser, contexts, violations, server.url, "Ann")
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
    assert violations.all() == []


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
    # Without the password the name is refused, and the form says why. Keys typed before the
    # page's script has focused the field are lost: "arol" alone would log in as a guest and
    # read "Connected". So: wait for the focus, and check what was typed before sending it.
    nick = page.get_by_label("Nickname")
    expect(nick).to_be_focused()
    page.keyboard.type("Carol")
    expect(nick).to_have_value("Carol")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("password")
    expect(page.locator("header .me")).to_have_count(0)
    nick.fill("Carol")
    nick.press("Tab")
    page.keyboard.type("correct horse battery")
    expect(page.get_by_label(re.compile("^Password"))).to_have_value("correct horse battery")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Connected")
    expect(page.locator("header .me")).to_have_text("Carol")
    # The message box has the focus: typing and Enter sends.
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(the_log(page)).to_contain_text("Carol: typed, not clicked")
    assert violations.all() == []


def test_hostile_text_shows_as_text(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    tom = TlsUser(server.port, "Tom")
    page = logged_in(browser, contexts, violations, server.url, "Ann")
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
    assert violations.all() == []


def test_the_csp_is_sent_and_nothing_breaks_it(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    page = violations.watch(new_context(browser, contexts).new_page())
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
    # Badges, the theme and a link change the icon, classes and elements: nothing is refused.
    page.get_by_role("button", name=re.compile("^Theme")).click()
    say(page, "see https://example.org/a?b=1")
    expect(the_log(page).get_by_role("link", name="https://example.org/a?b=1")).to_be_visible()
    assert violations.all() == []
    # The policy is in force: an inline script is refused, and the browser says so.
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__inline = 1'; document.body.appendChild(s); }"
    )
    assert page.evaluate("window.__inline") is None
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while len(violations.all()) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(violations.messages) == 1, violations.messages
    reported = page.evaluate("window.__cspViolations")
    assert len(reported) == 1 and reported[0].startswith("script-src"), reported


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
    assert violations.all() == []


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


def test_reconnects_after_a_restart_and_says_so(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    tmp_path: Path,
) -> None:
    port, web_port = free_port(), free_port()
    first = ServerProcess(tmp_path / "server", port=port, web_port=web_port)
    try:
        page = logged_in(browser, contexts, violations, first.url, "Ann")
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
    assert violations.all() == []


def test_history_a_crash_took_back_is_reloaded_and_said(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    tmp_path: Path,
) -> None:
    port, web_port = free_port(), free_port()
    # Commits that do not wait for the disk: a run that does not stop cleanly raises the epoch.
    settings = {"PARLEY_SQLITE_SYNCHRONOUS": "normal"}
    first = ServerProcess(tmp_path / "server", port=port, web_port=web_port, settings=settings)
    try:
        page = logged_in(browser, contexts, violations, first.url, "Ann")
        say(page, "/join #kept")
        expect(page.get_by_role("heading", name=re.compile("^#kept"))).to_be_visible()
        for text in ("kept one", "lost two"):
            say(page, text)
            expect(the_log(page)).to_contain_text(f"Ann: {text}")
    finally:
        first.process.kill()
        first.process.wait(timeout=TIMEOUT_SECONDS)
        first.output.join()
    status = page.get_by_role("status")
    expect(status).to_contain_text("Connection lost; trying again")
    # What a power cut can do under "normal": the last message is gone, its seq free again.
    [database] = (tmp_path / "server").rglob("parley.sqlite3")
    db = sqlite3.connect(database)
    with db:
        db.execute("DELETE FROM messages WHERE conversation = '#kept' AND seq > 1")
        db.execute("UPDATE conversations SET last_seq = 1 WHERE id = '#kept'")
    db.close()
    second = ServerProcess(tmp_path / "server", port=port, web_port=web_port, settings=settings)
    try:
        second.expect("History epoch raised to 1")
        expect(status).to_have_text("Connected", timeout=30_000)
        log = the_log(page)
        expect(log).to_contain_text("The server restarted after losing its last messages")
        expect(log.get_by_text("Ann: kept one")).to_have_count(1)
        expect(log.get_by_text("Ann: lost two")).to_have_count(0)
        say(page, "new two")  # stored under the lost message's seq, and shown
        expect(log.get_by_text("Ann: new two")).to_have_count(1)
    finally:
        second.stop()
    assert violations.all() == []


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
    ann = logged_in(browser, contexts, violations, server.url, "Ann")
    say(ann, "/list")
    names = ", ".join(sorted(["Ann", *(f"G{n:04}" for n in range(count))], key=str.lower))
    expect(the_log(ann)).to_contain_text(f"Online ({count + 1}): {names}")
    for guest in guests:
        guest.close()
    assert violations.messages == []
