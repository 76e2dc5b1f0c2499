"""Where Parley keeps its files by default (XDG directories on Linux)."""

from __future__ import annotations

from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    """Server data: certificate, key, and (later) the database."""
    return Path(platformdirs.user_data_dir("parley", appauthor=False))


def default_config_dir() -> Path:
    """Client settings and the pinned server certificates."""
    return Path(platformdirs.user_config_dir("parley", appauthor=False))
