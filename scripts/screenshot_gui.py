"""Render the desktop app's main window, light and dark, to docs/screenshots/gui-*.png.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshot_gui.py

Starts a server in a temporary folder and a few scripted users, signs in as Alice (accepting
the new certificate), and grabs the window once the conversation has filled it.
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
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HOME = Path(tempfile.mkdtemp(prefix="parley-gui-shot-"))
os.environ["XDG_CONFIG_HOME"] = str(HOME / "config")
os.environ["XDG_DATA_HOME"] = str(HOME / "data")

import qasync  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from parley.client.core import ChatClient  # noqa: E402
from parley.client.settings import ClientSettings  # noqa: E402
from parley.client.transfer import upload  # noqa: E402
from parley.gui import app as gui_app  # noqa: E402
from parley.gui.main_window import MainWindow  # noqa: E402
from parley.paths import default_config_dir  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


async def user(port: int, nick: str) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", port, pins=None)
    await client.login(nick)
    return client


async def scene(port: int) -> tuple[MainWindow, list[ChatClient]]:
    bob, carol, dave = [await user(port, n) for n in ("Bob", "Carol", "Dave")]
    for client in (bob, carol, dave):
        await client.join("#dev")
    await bob.topic("#dev", "Release 0.2 on Friday · reviews before noon")
    await carol.send("#dev", "I pushed the reconnect fix, could someone review it?")
    await bob.send("#dev", "On it after lunch. Notes: https://example.org/parley/review")
    gui_app.ask_to_trust = lambda parent, client: True
    session = gui_app.Session("127.0.0.1", port, default_config_dir())
    window = await gui_app.open_window(session, "Alice", "", ClientSettings(), None)
    assert isinstance(window, MainWindow)
    window.resize(1100, 620)
    window.show()
    window.input.setText("/join #dev")
    window.input.returnPressed.emit()
    await asyncio.sleep(0.6)
    await dave.send("#dev", "alice: welcome! the build is green again")
    await carol.send("#dev", "/me hands Alice the release checklist")
    notes = HOME / "release-notes.pdf"
    notes.write_bytes(b"%PDF" + bytes(240_000))
    await upload(carol, notes, "#dev")
    await carol.send("#general", "lunch at 12:30?")
    await bob.send("Alice", "can you take the 3pm call for me?")
    window.input.setText("thanks! reading the diff now")
    window.input.returnPressed.emit()
    await asyncio.sleep(0.8)
    window.input.setText("Carol: looks good, one comment on the backoff")
    await asyncio.sleep(0.3)
    return window, [bob, carol, dave]


def start_server(data: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(
        [sys.executable, "-m", "parley", "server", "--port", "0", "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, int(re.findall(r":(\d+)\.\.\.", server.stdout.readline())[0])


def main() -> None:
    app = QApplication(sys.argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    OUT.mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        # A server of its own for each picture: the same scene from the start.
        server, port = start_server(HOME / f"server-{theme}")
        try:
            gui_app.apply_theme(app, theme)
            window, others = loop.run_until_complete(scene(port))
            window.grab().save(str(OUT / f"gui-{theme}.png"))
            print(f"Wrote {OUT / f'gui-{theme}.png'}")
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
