"""Transfers and the end of the line client: a connection lost in the middle of /send is told
to the user, and nothing is left behind unretrieved or running.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from processes import TIMEOUT_SECONDS, Lab


async def test_a_connection_lost_during_send_is_reported(lab: Lab, tmp_path: Path) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    source = tmp_path / "outbox" / "big.bin"
    source.parent.mkdir()
    source.write_bytes(os.urandom(1_000_000))
    server = lab.server
    assert server is not None
    # The server stops answering: the offer (share) is sent and waits for its reply...
    server.signal(signal.SIGSTOP)
    alice.type(f"/send #general {source}")
    await asyncio.sleep(1.0)
    # ...and then the connection is gone.
    server.signal(signal.SIGKILL)
    await asyncio.wait_for(server.process.wait(), TIMEOUT_SECONDS)
    lab.server = None
    await alice.expect(r"^\*\*\* big\.bin was not sent: the connection to the server was lost\.")
    status, _, err = await alice.finish()
    assert status != 0
    assert "never retrieved" not in err, err
    assert "Traceback" not in err, err
