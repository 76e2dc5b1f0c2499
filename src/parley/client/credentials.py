"""Saved logins: the session token a server gave after a password login, kept so that the next
connection logs in without asking for the password again. Passwords are never written anywhere.

One JSON file, readable by its owner only (0600), replaced atomically on every change so that a
crash never leaves half a file::

    {"version": 1, "sessions": {"127.0.0.1:7976": {"alice": {"nick": "Alice", "token": "..."}}}}

Servers are named ``host:port`` as in the pin file; nicknames by their key, so 'Alice' and
'ALICE' share one saved login.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from parley.paths import default_data_dir
from parley.protocol.names import nick_key

FILE_NAME = "sessions.json"
_VERSION = 1


def default_path() -> Path:
    return default_data_dir() / FILE_NAME


class SessionStore:
    """Session tokens by server and nickname. Each call reads the file afresh, so two clients
    running at once see each other's changes (the last write wins).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def token(self, server: str, nick: str) -> str | None:
        """The saved token for ``nick`` on ``server``, or None."""
        entry = self._load().get(server, {}).get(nick_key(nick))
        token = entry.get("token") if isinstance(entry, dict) else None
        return token if isinstance(token, str) and token else None

    def save(self, server: str, nick: str, token: str) -> None:
        """Remember ``token`` for ``nick`` on ``server``. Raises OSError if the file cannot be
        written (the caller tells the user; the chat goes on).
        """
        sessions = self._load()
        sessions.setdefault(server, {})[nick_key(nick)] = {"nick": nick, "token": token}
        self._write(sessions)

    def forget(self, server: str, nick: str) -> bool:
        """Delete the saved token for ``nick`` on ``server``; True if there was one."""
        sessions = self._load()
        entries = sessions.get(server, {})
        if entries.pop(nick_key(nick), None) is None:
            return False
        if not entries:
            sessions.pop(server, None)
        self._write(sessions)
        return True

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # Unreadable or damaged: as if nothing were saved; the next save rewrites it whole.
            return {}
        sessions = data.get("sessions") if isinstance(data, dict) else None
        if not isinstance(sessions, dict):
            return {}
        return {
            server: dict(entries)
            for server, entries in sessions.items()
            if isinstance(entries, dict)
        }

    def _write(self, sessions: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps({"version": _VERSION, "sessions": sessions}, indent=2, sort_keys=True)
        # A new file beside the old one, private from its first byte (mkstemp makes it 0600
        # whatever the umask), then renamed over it: readers see the old file or the new one.
        fd, temporary = tempfile.mkstemp(prefix=".sessions-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
