"""Lists longer than one reply, through the real terminal client over pipes against the real
server: `/list` shows everyone, however many pages the server sends it in.
"""

from __future__ import annotations

import asyncio
import ssl

from processes import Lab

from parley.protocol import limits
from parley.protocol.names import nick_key
from support import TIMEOUT_SECONDS, RawClient, insecure_context

# More than one page of the largest the server sends.
GUESTS = limits.MAX_LISTED_USERS + 20
# Spread over addresses (Linux routes all of 127.0.0.0/8 to loopback), each far below its
# connection limit, and none Alice's: guests at one address share one request budget.
SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


async def _guest(port: int, nick: str, source: str, context: ssl.SSLContext) -> RawClient:
    # A loaded machine may take a while to answer many handshakes at once.
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", port, ssl=context, local_addr=(source, 0), limit=2**22
        ),
        3 * TIMEOUT_SECONDS,
    )
    client = RawClient(reader, writer)
    await client.login(nick)
    # Out of #general, so that each arrival is not sent to all the others (a test of lists,
    # not of fan-out).
    assert (await client.request("part", room="#general"))["type"] == "ok"
    return client


async def test_list_shows_everyone_past_one_page(lab: Lab) -> None:
    # At the default log level: this test does not read the server's output, and a server
    # whose output does not drain drops log lines rather than waiting for it.
    await lab.start_server()
    alice = await lab.guest("Alice")
    names = [f"G{n:04}" for n in range(GUESTS)]
    guests: list[RawClient] = []
    context = insecure_context()  # one for all: making one reads the system's CA bundle
    for start in range(0, GUESTS, 10):
        batch = names[start : start + 10]
        guests += await asyncio.gather(
            *(
                _guest(lab.port, nick, SOURCES[n % len(SOURCES)], context)
                for n, nick in enumerate(batch)
            )
        )
    everyone = sorted(["Alice", *names], key=nick_key)

    alice.type("/list")
    match = await alice.expect(rf"Online \({len(everyone)}\): (.*)$")
    assert match.group(1).split(", ") == everyone
    for guest in guests:
        guest.writer.close()
