"""The client sends a message the server could not store again by itself, with the same
msg_id, and tells the user each time; it gives up after a few tries."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from parley.protocol.errors import ErrorCode, RequestRefused
from parley.protocol.messages import Message, Notice
from parley.server.app import ParleyServer
from parley.storage.factory import DEFAULT_FILE
from support import logged_in, next_of


async def test_a_send_refused_as_unavailable_is_sent_again_once_storage_is_back(
    server: ParleyServer,
) -> None:
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    # Another process holds the write lock longer than the server waits for it (5 s).
    blocker = sqlite3.connect(server.config.data_dir / DEFAULT_FILE, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        sending = asyncio.create_task(alice.send("#general", "held up", msg_id="m1"))
        notice = await asyncio.wait_for(next_of(alice, Notice), 15)
        assert "could not store your message to #general" in notice.text
        assert "try 2 of 4" in notice.text
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    sent = await asyncio.wait_for(sending, 15)
    assert sent.seq == 1
    message = await next_of(bob, Message)
    assert (message.text, message.msg_id) == ("held up", "m1")
    await alice.close()
    await bob.close()


async def test_a_send_still_refused_after_the_last_try_raises(server: ParleyServer) -> None:
    alice = await logged_in(server.port, "Alice")
    blocker = sqlite3.connect(server.config.data_dir / DEFAULT_FILE, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        sending = asyncio.create_task(alice.send("#general", "never", msg_id="m1"))
        tries = [(await asyncio.wait_for(next_of(alice, Notice), 15)).text for _ in range(3)]
        assert [text.rsplit("(", 1)[1] for text in tries] == [
            "try 2 of 4).",
            "try 3 of 4).",
            "try 4 of 4).",
        ]
        with pytest.raises(RequestRefused) as refused:
            await asyncio.wait_for(sending, 15)
        assert refused.value.code == ErrorCode.UNAVAILABLE
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await alice.close()
