"""The input line's history file: private, bounded, tolerant of damage."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from parley.client.tui.history import MAX_ENTRIES, MAX_ENTRY_CHARS, InputHistory


def test_entries_come_back_newest_first_on_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "data" / "input_history"
    history = InputHistory(path)
    for line in ("first", "second\twith tab", "/join #dev"):
        history.store_string(line)
    assert list(InputHistory(path).load_history_strings()) == [
        "/join #dev",
        "second\twith tab",
        "first",
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_file_is_trimmed_to_the_newest_entries(tmp_path: Path) -> None:
    path = tmp_path / "input_history"
    path.write_text("".join(json.dumps(f"line {n}") + "\n" for n in range(MAX_ENTRIES + 20)))
    loaded = list(InputHistory(path).load_history_strings())
    assert len(loaded) == MAX_ENTRIES
    assert loaded[0] == f"line {MAX_ENTRIES + 19}"
    assert len(path.read_text().splitlines()) == MAX_ENTRIES


def test_damaged_lines_and_huge_entries_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "input_history"
    path.write_text('"ok"\nnot json\n42\n')
    history = InputHistory(path)
    history.store_string("x" * (MAX_ENTRY_CHARS + 1))
    assert list(history.load_history_strings()) == ["ok"]
