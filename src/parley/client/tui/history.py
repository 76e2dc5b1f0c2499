"""The input line's history (Up/Down), kept across runs in the user's data dir.

One JSON string per line, readable by the owner only: what a user types is their business.
Bounded: at start, a file past :data:`MAX_ENTRIES` keeps only its newest entries. Passwords are
never in it: they are asked for in a separate prompt that keeps no history, and a command line
that may carry one (``/register PASSWORD``, ``/passwd OLD NEW``, typed by habit although the
client asks for them) is not remembered either.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit.history import History, InMemoryHistory

MAX_ENTRIES = 1000
# One entry longer than this is not kept: a pasted log is not worth recalling.
MAX_ENTRY_CHARS = 4000


# Commands whose arguments may be a password: a line naming one is never kept.
SECRET_COMMANDS = frozenset({"register", "passwd", "password", "login", "identify"})


def may_keep(line: str) -> bool:
    """False for a line that may hold a password."""
    if not line.startswith("/") or line.startswith("//"):
        return True
    name, _, args = line[1:].partition(" ")
    return not (args.strip() and name.lower() in SECRET_COMMANDS)


class LineHistory(InMemoryHistory):
    """The line client's history: this run only, and never a line :func:`may_keep` refuses."""

    def append_string(self, string: str) -> None:
        if may_keep(string):
            super().append_string(string)


class InputHistory(History):
    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__()

    def load_history_strings(self) -> Iterable[str]:
        """Newest first, as prompt_toolkit wants them."""
        try:
            raw = self.path.read_text("utf-8", errors="replace").splitlines()
        except OSError:
            return []
        entries = []
        for line in raw:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, str):
                    entries.append(entry)
        if len(raw) > MAX_ENTRIES:
            entries = entries[-MAX_ENTRIES:]
            with contextlib.suppress(OSError):
                self._rewrite(entries)
        return list(reversed(entries))

    def append_string(self, string: str) -> None:
        if may_keep(string):
            super().append_string(string)

    def store_string(self, string: str) -> None:
        if len(string) > MAX_ENTRY_CHARS:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as file:
                file.write(json.dumps(string) + "\n")

    def _rewrite(self, entries: list[str]) -> None:
        temporary = self.path.with_name(self.path.name + ".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.writelines(json.dumps(entry) + "\n" for entry in entries)
        os.replace(temporary, self.path)
