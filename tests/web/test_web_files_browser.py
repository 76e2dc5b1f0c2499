"""Files and logins of the web client in a real Chromium (Debian's, driven by Playwright),
against the real ``parley server`` process and the real terminal client (``client.py``) as a
process on pipes: a file dropped or pasted on the page reaches the terminal client byte for
byte, one shared from the terminal is downloaded in the browser byte for byte, hostile file
names show as text, an oversize file is refused with a clear message, an upload cut short
goes on from where it stopped, the session cookie is out of the page script's reach and keeps
the login across a reload, another site's page can neither log in nor upload, and password
guesses on the TLS port throttle the browser's login too.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.server
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from web_lab import (
    TIMEOUT_SECONDS,
    ClientProcess,
    ServerProcess,
    TlsUser,
    Violations,
    log_in,
    logged_in,
    open_page,
    the_log,
)

from parley.protocol.filenames import clean_file_name
from support import insecure_context

PASSWORD = "correct horse battery"


@pytest.fixture
def clients() -> Iterator[list[ClientProcess]]:
    made: list[ClientProcess] = []
    yield made
    for client in made:
        client.quit()


def _give(page: Page, event: str, name: str, data: bytes) -> None:
    """A file called ``name`` holding ``data``, dropped on (``drop``) or pasted into
    (``paste``) the open conversation, as the browser delivers a user's drop or paste.
    """
    page.evaluate(
        """([event, name, data]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "application/octet-stream" }));
            const zone = document.querySelector(".log");
            if (event === "drop") {
                const how = { dataTransfer: transfer, bubbles: true, cancelable: true };
                zone.dispatchEvent(new DragEvent("dragover", how));
                zone.dispatchEvent(new DragEvent("drop", how));
            } else {
                const how = { clipboardData: transfer, bubbles: true, cancelable: true };
                document.querySelector("#compose").dispatchEvent(new ClipboardEvent("paste", how));
            }
        }""",
        [event, name, base64.b64encode(data).decode()],
    )


def _uploads(page: Page) -> object:
    return page.get_by_role("list", name="Uploads")


def test_a_file_dropped_or_pasted_on_the_page_reaches_the_terminal_client(
    browser: Browser,
    contexts: list[BrowserContext],
    server: ServerProcess,
    clients: list[ClientProcess],
    tmp_path: Path,
) -> None:
    terminal = ClientProcess(tmp_path / "term", server.port, "Term")
    clients.append(terminal)
    page = logged_in(browser, contexts, Violations(), server.url, "Webby")
    dropped = os.urandom(1_500_000)
    _give(page, "drop", "holiday photos.zip", dropped)
    upload = page.locator(".upload", has_text="holiday photos.zip")
    expect(upload.locator(".upload-state")).to_have_text("Sent")
    progress = upload.locator("progress")
    expect(progress).to_have_attribute("value", str(len(dropped)))
    expect(progress).to_have_attribute("max", str(len(dropped)))
    line = terminal.expect(r"Webby shared holiday photos\.zip \(1\.4 MiB\) — /get ([0-9a-f]{8})$")
    saved = tmp_path / "saved"
    saved.mkdir()
    terminal.type(f"/get {line.group(1)} {saved}")
    terminal.expect(r"Saved .*holiday photos\.zip \(SHA-256 checked\)\.$")
    assert (saved / "holiday photos.zip").read_bytes() == dropped
    # The page shows its own share as a download, like anyone's.
    expect(the_log(page).get_by_role("button", name="holiday photos.zip")).to_be_visible()

    pasted = os.urandom(20_000)
    _give(page, "paste", "image.png", pasted)
    expect(page.locator(".upload", has_text="image.png").locator(".upload-state")).to_have_text(
        "Sent"
    )
    line = terminal.expect(r"Webby shared image\.png \(19\.5 KiB\) — /get ([0-9a-f]{8})$")
    terminal.type(f"/get {line.group(1)} {saved}")
    terminal.expect(r"Saved .*image\.png \(SHA-256 checked\)\.$")
    assert (saved / "image.png").read_bytes() == pasted


def test_a_file_shared_from_the_terminal_downloads_in_the_browser(
    browser: Browser,
    contexts: list[BrowserContext],
    server: ServerProcess,
    clients: list[ClientProcess],
    tmp_path: Path,
) -> None:
    page = logged_in(browser, contexts, Violations(), server.url, "Webby")
    terminal = ClientProcess(tmp_path / "term", server.port, "Term")
    clients.append(terminal)
    report = tmp_path / "outbox" / "report.pdf"
    report.parent.mkdir()
    report.write_bytes(os.urandom(2_400_000))
    terminal.type(f"/upload #general {report}")
    terminal.expect(r"Shared report\.pdf with #general")
    link = the_log(page).get_by_role("button", name="report.pdf")
    with page.expect_download() as started:
        link.click()
    download = started.value
    assert download.suggested_filename == "report.pdf"
    assert Path(download.path()).read_bytes() == report.read_bytes()
    # The same file from the /files list, with a fresh token.
    box = page.get_by_role("textbox", name=re.compile("^Message to"))
    box.fill("/files")
    box.press("Enter")
    listed = page.get_by_role("region", name="Files shared with you")
    expect(listed).to_contain_text("report.pdf (2.3 MiB) from Term in #general")
    with page.expect_download() as again:
        listed.get_by_role("button", name="report.pdf").click()
    assert Path(again.value.path()).read_bytes() == report.read_bytes()


def test_hostile_file_names_show_as_text_and_run_nothing(
    browser: Browser,
    contexts: list[BrowserContext],
    server: ServerProcess,
    clients: list[ClientProcess],
    tmp_path: Path,
) -> None:
    page = logged_in(browser, contexts, Violations(), server.url, "Webby")
    terminal = ClientProcess(tmp_path / "term", server.port, "Term")
    clients.append(terminal)
    hostile = "<img src=x onerror=window.__pwned=1> javascript alert(1) '&amp;\u202egnp.exe"
    shown = clean_file_name(hostile)
    source = tmp_path / "outbox" / hostile
    source.parent.mkdir()
    source.write_bytes(b"not a picture")
    terminal.type(f"/upload #general {source}")
    terminal.expect(r"Shared .* with #general")
    button = the_log(page).get_by_role("button", name=shown)
    expect(button).to_have_text(shown)
    assert "\u202e" not in shown  # the bidi override was made visible, not obeyed
    assert page.evaluate("window.__pwned") is None
    assert the_log(page).locator("img").count() == 0
    with page.expect_download() as started:
        button.click()
    assert started.value.suggested_filename == shown
    assert Path(started.value.path()).read_bytes() == b"not a picture"
    # A name dropped from the page is cleaned the same way before anyone sees it.
    dropped = "<b>bold</b>\u202e.txt"
    _give(page, "drop", dropped, b"x")
    expect(page.locator(".upload.done")).to_contain_text(clean_file_name(dropped))
    terminal.expect(re.escape(f"Webby shared {clean_file_name(dropped)}"))
    assert page.evaluate("window.__pwned") is None


def test_a_file_over_the_size_limit_is_refused_with_the_reason(
    browser: Browser,
    contexts: list[BrowserContext],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARLEY_MAX_FILE_BYTES", "100000")
    server = ServerProcess(tmp_path / "server")
    monkeypatch.undo()
    try:
        page = logged_in(browser, contexts, Violations(), server.url, "Webby")
        _give(page, "drop", "big.bin", os.urandom(100_001))
        expect(page.locator(".upload.error")).to_contain_text("Files are at most")
        _give(page, "drop", "fits.bin", os.urandom(100_000))
        expect(page.locator(".upload", has_text="fits.bin").locator(".upload-state")).to_have_text(
            "Sent"
        )
    finally:
        server.stop()


def test_the_session_cookie_is_out_of_scripts_reach_and_keeps_the_login(
    browser: Browser, contexts: list[BrowserContext], server: ServerProcess
) -> None:
    page = logged_in(browser, contexts, Violations(), server.url, "Alice", PASSWORD, create=True)
    assert page.evaluate("document.cookie") == ""
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "__Host-parley-session"
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    # A reload logs in again from the cookie, with no password typed.
    page.reload()
    expect(page.get_by_role("status")).to_have_text("Connected")
    expect(page.locator(".me")).to_have_text("Alice")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Nickname")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Nickname")).to_be_visible()
    # The password logs in again; a wrong one says why not.
    page.get_by_label("Nickname").fill("alice")
    page.get_by_label(re.compile("^Password")).fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("password")
    log_in(page, "alice", PASSWORD)
    expect(page.locator(".me")).to_have_text("Alice")


def test_a_guest_registers_in_the_browser_and_stays_logged_in(
    browser: Browser, contexts: list[BrowserContext], server: ServerProcess
) -> None:
    page = logged_in(browser, contexts, Violations(), server.url, "Guesty")
    box = page.get_by_role("textbox", name=re.compile("^Message to"))
    box.fill(f"/register {PASSWORD}")
    box.press("Enter")
    expect(the_log(page)).to_contain_text("Guesty is now an account")
    assert page.evaluate("document.cookie") == ""
    page.reload()
    expect(page.get_by_role("status")).to_have_text("Connected")
    expect(page.locator(".me")).to_have_text("Guesty")


def test_password_guesses_on_the_tls_port_throttle_the_browsers_login(
    browser: Browser, contexts: list[BrowserContext], server: ServerProcess
) -> None:
    owner = TlsUser(server.port, "Alice")
    assert owner.request("register", password=PASSWORD)["type"] == "ok"
    owner.close()

    def guess(number: int) -> str:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_SECONDS)
        with insecure_context().wrap_socket(raw) as sock, sock.makefile("rb") as replies:
            hello = {"type": "hello", "id": 1, "versions": [1]}
            nick = {"type": "nick", "id": 2, "nick": "Alice", "password": f"guess {number}"}
            sock.sendall(json.dumps(hello).encode() + b"\n" + json.dumps(nick).encode() + b"\n")
            while (reply := json.loads(replies.readline())).get("id") != 2:
                pass
        return str(reply.get("code") or reply["type"])

    # The form is filled first, so the click follows the guesses while their wait runs.
    page = open_page(browser, contexts, Violations(), server.url)
    page.get_by_label("Nickname").fill("Alice")
    page.get_by_label(re.compile("^Password")).fill(PASSWORD)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(guess, range(16)))
    assert set(outcomes) == {"auth-failed", "too-many-attempts"}, outcomes
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")
    assert page.context.cookies() == []


class _OtherSite(http.server.BaseHTTPRequestHandler):
    """Another site: one page, served from this machine."""

    def do_GET(self) -> None:
        body = b"<!doctype html><p>another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


def test_another_sites_page_can_neither_log_in_nor_upload(
    browser: Browser, contexts: list[BrowserContext], server: ServerProcess
) -> None:
    owner = TlsUser(server.port, "Alice")
    assert owner.request("register", password=PASSWORD)["type"] == "ok"
    data = b"planted by another site"
    slot = owner.request(
        "share",
        to="#general",
        name="x.txt",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    assert slot["type"] == "upload", slot
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        context = browser.new_context(ignore_https_errors=True)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{site.server_address[1]}/")
        # The requests leave the browser (no-cors: the page may not read the answers).
        sent = page.evaluate(
            """async ([base, token, password, data]) => {
                const opts = { mode: "no-cors", credentials: "include" };
                const body = JSON.stringify({ nick: "Alice", password });
                await fetch(base + "/login", { ...opts, method: "POST", body });
                await fetch(base + "/files/" + token, { ...opts, method: "POST", body: data });
                return "sent";
            }""",
            [server.url, slot["token"], PASSWORD, data.decode()],
        )
        assert sent == "sent"
        server.expect(r"Refused a POST to /login from 127\.0\.0\.1: Origin 'http://127\.0\.0\.1:")
        server.expect(r"Refused an upload from 127\.0\.0\.1: Origin 'http://127\.0\.0\.1:")
        assert context.cookies() == []
    finally:
        site.shutdown()
        site.server_close()
    # The upload token was not used: the server's own page (or a program) still can.
    own = open_page(browser, contexts, Violations(), server.url)
    put = own.request.put(f"{server.url}/files/{slot['token']}", data=data)
    assert put.status == 200, put.text()
    owner.close()


def test_an_upload_cut_short_goes_on_from_where_it_stopped_when_dropped_again(
    browser: Browser, contexts: list[BrowserContext], server: ServerProcess, tmp_path: Path
) -> None:
    data = os.urandom(900_000)
    bob = TlsUser(server.port, "Bob")  # in #general when the file is shared: may fetch it
    alice = TlsUser(server.port, "Alice")
    assert alice.request("register", password=PASSWORD)["type"] == "ok"
    slot = alice.request(
        "share",
        to="#general",
        name="big.bin",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    assert slot["type"] == "upload", slot
    # The first 300,000 bytes over the file port, then the connection is lost.
    raw = socket.create_connection(("127.0.0.1", slot["port"]), timeout=TIMEOUT_SECONDS)
    with insecure_context().wrap_socket(raw) as sock, sock.makefile("rb") as lines:
        sock.sendall(json.dumps({"type": "start", "token": slot["token"]}).encode() + b"\n")
        assert json.loads(lines.readline())["type"] == "ready"
        sock.sendall(data[:300_000])
        partial = tmp_path / "server" / "data" / "parley" / "files" / "partial" / slot["file_id"]
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while not (partial.exists() and partial.stat().st_size == 300_000):
            assert time.monotonic() < deadline, "the bytes sent never reached the disk"
            time.sleep(0.05)
    alice.request("bye")
    alice.close()
    page = logged_in(browser, contexts, Violations(), server.url, "Alice", PASSWORD)
    _give(page, "drop", "big.bin", data)
    expect(page.locator(".upload", has_text="big.bin").locator(".upload-state")).to_have_text(
        "Sent"
    )
    notice = bob.event("message", sender="Alice")
    assert json.loads(notice["text"][len("/file ") :])["id"] == slot["file_id"]  # the same upload
    ticket = bob.request("get", file_id=slot["file_id"])
    got = page.request.get(f"{server.url}/files/{ticket['token']}")
    assert got.body() == data
    bob.close()
