"""Every new request with wrong, huge or hostile fields gets an error reply, never a crash,
and leaves the server serving everyone else."""

from __future__ import annotations

import dataclasses
import json

import pytest

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from support import NO_SHARED_BUDGETS, assert_still_serving, raw_user

HOSTILE_STRINGS = [
    "",
    " ",
    "#",
    "'; DROP TABLE accounts; --",
    '"\\\\\x00\x1b[2J',
    "\u202e\u2028\ufeff",
    "#" + "a" * 100_000,
    "x" * 60_000,
]
HOSTILE_VALUES: list[object] = [None, -1, 2**64, 1.5, [], {}, True, *HOSTILE_STRINGS]

REQUESTS = {
    "register": ["password"],
    "passwd": ["old", "new"],
    "join": ["room"],
    "part": ["room"],
    "topic": ["room", "text"],
    "who": ["room"],
    "history": ["to", "after", "before", "limit"],
    "read": ["to", "seq"],
    "kick": ["room", "nick", "reason"],
    "ban": ["room", "nick", "seconds", "reason"],
    "unban": ["room", "nick"],
    "mute": ["room", "nick", "seconds", "reason"],
    "unmute": ["room", "nick"],
}


@pytest.mark.parametrize("kind", sorted(REQUESTS))
async def test_hostile_fields_are_refused_cleanly(server_config: ServerConfig, kind: str) -> None:
    # Flood control would turn this into a flooding test; it has its own.
    config = dataclasses.replace(
        server_config, flood_burst_requests=1000, flood_debt_requests=2000, **NO_SHARED_BUDGETS
    )
    async with ParleyServer(config) as server:
        for field in REQUESTS[kind]:
            # A connection per field: each stays under the protocol-error limit (20).
            client = await raw_user(server.port, "Mallory")
            await client.request("join", room="#target")
            for number, value in enumerate(HOSTILE_VALUES):
                fields = {
                    name: "#target" if name == "room" else "Mallory" for name in REQUESTS[kind]
                }
                fields[field] = value
                frame = {"type": kind, "id": 5000 + number, **fields}
                encoded = json.dumps(frame).encode() + b"\n"
                if len(encoded) > 65_536:
                    continue  # the frame limit is tested elsewhere: it closes the connection
                client.send_bytes(encoded)
                reply = await client.expect_reply(5000 + number)
                assert reply["type"] in ("error", "ok", "room", "users", "history"), reply
                if reply["type"] == "error":
                    assert reply["code"] != "internal-error", (frame, reply)
            await client.close()
        await assert_still_serving(server.port)
