"""Saved logins: private file, atomic replacement, keyed by server and nickname key."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from parley.client.credentials import SessionStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_saved_token_is_found_by_server_and_nickname_in_any_case(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "parley" / "sessions.json")
    assert store.token("127.0.0.1:7976", "Alice") is None
    store.save("127.0.0.1:7976", "Alice", "token-a")
    store.save("127.0.0.1:7977", "Alice", "token-b")
    assert store.token("127.0.0.1:7976", "ALICE") == "token-a"
    assert store.token("127.0.0.1:7977", "alice") == "token-b"
    assert store.token("127.0.0.1:7976", "Bob") is None


def test_the_file_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = SessionStore(tmp_path / "parley" / "sessions.json")
        store.save("h:1", "Alice", "secret-token")
        store.save("h:1", "Bob", "other-token")  # replaced, still private
    finally:
        os.umask(old)
    assert _mode(store.path) == 0o600
    assert _mode(store.path.parent) == 0o700


def test_forgetting_removes_only_that_login(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions.json")
    store.save("h:1", "Alice", "a")
    store.save("h:1", "Bob", "b")
    assert store.forget("h:1", "alice") is True
    assert store.forget("h:1", "alice") is False
    assert store.token("h:1", "Alice") is None
    assert store.token("h:1", "Bob") == "b"
    assert store.forget("h:1", "Bob") is True
    assert json.loads(store.path.read_text())["sessions"] == {}


def test_a_failed_write_leaves_the_old_file_whole_and_no_stray_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SessionStore(tmp_path / "sessions.json")
    store.save("h:1", "Alice", "old-token")
    before = store.path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        store.save("h:1", "Bob", "new-token")
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["sessions.json"]


def test_a_damaged_file_reads_as_empty_and_is_rewritten(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions.json")
    store.path.write_text('{"sessions": {"h:1": ')
    assert store.token("h:1", "Alice") is None
    store.save("h:1", "Alice", "t")
    assert store.token("h:1", "Alice") == "t"
    store.path.write_text('{"sessions": {"h:1": {"alice": {"token": 7}}}}')
    assert store.token("h:1", "Alice") is None
