"""The web client's chat features in a real Chromium against the real server process: unread
badges and notifications, read markers, older history on scrolling up, the outbox across a
server restart, completion and keyboard navigation, hostile text, and the phone layout.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import Error as PlaywrightError
from web_lab import (
    HoldingProxy,
    ServerProcess,
    TlsUser,
    Violations,
    conversation_button,
    free_port,
    log_in,
    logged_in,
    new_context,
    say,
    the_log,
)

PASSWORD = "correct horse battery"

# Every Notification the page makes, recorded before it is shown.
CAPTURE_NOTIFICATIONS = """
window.__notifications = [];
window.__shown = [];
const Shown = window.Notification;
window.Notification = class extends Shown {
  constructor(title, options) {
    const { body, tag } = options || {};
    window.__notifications.push({ title, body, tag });
    super(title, options);
    window.__shown.push(this);
  }
};
"""


def badge(page: Page, conversation: str) -> Any:
    entry = page.get_by_role("button", name=conversation, exact=True)
    return page.get_by_role("navigation").locator("li", has=entry).locator(".badge")


def compose(page: Page) -> Any:
    return page.get_by_role("textbox", name=re.compile("^Message to"))


def message_texts(page: Page) -> list[str]:
    texts: list[str] = the_log(page).locator("li.message .text").all_inner_texts()
    return texts


def test_unread_badges_and_a_notification_on_a_mention_in_a_background_room(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    tom = TlsUser(server.port, "Tom")
    context = new_context(browser, contexts)
    context.grant_permissions(["notifications"], origin=server.url)
    context.add_init_script(CAPTURE_NOTIFICATIONS)
    page = violations.watch(context.new_page())
    page.goto(server.url + "/")
    log_in(page, "Ann")
    say(page, "/join #quiet")
    expect(page.get_by_role("heading", name=re.compile("^#quiet"))).to_be_visible()

    # Not a mention, tab in view: counted, no notification.
    tom.request("send", to="#general", text="nothing for anyone", msg_id="u1")
    expect(badge(page, "#general")).to_contain_text("1 unread")
    expect(page).to_have_title("(1) Parley")
    # A mention in a room in the background: counted as one, and a notification.
    tom.request("send", to="#general", text="hey ann, look at this", msg_id="u2")
    expect(badge(page, "#general")).to_contain_text("2 unread, 1 for you")
    expect(page).to_have_title("(2!) Parley")
    icon = page.locator("link[rel='icon']").get_attribute("href")
    assert icon is not None and icon.startswith("data:image/svg+xml,")
    notifications = page.evaluate("window.__notifications")
    assert notifications == [
        {"title": "Tom in #general", "body": "hey ann, look at this", "tag": "#general"}
    ], notifications
    # The conversation being read counts nothing.
    tom.request("join", room="#quiet")
    tom.request("send", to="#quiet", text="ann, here too", msg_id="u3")
    expect(the_log(page)).to_contain_text("Tom: ann, here too")
    expect(badge(page, "#quiet")).to_have_count(0)
    assert len(page.evaluate("window.__notifications")) == 1

    # Clicking the notification opens the conversation, which reads it: the badge and the
    # title's count go.
    page.evaluate("window.__shown[0].onclick()")
    expect(page.get_by_role("heading", name=re.compile("^#general"))).to_be_visible()
    expect(badge(page, "#general")).to_have_count(0)
    expect(page).to_have_title("Parley")
    tom.close()
    assert violations.all() == []


def test_an_accounts_unread_counts_come_from_its_read_markers(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    ann = TlsUser(server.port, "Ann")
    assert ann.request("register", password=PASSWORD)["type"] == "ok"
    ann.request("join", room="#news")
    ann.request("bye")
    ann.close()
    tom = TlsUser(server.port, "Tom")
    tom.request("join", room="#news")
    for number in range(3):
        tom.request("send", to="#news", text=f"news {number} for ann", msg_id=f"n{number}")

    page = logged_in(browser, contexts, violations, server.url, "Ann", PASSWORD)
    expect(badge(page, "#news")).to_contain_text("3 unread, 3 for you")
    conversation_button(page, "#news").click()
    expect(badge(page, "#news")).to_have_count(0)
    expect(the_log(page)).to_contain_text("Tom: news 2 for ann")

    # The browser moved the account's marker on the server (requests take effect in order).
    say(page, "/unread")
    expect(the_log(page)).to_contain_text("Nothing unread.")
    # A reload logs in again with the browser's session, and the counts come from the marker.
    page.reload()
    expect(page.get_by_role("status")).to_have_text("Connected")
    expect(conversation_button(page, "#news")).to_be_visible()
    expect(badge(page, "#news")).to_have_count(0)
    tom.close()
    assert violations.all() == []


def test_scrolling_up_loads_older_history_once_and_keeps_the_place(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    # 120 messages, from five users so that none is slowed down by flood control.
    writers = [TlsUser(server.port, f"Writer{n}") for n in range(5)]
    number = 0
    for writer in writers:
        writer.request("join", room="#long")
        for _ in range(24):
            number += 1
            reply = writer.request("send", to="#long", text=f"line {number:03}", msg_id=str(number))
            assert reply["type"] == "sent", reply
    page = logged_in(
        browser, contexts, violations, server.url, "Ann", viewport={"width": 1000, "height": 600}
    )
    say(page, "/join #long")
    log = the_log(page)
    expect(log).to_contain_text("line 120")
    expect(log).to_contain_text("line 071")
    assert "line 070" not in log.inner_text()

    def top_of(text: str) -> float:
        offset: float = page.evaluate(
            """text => {
                const log = document.querySelector("[role=log]");
                const line = [...log.querySelectorAll("li.message")]
                    .find(li => li.textContent.includes(text));
                return line.getBoundingClientRect().top - log.getBoundingClientRect().top;
            }""",
            text,
        )
        return offset

    log.evaluate("log => { log.scrollTop = 0; }")
    before = top_of("line 071")
    expect(log).to_contain_text("line 021")
    # The line that was at the top stays where it was: older lines came in above it.
    assert abs(top_of("line 071") - before) <= 2
    log.evaluate("log => { log.scrollTop = 0; }")
    expect(log).to_contain_text("line 001")
    expect(log).to_contain_text("The beginning of #long.")
    assert message_texts(page) == [f"line {n:03}" for n in range(1, 121)]
    for writer in writers:
        writer.close()
    assert violations.all() == []


def test_messages_typed_offline_arrive_once_in_order_after_a_restart(
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
        # A private conversation with a guest, who will be gone after the restart.
        gus = TlsUser(first.port, "Gus")
        gus.request("send", to="Ann", text="from a guest", msg_id="g1")
        expect(badge(page, "Gus")).to_contain_text("1 unread")
        gus.close()
    finally:
        first.stop()
    status = page.get_by_role("status")
    expect(status).to_contain_text("Connection lost; trying again")
    # Typed and sent while the server is down: kept, shown as waiting, in order.
    say(page, "typed offline, first")
    say(page, "typed offline, second")
    expect(page.get_by_role("note")).to_have_text("2 messages waiting to be sent")
    expect(the_log(page).locator("li.pending")).to_have_count(2)
    second = ServerProcess(tmp_path / "server", port=port, web_port=web_port)
    try:
        tom = TlsUser(second.port, "Tom")
        tom.request("join", room="#kept")
        expect(status).to_have_text("Connected", timeout=30_000)
        expect(the_log(page).locator("li.pending")).to_have_count(0)
        expect(page.get_by_role("note")).to_have_count(0)
        say(page, "after the restart")
        tom.event("message", sender="Ann", text="after the restart")
        # The record has each once, in the order typed, between what came before and after.
        history = tom.request("history", to="#kept", limit=50)["messages"]
        texts = [message["text"] for message in history if message["sender"] == "Ann"]
        assert texts == [
            "before the restart",
            "typed offline, first",
            "typed offline, second",
            "after the restart",
        ], texts
        assert [m["seq"] for m in history] == sorted(m["seq"] for m in history)
        expect(the_log(page).get_by_text("Ann: typed offline, first")).to_have_count(1)
        assert message_texts(page) == texts
        # The conversation that could not be caught up says so; the others were.
        conversation_button(page, "Gus").click()
        expect(the_log(page)).to_contain_text("Could not fetch the messages of Gus")
        expect(the_log(page)).to_contain_text("Gus: from a guest")
        tom.close()
    finally:
        second.stop()
    assert violations.all() == []


def test_messages_typed_offline_are_sent_once_after_a_reload(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    tmp_path: Path,
) -> None:
    port, web_port = free_port(), free_port()
    first = ServerProcess(tmp_path / "server", port=port, web_port=web_port)
    try:
        page = logged_in(browser, contexts, violations, first.url, "Ann", PASSWORD, create=True)
        say(page, "/join #kept")
        expect(page.get_by_role("heading", name=re.compile("^#kept"))).to_be_visible()
        say(page, "before the restart")
        expect(the_log(page)).to_contain_text("Ann: before the restart")
    finally:
        first.stop()
    expect(page.get_by_role("status")).to_contain_text("Connection lost; trying again")
    say(page, "typed offline, first")
    say(page, "typed offline, second")
    expect(page.get_by_role("note")).to_have_text("2 messages waiting to be sent")
    # Reloaded while the server is down: the page is gone, what it had to send is not.
    with contextlib.suppress(PlaywrightError):
        page.reload()
    second = ServerProcess(tmp_path / "server", port=port, web_port=web_port)
    try:
        tom = TlsUser(second.port, "Tom")
        tom.request("join", room="#kept")
        page.goto(second.url + "/")  # the cookie logs Ann in again
        expect(page.get_by_role("status")).to_have_text("Connected")
        expect(the_log(page).locator("li.pending")).to_have_count(0)
        expect(page.get_by_role("note")).to_have_count(0)
        tom.event("message", sender="Ann", text="typed offline, second")
        history = tom.request("history", to="#kept", limit=50)["messages"]
        texts = [message["text"] for message in history if message["sender"] == "Ann"]
        assert texts == ["before the restart", "typed offline, first", "typed offline, second"]
        expect(the_log(page).get_by_text("Ann: typed offline, first")).to_have_count(1)
        assert page.evaluate("Object.keys(sessionStorage)") == []
        # A send that reached the server before the page went (its reply lost) and is sent
        # again after a reload, with its msg_id, is stored once; a kept outbox that is not
        # one is ignored.
        sent = next(m for m in history if m["text"] == "typed offline, first")
        again = {"msgId": sent["msg_id"], "to": "#kept", "text": "typed offline, first"}
        for kept in (json.dumps([again, {"to": 5}]), "{not json"):
            page.evaluate("kept => sessionStorage.setItem('parley.outbox.ann', kept)", kept)
            page.reload()
            expect(page.get_by_role("status")).to_have_text("Connected")
            expect(the_log(page).locator("li.pending")).to_have_count(0)
        conversation_button(page, "#kept").click()
        say(page, "after the reloads")
        tom.event("message", to="#kept", sender="Ann", text="after the reloads")
        history = tom.request("history", to="#kept", limit=50)["messages"]
        texts = [message["text"] for message in history if message["sender"] == "Ann"]
        assert texts == [
            "before the restart",
            "typed offline, first",
            "typed offline, second",
            "after the reloads",
        ], texts
        tom.close()
    finally:
        second.stop()
    assert violations.all() == []


def test_completion_and_moving_between_conversations_by_keyboard(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    bart = TlsUser(server.port, "Bartholomew")
    page = logged_in(browser, contexts, violations, server.url, "Ann")
    members = page.get_by_role("complementary", name="Members")
    expect(members.get_by_role("button", name="Bartholomew")).to_be_visible()
    box = compose(page)
    box.press_sequentially("Bar")
    box.press("Tab")
    expect(box).to_have_value("Bartholomew: ")
    box.press_sequentially("thanks @ba")
    box.press("Tab")
    expect(box).to_have_value("Bartholomew: thanks @Bartholomew ")
    box.press("Enter")
    assert bart.event("message", sender="Ann")["text"] == "Bartholomew: thanks @Bartholomew"
    # Commands: the first match, then the next on each Tab.
    box.press_sequentially("/wh")
    box.press("Tab")
    expect(box).to_have_value("/who ")
    box.press("Tab")
    expect(box).to_have_value("/whois ")
    box.fill("")
    # Nothing to complete: Tab leaves the box, as everywhere.
    box.press("Tab")
    expect(box).not_to_be_focused()

    say(page, "/join #second")
    expect(page.get_by_role("heading", name=re.compile("^#second"))).to_be_visible()
    page.keyboard.press("Alt+ArrowUp")
    expect(page.get_by_role("heading", name=re.compile("^#general"))).to_be_visible()
    expect(box).to_be_focused()
    page.keyboard.press("Alt+ArrowDown")
    expect(page.get_by_role("heading", name=re.compile("^#second"))).to_be_visible()
    # With Shift: the next conversation with unread messages.
    bart.request("send", to="Ann", text="a private word", msg_id="p1")
    expect(badge(page, "Bartholomew")).to_contain_text("1 unread")
    page.keyboard.press("Alt+Shift+ArrowDown")
    expect(page.get_by_role("heading", name=re.compile("^Bartholomew"))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("^Bartholomew"))).to_contain_text("online")
    expect(the_log(page)).to_contain_text("Bartholomew: a private word")
    bart.close()
    assert violations.all() == []


def test_hostile_links_scripts_and_bidi_show_as_text(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    tom = TlsUser(server.port, "Tom")
    page = logged_in(browser, contexts, violations, server.url, "Ann")
    hostile = [
        "javascript:window.__pwned=1",
        '<a href="javascript:window.__pwned=1">click</a>',
        "</script><script>window.__pwned=1</script>",
        '<img src=x onerror="window.__pwned=1">',
        "see https://example.org/x?a=1&b=<b>2</b>, then javascript:void(0)",
        "\u202egnp.exe",
    ]
    for number, text in enumerate(hostile):
        reply = tom.request("send", to="#general", text=text, msg_id=f"h{number}")
        assert reply["type"] == "sent", reply
    log = the_log(page)
    expect(log.locator("li.message")).to_have_count(len(hostile))
    shown = message_texts(page)
    # As typed, character for character; only the right-to-left override is made visible.
    assert shown[:5] == hostile[:5]
    assert shown[5] == "\ufffdgnp.exe"
    # One link, made by the page: to the http address, its text the address up to the "<".
    links = log.get_by_role("link")
    expect(links).to_have_count(1)
    assert links.get_attribute("href") == "https://example.org/x?a=1&b="
    assert links.get_attribute("rel") == "noopener noreferrer nofollow"
    assert page.locator("img, script:not([src]), iframe, b").count() == 0
    assert page.evaluate("window.__pwned") is None
    tom.close()
    assert violations.all() == []


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_phone_layout_fits_and_its_drawer_works(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
    tmp_path: Path,
) -> None:
    tom = TlsUser(server.port, "Tom")
    page = logged_in(
        browser,
        contexts,
        violations,
        server.url,
        "Ann",
        viewport={"width": 390, "height": 844},
        device_scale_factor=1,
        color_scheme="dark",
    )
    nav = page.get_by_role("navigation", include_hidden=True)
    expect(nav).to_be_hidden()
    # Long words, a long address and a long topic wrap instead of widening the page.
    tom.request("send", to="#general", text="x" * 300, msg_id="w1")
    tom.request("send", to="#general", text="https://example.org/" + "a" * 200, msg_id="w2")
    expect(the_log(page).get_by_role("link")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot = tmp_path / "phone.png"
    page.screenshot(path=str(shot), full_page=True)
    assert _png_size(shot)[0] == 390
    # Dark, as the system asks; the toggle picks light.
    expect(page.locator("body")).to_have_css("background-color", "rgb(13, 17, 23)")
    page.get_by_role("button", name=re.compile("^Theme")).click()
    expect(page.get_by_role("button", name=re.compile("^Theme"))).to_have_text("Theme: light")
    expect(page.locator("body")).to_have_css("background-color", "rgb(250, 250, 250)")

    # The drawer: opened from the header, it lists the conversations and joins a room.
    menu = page.get_by_role("button", name="Conversations")
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(nav).to_be_visible()
    expect(nav).to_have_css("transform", "none")  # slid in
    box = nav.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.screenshot(path=str(tmp_path / "phone-drawer.png"))
    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    menu.click()
    nav.get_by_label("Join a room").fill("#phone")
    nav.get_by_label("Join a room").press("Enter")
    expect(page.get_by_role("heading", name=re.compile("^#phone"))).to_be_visible()
    expect(nav).to_be_hidden()
    # Members: a panel of their own on a phone.
    members = page.get_by_role("complementary", name="Members", include_hidden=True)
    expect(members).to_be_hidden()
    page.get_by_role("button", name=re.compile(r"^Members \(")).click()
    expect(members.get_by_role("button", name="Ann")).to_be_visible()
    menu.click()
    conversation_button(page, "#general").click()
    expect(page.get_by_role("heading", name=re.compile("^#general"))).to_be_visible()
    expect(nav).to_be_hidden()
    say(page, "from the phone")
    assert tom.event("message", sender="Ann")["text"] == "from the phone"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    tom.close()
    assert violations.all() == []


def test_the_terminal_clients_commands_in_the_browser(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    server: ServerProcess,
) -> None:
    tom = TlsUser(server.port, "Tom")
    bea = TlsUser(server.port, "Bea")
    page = logged_in(browser, contexts, violations, server.url, "Ann")
    log = the_log(page)
    # Moderation, with durations as the terminal client writes them.
    say(page, "/join #mod")
    expect(page.get_by_role("heading", name=re.compile("^#mod"))).to_be_visible()
    tom.request("join", room="#mod")
    say(page, "/ban #mod Tom 30 spam")
    expect(log).to_contain_text("DURATION like 30m")
    say(page, "/ban #mod Tom 30m spamming links")
    expect(log).to_contain_text("Done: ban Tom in #mod.")
    left = tom.event("left", room="#mod", nick="Tom")
    assert (left["reason"], left["message"]) == ("banned", "spamming links")
    assert tom.request("join", room="#mod")["code"] == "banned"
    say(page, "/unban #mod Tom")
    expect(log).to_contain_text("Done: unban Tom in #mod.")
    assert tom.request("join", room="#mod")["type"] == "room"

    # A message nobody can receive is refused where it was typed, and opens no conversation.
    say(page, "/msg nobody are you there?")
    expect(log).to_contain_text("Not sent to nobody (are you there?): No user named nobody")
    expect(conversation_button(page, "nobody")).to_have_count(0)

    # /win N opens the Nth conversation of the list; a wrong N says the range.
    say(page, "/win 3")
    expect(log).to_contain_text("Usage: /win N, with N from 1 to 2")
    say(page, "/win 1")
    expect(page.get_by_role("heading", name=re.compile("^#general"))).to_be_visible()

    # /ignore hides a user's messages in this browser; /unignore shows them again.
    say(page, "/ignore Tom")
    expect(log).to_contain_text("Ignoring Tom")
    tom.request("send", to="#general", text="you cannot see me", msg_id="i1")
    bea.request("send", to="#general", text="but you see me", msg_id="i2")
    expect(log).to_contain_text("Bea: but you see me")
    assert "you cannot see me" not in log.inner_text()
    say(page, "/unignore Tom")
    tom.request("send", to="#general", text="visible again", msg_id="i3")
    expect(log).to_contain_text("Tom: visible again")

    # /away: the header says so, and others are told.
    say(page, "/away lunch")
    expect(page.locator("header .away-mark")).to_have_text("(away)")
    assert tom.request("whois", nick="Ann")["away"] == "lunch"
    say(page, "/away")
    expect(page.locator("header .away-mark")).to_have_count(0)

    # /logout ends the login: the form again.
    say(page, "/logout")
    expect(page.get_by_role("status")).to_have_text("You left.")
    expect(page.get_by_label("Nickname")).to_be_visible()
    tom.close()
    bea.close()
    assert violations.all() == []


def test_after_the_network_drops_it_resumes_without_gap_or_duplicate(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    tmp_path: Path,
) -> None:
    proxy = HoldingProxy()
    server = ServerProcess(tmp_path / "server", settings={"PARLEY_WEB_PUBLIC_URL": proxy.url})
    proxy.upstream_port = server.web_port
    try:
        tom = TlsUser(server.port, "Tom")
        page = logged_in(browser, contexts, violations, proxy.url, "Ann")
        say(page, "before the drop")
        tom.event("message", sender="Ann", text="before the drop")
        proxy.cut_browsers()
        status = page.get_by_role("status")
        expect(status).to_contain_text("Connection lost")
        # Said while the page is away: the server still delivers to Ann's old connection.
        for number in range(3):
            tom.request("send", to="#general", text=f"while away {number}", msg_id=f"a{number}")
        say(page, "typed during the drop")
        # The server still holds the old login, so the name is taken: the page tries again.
        expect(status).to_contain_text("(attempt 3)")
        proxy.release()
        expect(status).to_have_text("Connected", timeout=30_000)
        tom.event("message", sender="Ann", text="typed during the drop")
        expect(the_log(page)).to_contain_text("Ann: typed during the drop")
        assert message_texts(page) == [
            "before the drop",
            "while away 0",
            "while away 1",
            "while away 2",
            "typed during the drop",
        ]
        tom.close()
    finally:
        proxy.close()
        server.stop()
    assert violations.all() == []


def test_leaving_forgets_what_waits_to_be_sent(
    browser: Browser,
    contexts: list[BrowserContext],
    violations: Violations,
    tmp_path: Path,
) -> None:
    port, web_port = free_port(), free_port()
    first = ServerProcess(tmp_path / "server", port=port, web_port=web_port)
    try:
        page = logged_in(browser, contexts, violations, first.url, "Ann")
    finally:
        first.stop()
    expect(page.get_by_role("status")).to_contain_text("Connection lost")
    say(page, "typed by Ann, then she left")
    expect(page.get_by_role("note")).to_have_text("1 message waiting to be sent")
    say(page, "/quit")
    expect(page.get_by_role("status")).to_have_text("You left.")
    second = ServerProcess(tmp_path / "server", port=port, web_port=web_port)
    try:
        tom = TlsUser(second.port, "Tom")
        # Someone else logs in on the same page: nothing of Ann's is sent under their name.
        log_in(page, "Bob")
        say(page, "hello from Bob")
        tom.event("message", sender="Bob", text="hello from Bob")
        history = tom.request("history", to="#general", limit=50)["messages"]
        assert [m["text"] for m in history] == ["hello from Bob"], history
        tom.close()
    finally:
        second.stop()
    assert violations.all() == []
