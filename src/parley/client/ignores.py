"""The nicknames a user chose not to see (``/ignore``): kept on this computer only, in one JSON
file in the data dir, replaced atomically so a crash never leaves half a file.

Ignoring is the client's business: the server still delivers, and the user can change their
mind and see the conversation again with /history.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from parley.paths import default_data_dir
from parley.protocol.names import nick_key

FILE_NAME = "ignored.json"
# More than anyone ignores; keeps a hand-edited or hostile file from growing without bound.
MAX_IGNORED = 1000


def default_path() -> Path:
    return default_data_dir() / FILE_NAME


class IgnoreList:
    """Nicknames by key ('Bob' and 'BOB' are one), with the spelling the user typed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._nicks: dict[str, str] = {}
        if path is not None:
            self._nicks = _read(path)

    def __contains__(self, nick: str) -> bool:
        return bool(self._nicks) and nick_key(nick) in self._nicks

    def names(self) -> list[str]:
        return sorted(self._nicks.values(), key=str.casefold)

    def add(self, nick: str) -> bool:
        """Ignore ``nick``; False if it already was. Raises OSError when it cannot be saved
        (then nothing changed) and ValueError when the list is full.
        """
        key = nick_key(nick)
        if key in self._nicks:
            return False
        if len(self._nicks) >= MAX_IGNORED:
            raise ValueError(f"at most {MAX_IGNORED} nicknames can be ignored")
        self._save({**self._nicks, key: nick})
        return True

    def remove(self, nick: str) -> bool:
        """Stop ignoring ``nick``; False if it was not ignored. Raises OSError."""
        key = nick_key(nick)
        if key not in self._nicks:
            return False
        self._save({k: v for k, v in self._nicks.items() if k != key})
        return True

    def _save(self, nicks: dict[str, str]) -> None:
        if self.path is not None:
            _write(self.path, nicks)
        self._nicks = nicks


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}  # missing or unreadable: start empty rather than refuse to chat
    names = data.get("ignored") if isinstance(data, dict) else None
    if not isinstance(names, list):
        return {}
    nicks: dict[str, str] = {}
    for name in names[:MAX_IGNORED]:
        if isinstance(name, str) and name:
            nicks[nick_key(name)] = name
    return nicks


def _write(path: Path, nicks: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": 1, "ignored": sorted(nicks.values())}, indent=1)
    fd, temporary = tempfile.mkstemp(prefix=".ignored-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
