"""What the desktop app needs from the machine before Qt starts: a display, and on X11 the
system libraries Qt's xcb platform loads. Qt aborts the process (exit 134, a core dump) when
either is missing; asked first, the user gets one line that says what to do instead.
"""

from __future__ import annotations

import ctypes.util
import sys
from collections.abc import Callable, Mapping

# The libraries Qt 6's xcb platform plugin opens that a minimal Debian or Ubuntu system lacks,
# with the package that provides each (the plugin names the first missing one only in a debug
# message, then aborts).
XCB_LIBRARIES = (
    ("xcb-cursor", "libxcb-cursor0"),
    ("xcb-icccm", "libxcb-icccm4"),
    ("xcb-keysyms", "libxcb-keysyms1"),
    ("xcb-image", "libxcb-image0"),
    ("xcb-render-util", "libxcb-render-util0"),
    ("xcb-randr", "libxcb-randr0"),
    ("xcb-shape", "libxcb-shape0"),
    ("xcb-xkb", "libxcb-xkb1"),
    ("xkbcommon-x11", "libxkbcommon-x11-0"),
)


def problem(
    environ: Mapping[str, str],
    platform: str = sys.platform,
    find_library: Callable[[str], str | None] = ctypes.util.find_library,
) -> str | None:
    """Why the window cannot open here, as one line for the user; None when it can."""
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if not platform.startswith("linux") or (chosen and not chosen.startswith("xcb")):
        return None  # macOS, Windows, Wayland or offscreen: Qt brings or finds what it needs
    if not environ.get("DISPLAY"):
        if environ.get("WAYLAND_DISPLAY") and not chosen:
            return None
        return (
            "parley gui: no display to open the window on (DISPLAY is not set): run it in a "
            "desktop session, or under Xvfb (`xvfb-run parley gui`)."
        )
    missing = [package for name, package in XCB_LIBRARIES if find_library(name) is None]
    if missing:
        return (
            f"parley gui: Qt's X11 support needs system packages that are missing: "
            f"{' '.join(missing)} (on Debian or Ubuntu: apt-get install {' '.join(missing)})."
        )
    return None
