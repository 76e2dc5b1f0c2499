"""Render the web client, light and dark, on a desktop (1280x800) and a phone (390x844), to
docs/screenshots/web-{light,dark}.png and web-phone-{light,dark}.png, in Debian's Chromium.

    make screenshots        (or: .venv/bin/python scripts/screenshot_web.py)

Needs Chromium (apt-get install chromium) and, to make the files small, pngquant (apt-get
install pngquant; without it the pictures are written as Chromium makes them). Starts a server
with its web port on in a temporary folder and a few scripted users on the TLS port (the
server's admin among them); Alice logs in in the browser, and the pictures are taken once the
conversation has filled the page: rooms and a private conversation in the side bar, unread
badges, a mention, emoji, a long wrapped line, a shared file and a message being typed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
HOME = Path(tempfile.mkdtemp(prefix="parley-web-shot-"))

from playwright.async_api import Page, async_playwright, expect  # noqa: E402

from parley.client.core import ChatClient  # noqa: E402
from parley.client.transfer import upload  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = Path("/usr/lib/chromium/chromium")
VIEWS = {"web": (1280, 800), "web-phone": (390, 844)}
LONG = (
    "Before Friday: the reconnect fix needs a second review, the Debian package needs the new "
    "dependencies listed, and the release notes should say that history now comes back after a "
    "reconnect, that files keep their names, and that the web client has a dark theme."
)


async def user(port: int, nick: str, password: str | None = None) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", port, pins=None)
    await client.login(nick, password=password)
    return client


async def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name=re.compile("^Message to"))
    await box.fill(text)
    await box.press("Enter")


async def scene(page: Page, url: str, port: int, admin_password: str) -> list[ChatClient]:
    """The conversation on the page, Alice's, with the others' messages sent from scripts."""
    bob, carol, dave = [await user(port, n) for n in ("Bob", "Carol", "Dave")]
    admin = await user(port, "admin", admin_password)
    for client in (bob, carol, dave, admin):
        await client.join("#dev")
        await client.join("#general")
    await dave.away("at lunch")
    await bob.topic("#dev", "Release 0.2 on Friday · reviews before noon")
    await carol.send("#dev", "I pushed the reconnect fix, could someone review it? 👀")
    await bob.send("#dev", "On it after lunch. Notes: https://example.org/parley/review")
    await page.goto(url + "/")
    await page.get_by_label("Nickname").fill("Alice")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("status")).to_have_text("Connected")
    await say(page, "/join #general")
    await say(page, "/join #dev")
    await expect(page.get_by_role("log")).to_contain_text("could someone review it?")
    await dave.send("#dev", "alice: welcome! the build is green again 🎉")
    await admin.send("#dev", "/me hands Alice the release checklist ✅")
    await carol.send("#dev", LONG)
    notes = HOME / "release-notes.pdf"
    notes.write_bytes(b"%PDF" + bytes(240_000))
    await upload(carol, notes, "#dev")
    await carol.send("#general", "lunch at 12:30? 🍜")
    await bob.send("#general", "count me in")
    await bob.send("Alice", "can you take the 3pm call for me? 🙏")
    await say(page, "thanks! reading the diff now 👍")
    await expect(page.get_by_role("log")).to_contain_text("release-notes.pdf")
    await expect(page.get_by_role("log")).to_contain_text("Alice: thanks!")
    await expect(page.get_by_role("navigation")).to_contain_text("unread")
    await page.get_by_role("textbox", name=re.compile("^Message to")).fill(
        "Carol: looks good, one comment on the backoff"
    )
    return [bob, carol, dave, admin]


def start_server(data: Path) -> tuple[subprocess.Popen[str], int, str, str]:
    """``parley server`` with its web port on: its chat port, web address and admin password."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PARLEY_WEB_PORT": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "parley", "server", "--port", "0", "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port, url, password = 0, "", ""
    for line in server.stdout:
        if found := re.search(r"on 127\.0\.0\.1:(\d+)\.\.\.", line):
            port = int(found.group(1))
        if found := re.search(r"with password (\S+)", line):
            password = found.group(1)
        if found := re.search(r"Web client on (\S+)/ ", line):
            url = found.group(1)
        if port and url and password:
            # The rest of its output read away, so that a full pipe never stalls it.
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, port, url, password
    raise SystemExit(f"the server stopped before it said where it listens (exit {server.wait()})")


def shrink(path: Path) -> None:
    """Fewer colours, the same look: a tenth of the size (pngquant, where installed)."""
    if shutil.which("pngquant") is None:
        return
    subprocess.run(
        ["pngquant", "--force", "--skip-if-larger", "--strip", "--output", str(path), str(path)],
        check=False,
    )


async def shoot() -> None:
    if not CHROMIUM.exists():
        raise SystemExit(f"no {CHROMIUM}: install Debian's Chromium (apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    server, port, url, admin_password = start_server(HOME / "server")
    others: list[ChatClient] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
            )
            context = await browser.new_context(
                ignore_https_errors=True, viewport={"width": 1280, "height": 800}
            )
            context.set_default_timeout(15_000)
            page = await context.new_page()
            others = await scene(page, url, port, admin_password)
            for name, (width, height) in VIEWS.items():
                await page.set_viewport_size({"width": width, "height": height})
                for theme in ("light", "dark"):
                    await page.emulate_media(color_scheme=theme)
                    await page.wait_for_timeout(300)
                    path = OUT / f"{name}-{theme}.png"
                    await page.screenshot(path=str(path))
                    shrink(path)
                    print(f"Wrote {path} ({path.stat().st_size // 1024} KiB)")
            await browser.close()
    finally:
        for other in others:
            await other.close()
        server.terminate()
        server.wait()
        assert server.stdout is not None
        server.stdout.close()
        shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(shoot())
