"""Nickname claims on their own: a login on its way in holds its name and the names that look
like it, and gives them back when it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_parts import RecordingPeer
from parley.clock import SYSTEM_CLOCK
from parley.protocol.errors import ErrorCode, PeerError
from parley.server.presence import Presence
from parley.storage.sqlite import SqliteStorage


async def test_a_login_on_its_way_in_holds_its_name_and_its_look_alikes(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "parley.sqlite3")
    try:
        presence = Presence(storage, SYSTEM_CLOCK)
        first = RecordingPeer("Alice")
        with presence.claim(first):
            for rival in ("alice", "\u0410lice"):  # the same name; one with a Cyrillic A
                with pytest.raises(PeerError) as refused, presence.claim(RecordingPeer(rival)):
                    pass
                assert refused.value.code is ErrorCode.NICK_TAKEN
            assert presence.find_online("Alice") is None
        # It failed before coming online: the name is free again.
        with presence.claim(RecordingPeer("alice")):
            pass
        with presence.claim(first):
            presence.add(first)
        assert presence.online() == ["Alice"]
        look_alike = RecordingPeer("\u0410lice")
        with pytest.raises(PeerError, match="looks like Alice"), presence.claim(look_alike):
            pass
        assert presence.remove(first)
        assert not presence.remove(first)
        assert presence.online() == []
    finally:
        await storage.close()
