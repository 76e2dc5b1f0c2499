"""Lists longer than one reply, through the real terminal client over pipes against the real
server: `/list` and `/who` show everyone, however many pages the server sends them in.
"""

from __future__ import annotations

import asyncio

from processes import Lab

from parley.protocol import limits
from parley.protocol.names import nick_key
from support import TIMEOUT_SECONDS, RawClient, insecure_context

# More than one page of the largest the server sends.
GUESTS = limits.MAX_LISTED_USERS + 20
# Spread over addresses (Linux routes all of 127.0.0.0/8 to loopback), each far below its
# connection limit.
SOURCES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


async def _guest(port: int, nick: str, source: str) -> RawClient:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", port, ssl=insecure_context(), local_addr=(source, 0), limit=2**22
        ),
        TIMEOUT_SECONDS,
    )
    client = RawClient(reader, writer)
    await client.login(nick)
    return client


async def test_list_and_who_show_everyone_past_one_page(lab: Lab) -> None:
    port = await lab.start_server()
    alice = await lab.guest("Alice")
    names = [f"G{n:04}" for n in range(GUESTS)]
    guests: list[RawClient] = []
    for start in range(0, GUESTS, 50):
        batch = names[start : start + 50]
        guests += await asyncio.gather(
            *(_guest(port, nick, SOURCES[n % len(SOURCES)]) for n, nick in enumerate(batch))
        )
    everyone = sorted(["Alice", *names], key=nick_key)

    alice.type("/list")
    match = await alice.expect(rf"Online \({len(everyone)}\): (.*)$")
    assert match.group(1).split(", ") == everyone
    alice.type("/who #general")
    match = await alice.expect(rf"In #general \({len(everyone)}\): (.*)$")
    assert match.group(1).split(", ") == everyone
    for guest in guests:
        guest.writer.close()
