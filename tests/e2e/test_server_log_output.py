"""A server whose output nobody reads keeps serving: its log lines are dropped and counted,
not waited for, and the count is written once the output drains. A real server process with
its stdout on a pipe the test leaves unread, guests over TLS on loopback. (The same with
``--workers``: tests/cluster/test_workers.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from processes import Process, environment

from support import TIMEOUT_SECONDS, RawClient, guests_come_and_go

# Some 8,000 debug lines: several times what the pipe and the test's side of it hold, and
# more than the server's queue (log_queue_lines) below.
GUESTS = 2000
QUEUE_LINES = 1000
DROPPED = r".* WARNING parley\.logs: (\d+) log lines dropped: stdout did not take them "

_started: list[Process] = []


@pytest.fixture(autouse=True)
async def _kill_leftovers() -> AsyncIterator[None]:
    yield
    for server in _started:
        server.kill()
        # Read what is left, so that the pipe is closed with the process.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.process.communicate(), TIMEOUT_SECONDS)
    _started.clear()


async def test_a_server_whose_output_is_not_read_keeps_serving(tmp_path: Path) -> None:
    env = environment(tmp_path) | {"PARLEY_LOG_QUEUE_LINES": str(QUEUE_LINES)}
    server = await Process.start("server.py", "--port", "0", "--log-level", "debug", env=env)
    _started.append(server)
    port = int((await server.expect(r"Server is running on 127\.0\.0\.1:(\d+)\.\.\.$")).group(1))
    # From here on nobody reads the server's output until every login is done.
    await guests_come_and_go(port, GUESTS)
    alice = await RawClient.open(port)
    await alice.login("Alice")
    assert (await alice.request("ping"))["type"] == "pong"
    await alice.close()
    # Read now: the lines the queue had room for, then how many were not written, and why.
    dropped = await server.expect(DROPPED)
    assert int(dropped.group(1)) > 0
    assert dropped.string.endswith("check that whatever reads the server's output keeps reading it")
    server.signal(signal.SIGTERM)
    status, out, err = await server.finish()
    assert status == 0, err
    # The lines of the shutdown are all there, and the drops were told once, not once per
    # lost line.
    assert out.endswith("Shutting down...\nServer stopped."), out[-2000:]
    assert sum("log lines dropped" in line for line in out.splitlines()) == 1
