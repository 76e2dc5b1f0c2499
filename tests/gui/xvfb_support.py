"""A real X display for the desktop app: an Xvfb server, the ``parley gui`` process on it, and
real key presses and mouse clicks sent with xdotool (XTEST events, as a keyboard and a mouse
make them: not Qt events posted from inside the process).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Xvfb:
    """A virtual X server on a display number it picks itself (``-displayfd``), so parallel
    runs never collide.
    """

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        read, write = os.pipe()
        self.process = subprocess.Popen(
            [
                "Xvfb",
                "-displayfd",
                str(write),
                "-screen",
                "0",
                f"{width}x{height}x24",
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as told:
            number = told.readline().strip()
        assert number.isdigit(), "Xvfb did not start (is the xvfb package installed?)"
        self.display = f":{number}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Desktop:
    """What a user does at the display: find a window, type, press keys, click."""

    def __init__(self, display: str) -> None:
        self.env = {**os.environ, "DISPLAY": display}

    def _xdotool(self, *args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=20
        )
        return done.stdout

    def windows(self, title: str) -> list[str]:
        """The visible windows whose title matches the regular expression ``title``."""
        return self._xdotool("search", "--onlyvisible", "--name", title).split()

    def wait_window(self, title: str, seconds: float = 20.0) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = self.windows(title)
            if found:
                self._xdotool("windowfocus", "--sync", found[0])
                time.sleep(0.3)  # the window maps its widgets and takes the focus
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no window titled {title!r} appeared within {seconds:.0f}s")

    def wait_gone(self, window: str, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            visible = self._xdotool("search", "--onlyvisible", "--name", ".").split()
            if window not in visible:
                return
            time.sleep(0.1)
        raise AssertionError(f"window {window} is still open after {seconds:.0f}s")

    def size(self, window: str) -> tuple[int, int]:
        shape = self._xdotool("getwindowgeometry", window)
        match = re.search(r"Geometry: (\d+)x(\d+)", shape)
        assert match, shape
        return int(match.group(1)), int(match.group(2))

    def type(self, text: str) -> None:
        self._xdotool("type", "--delay", "20", text)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self._xdotool("key", "--delay", "40", key)

    def click(self, window: str, x: int, y: int) -> None:
        """A left click at (x, y) inside ``window``; negative values count from the right or
        bottom edge.
        """
        width, height = self.size(window)
        x, y = x if x >= 0 else width + x, y if y >= 0 else height + y
        self._xdotool("mousemove", "--window", window, str(x), str(y))
        self._xdotool("click", "1")


def start_gui(display: str, home: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``parley gui`` on ``display`` with its own configuration folders, on the xcb platform."""
    env = {
        **os.environ,
        "DISPLAY": display,
        "QT_QPA_PLATFORM": "xcb",
        "PYTHONPATH": str(ROOT / "src"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "parley", "gui", *args], env=env, stdout=out, stderr=out
        )
