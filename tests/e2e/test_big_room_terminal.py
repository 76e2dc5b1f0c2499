"""The full-screen client in a big room (past the server's room_announce_limit): it shows the
room's count from the server's `members` summaries, not one line per join. A real server
process and a real client on a pseudo-terminal, over TLS.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from processes import start_server
from pty_screen import spawn_client

from support import raw_user


async def test_the_member_count_follows_the_summaries_and_no_join_line_is_shown(
    tmp_path: Path,
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("room_announce_limit = 2\nroom_summary_seconds = 0.3\n")
    server, port = await start_server(tmp_path / "server", "--config", str(settings))
    crowd = [await raw_user(port, f"Crowd{n}") for n in range(3)]
    terminal = spawn_client(tmp_path / "viewer", port, "--nick", "Viewer", columns=110, rows=30)
    try:
        await terminal.await_text("[#general]")
        await terminal.await_text("Members (4)")
        newcomers = await asyncio.gather(*(raw_user(port, f"Late{n}") for n in range(2)))
        await terminal.await_text("Members (6)")
        await terminal.settle()
        assert "Late0 has joined" not in terminal.text()
        assert "Late1 has joined" not in terminal.text()
        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
        for client in [*crowd, *newcomers]:
            await client.close()
    finally:
        terminal.stop()
        server.signal(signal.SIGTERM)
        await server.finish()
