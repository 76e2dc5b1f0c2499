"""Render the desktop app's main window, light and dark, at 1000x640 and 1400x900, to
docs/screenshots/gui-{light,dark}[-1400].png, on a real X server (Xvfb).

    .venv/bin/python scripts/screenshot_gui.py

Needs Xvfb (the xvfb package) unless DISPLAY is set. Starts a server in a temporary folder
and a few scripted users (the server's admin among them), signs in as Alice (accepting the new
certificate), and grabs the window once the conversation has filled it: rooms and a private
conversation in the sidebar, a mention, emoji, a long wrapped line and a shared file.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
HOME = Path(tempfile.mkdtemp(prefix="parley-gui-shot-"))
os.environ["XDG_CONFIG_HOME"] = str(HOME / "config")
os.environ["XDG_DATA_HOME"] = str(HOME / "data")
os.environ["QT_QPA_PLATFORM"] = "xcb"

import qasync  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from parley.client.core import ChatClient  # noqa: E402
from parley.client.settings import ClientSettings  # noqa: E402
from parley.client.transfer import upload  # noqa: E402
from parley.gui import app as gui_app  # noqa: E402
from parley.gui import theme as themes  # noqa: E402
from parley.gui.main_window import MainWindow  # noqa: E402
from parley.paths import default_config_dir  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SIZES = {"": (1000, 640), "-1400": (1400, 900)}
LONG = (
    "Before Friday: the reconnect fix needs a second review, the Debian package needs the new "
    "xcb dependencies listed, and the release notes should say that history now comes back "
    "after a reconnect, that files keep their names, and that the desktop app has a dark theme."
)


async def user(port: int, nick: str, password: str | None = None) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", port, pins=None)
    await client.login(nick, password=password)
    return client


async def trust(parent: object, client: object) -> bool:
    return True


async def scene(port: int, admin_password: str) -> tuple[MainWindow, list[ChatClient]]:
    bob, carol, dave = [await user(port, n) for n in ("Bob", "Carol", "Dave")]
    admin = await user(port, "admin", admin_password)
    for client in (bob, carol, dave, admin):
        await client.join("#dev")
    await dave.away("at lunch")
    await bob.topic("#dev", "Release 0.2 on Friday · reviews before noon")
    await carol.send("#dev", "I pushed the reconnect fix, could someone review it? 👀")
    await bob.send("#dev", "On it after lunch. Notes: https://example.org/parley/review")
    gui_app.ask_to_trust = trust  # type: ignore[assignment]
    session = gui_app.Session("127.0.0.1", port, default_config_dir())
    window = await gui_app.open_window(session, "Alice", "", ClientSettings(), QWidget())
    assert isinstance(window, MainWindow)
    window.show()
    window.input.setText("/join #dev")
    window.input.returnPressed.emit()
    await asyncio.sleep(0.8)
    await dave.send("#dev", "alice: welcome! the build is green again 🎉")
    await admin.send("#dev", "/me hands Alice the release checklist ✅")
    await carol.send("#dev", LONG)
    notes = HOME / "release-notes.pdf"
    notes.write_bytes(b"%PDF" + bytes(240_000))
    await upload(carol, notes, "#dev")
    await carol.send("#general", "lunch at 12:30? 🍜")
    await bob.send("Alice", "can you take the 3pm call for me? 🙏")
    window.input.setText("thanks! reading the diff now :thumbs_up:")
    window.input.returnPressed.emit()
    await asyncio.sleep(1.5)
    window.input.setText("Carol: looks good, one comment on the backoff")
    return window, [bob, carol, dave, admin]


def start_server(data: Path) -> tuple[subprocess.Popen[str], int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(
        [sys.executable, "-m", "parley", "server", "--port", "0", "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(re.findall(r":(\d+)\.\.\.", server.stdout.readline())[0])
    password = ""
    for _ in range(8):
        found = re.search(r"with password (\S+)", server.stdout.readline())
        if found:
            password = found.group(1)
            break
    return server, port, password


def start_display() -> subprocess.Popen[bytes] | None:
    """An Xvfb of its own unless DISPLAY names one."""
    if os.environ.get("DISPLAY"):
        return None
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
    )
    os.close(write)
    with os.fdopen(read) as told:
        os.environ["DISPLAY"] = ":" + told.readline().strip()
    return xvfb


def main() -> None:
    xvfb = start_display()
    try:
        shoot()
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()


def shoot() -> None:
    app = QApplication(sys.argv)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    OUT.mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        # A server of its own for each theme: the same scene from the start.
        server, port, admin_password = start_server(HOME / f"server-{theme}")
        try:
            themes.apply(app, theme)
            window, others = loop.run_until_complete(scene(port, admin_password))
            for suffix, (width, height) in SIZES.items():
                window.resize(width, height)
                loop.run_until_complete(asyncio.sleep(0.5))
                path = OUT / f"gui-{theme}{suffix}.png"
                window.grab().save(str(path))
                print(f"Wrote {path}")
            window.close()
            loop.run_until_complete(window.leave())
            for other in others:
                loop.run_until_complete(other.close())
        finally:
            server.terminate()
            server.wait()
            assert server.stdout is not None
            server.stdout.close()
    loop.close()


if __name__ == "__main__":
    main()
