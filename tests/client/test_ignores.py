"""/ignore's list: by nickname key, saved atomically, tolerant of a damaged file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parley.client.ignores import MAX_IGNORED, IgnoreList


def test_ignoring_is_by_key_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ignored.json"
    ignores = IgnoreList(path)
    assert ignores.add("Bob")
    assert not ignores.add("BOB")
    assert "bob" in ignores
    again = IgnoreList(path)
    assert again.names() == ["Bob"]
    assert again.remove("bob")
    assert not again.remove("bob")
    assert IgnoreList(path).names() == []


def test_a_damaged_file_starts_empty_rather_than_failing(tmp_path: Path) -> None:
    path = tmp_path / "ignored.json"
    for body in ("{not json", '{"ignored": 5}', '["a"]', '{"ignored": [1, "", null, "Eve"]}'):
        path.write_text(body)
        assert IgnoreList(path).names() in ([], ["Eve"])


def test_the_list_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "ignored.json"
    path.write_text(json.dumps({"ignored": [f"u{n}" for n in range(MAX_IGNORED + 50)]}))
    ignores = IgnoreList(path)
    assert len(ignores.names()) == MAX_IGNORED
    with pytest.raises(ValueError, match="at most"):
        ignores.add("one-more")


def test_a_failed_save_changes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    ignores = IgnoreList(blocker / "ignored.json")  # its folder cannot be made
    with pytest.raises(FileExistsError):
        ignores.add("Bob")
    assert "Bob" not in ignores
