"""Helpers for the desktop app's tests: a real server process, other users on threads of
their own, and waiting on the Qt loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from parley.client.core import ChatClient, Disconnected
from parley.client.settings import ClientSettings
from parley.gui import app as gui_app
from parley.gui.main_window import MainWindow
from parley.paths import default_config_dir
from parley.protocol.messages import Message

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class ServerProcess:
    """``parley server`` in a process of its own, restartable on the same port."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = 0
        # More lines for the settings file.
        self.settings = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = self.env()
        # Any free file port: a restart on the same chat port must not need port + 1 free too.
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.toml"
        config.write_text("files_port = 0\n" + self.settings, encoding="utf-8")
        command = [
            *(sys.executable, "-m", "parley", "server", "--port", str(self.port)),
            *("--config", str(config)),
        ]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        # Log lines (warnings while starting) may come first.
        seen = []
        for line in self.process.stdout:
            seen.append(line)
            match = re.search(r"Server is running on .*:(\d+)\.\.\.", line)
            if match:
                self.port = int(match.group(1))
                return
        raise AssertionError(f"the server did not start: {seen}")

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "data"),
        }

    def admin(self, *args: str) -> None:
        """``parley admin ARGS`` on this server's data, as its operator would run it."""
        done = subprocess.run(
            [sys.executable, "-m", "parley", "admin", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    def kill(self) -> None:
        """SIGKILL: the server stops at once, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(15)
            if self.process.stdout is not None:
                self.process.stdout.close()


class Peer:
    """Another user: a client core on an event loop in a thread of its own."""

    def __init__(self, port: int, nick: str, password: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.messages: list[Message] = []
        self.client: ChatClient = self.call(self._open(port, nick, password))

    async def _open(self, port: int, nick: str, password: str | None) -> ChatClient:
        client = await ChatClient.connect("127.0.0.1", port, pins=None)
        await client.login(nick, password=password)
        self.loop.create_task(self._collect(client))
        return client

    async def _collect(self, client: ChatClient) -> None:
        while True:
            event = await client.next_event()
            if isinstance(event, Message):
                self.messages.append(event)
            elif isinstance(event, Disconnected):
                return

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def close(self) -> None:
        async def close() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.client.close(), 5.0)

        self.call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def wait_until(
    loop: asyncio.AbstractEventLoop, check: Callable[[], bool], what: str, seconds: float = 15.0
) -> None:
    """Run the Qt and asyncio loop until ``check()`` holds; fail after ``seconds``."""

    async def poll() -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return True
            await asyncio.sleep(0.05)
        return check()

    assert loop.run_until_complete(poll()), f"never {what}"


def open_window(
    loop: asyncio.AbstractEventLoop,
    server: ServerProcess,
    nick: str,
    monkeypatch: pytest.MonkeyPatch,
    settings: ClientSettings | None = None,
) -> tuple[MainWindow, list[str]]:
    """Sign in as ``nick``, accepting the certificate; the window and what the user was
    asked to trust.
    """
    asked: list[str] = []

    async def trust(parent: object, client: object) -> bool:
        asked.append(client.identity.fingerprint)  # type: ignore[attr-defined]
        return True

    monkeypatch.setattr(gui_app, "ask_to_trust", trust)
    session = gui_app.Session("127.0.0.1", server.port, default_config_dir())
    opened = loop.run_until_complete(
        gui_app.open_window(session, nick, "", settings or ClientSettings(), QWidget())
    )
    assert isinstance(opened, MainWindow), opened
    opened.show()
    return opened, asked


def close_window(loop: asyncio.AbstractEventLoop, window: MainWindow) -> None:
    window.close()
    loop.run_until_complete(window.leave())


def type_line(qtbot: object, window: MainWindow, text: str) -> None:
    window.input.setText(text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)  # type: ignore[attr-defined]
