"""Tab completion of the input line: commands, room names and nicknames. The choice of words
is pure (:func:`candidates`); :class:`ChatCompleter` hands it to prompt_toolkit.

A nickname completed at the start of the line gets ``: `` after it, the way people address
each other in a room ("bob: are you there?").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

# Commands whose first argument is a nickname, or a room.
_NICK_ARGUMENT = frozenset({"pm", "msg", "query", "whois", "ignore", "unignore"})
_ROOM_ARGUMENT = frozenset({"join", "part", "who", "topic", "kick", "ban", "unban", "mute"})


def candidates(
    before_cursor: str,
    commands: Iterable[str],
    rooms: Iterable[str],
    nicks: Iterable[str],
) -> tuple[str, list[str]]:
    """The word being completed and what can replace it, best first. ``nicks`` come in the
    order to offer them (most recently active first); matching ignores case.
    """
    word = before_cursor.rsplit(" ", 1)[-1]
    start_of_line = " " not in before_cursor
    folded = word.casefold()
    if start_of_line and word.startswith("/"):
        names = sorted({name for name in commands if name.startswith(folded[1:])})
        return word, [f"/{name} " for name in names]
    if word.startswith("#"):
        return word, _unique(room for room in rooms if room.casefold().startswith(folded))
    first = before_cursor.split(" ", 1)[0].removeprefix("/").lower()
    command_argument = before_cursor.startswith("/") and before_cursor.count(" ") == 1
    if command_argument and first in _ROOM_ARGUMENT:
        return word, _unique(room for room in rooms if room.casefold().startswith(folded))
    if not word:
        return word, []
    suffix = ": " if start_of_line else " "
    if command_argument and first in _NICK_ARGUMENT:
        suffix = " "
    matches = _unique(nick for nick in nicks if nick.casefold().startswith(folded))
    return word, [nick + suffix for nick in matches]


def _unique(words: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for word in words:
        if word.casefold() not in seen:
            seen.add(word.casefold())
            kept.append(word)
    return kept


class ChatCompleter(Completer):
    """Completions from what the client knows when Tab is pressed."""

    def __init__(
        self,
        commands: Callable[[], Iterable[str]],
        rooms: Callable[[], Iterable[str]],
        nicks: Callable[[], Iterable[str]],
    ) -> None:
        self._commands, self._rooms, self._nicks = commands, rooms, nicks

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        word, words = candidates(
            document.text_before_cursor, self._commands(), self._rooms(), self._nicks()
        )
        for replacement in words:
            yield Completion(replacement, start_position=-len(word))
