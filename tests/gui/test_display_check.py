"""What ``parley gui`` says before Qt starts when the machine cannot show its window."""

from __future__ import annotations

import os
import subprocess
import sys

from xvfb_support import ROOT

from parley.gui import display


def _found(name: str) -> str | None:
    return f"lib{name}.so"


def test_a_display_with_every_library_is_fine() -> None:
    assert display.problem({"DISPLAY": ":0"}, "linux", _found) is None
    assert display.problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux", _found) is None
    assert display.problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", _found) is None
    assert display.problem({}, "darwin", _found) is None


def test_no_display_says_so() -> None:
    said = display.problem({}, "linux", _found)
    assert said is not None and "DISPLAY is not set" in said and "\n" not in said
    # Asked for X11 explicitly, a Wayland session does not count.
    forced = {"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}
    assert display.problem(forced, "linux", _found) is not None


def test_missing_x11_libraries_are_named_with_their_packages() -> None:
    def stock_debian(name: str) -> str | None:
        return None if name in ("xcb-icccm", "xcb-keysyms") else f"lib{name}.so"

    said = display.problem({"DISPLAY": ":0"}, "linux", stock_debian)
    assert said is not None and "\n" not in said
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1" in said


def test_a_port_out_of_range_is_refused_in_one_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "parley", "gui", "--port", "70000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "parley gui: --port 70000 is not a port: give 1 to 65535.\n"
