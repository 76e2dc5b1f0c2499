"""Stopping a node of a cluster with drain: it refuses new connections, tells its users it is
going away (``going-away``), serves them until they leave, and exits 0. Behind HAProxy, every
node restarted in turn under traffic: each member is shown every message once, in seq order;
the terminal client, told to move, comes back on another node by itself.
"""

from __future__ import annotations

import asyncio
import io
import signal
import sys
from pathlib import Path

import pexpect
import pytest
from cluster_support import NODE_SETTINGS, Balanced, Cluster, Member

from e2e.processes import ROOT, TIMEOUT_SECONDS, environment
from support import RawClient


async def test_a_stopping_node_tells_its_users_to_move_and_serves_them_until_they_do(
    cluster: Cluster,
) -> None:
    cluster.settings.write_text(NODE_SETTINGS + "shutdown_drain_seconds = 3.0\n")
    node = await cluster.start_node("a")
    mover = await cluster.user(node.port, "Mover")
    stayer = await cluster.user(node.port, "Stayer")
    for client in (mover, stayer):
        assert (await client.request("join", room="#flow"))["type"] == "room"
    node.process.signal(signal.SIGTERM)
    for client in (mover, stayer):
        notice = await client.event("going-away")
        assert notice["seconds"] == 3.0
        assert "connect again" in notice["message"], notice
    # No one new is let in: a balancer sends them to another node.
    with pytest.raises(ConnectionRefusedError):
        await RawClient.open(node.port)
    # Those still here are served as before, until they leave.
    sent = await mover.request("send", to="#flow", text="still here", msg_id="s1")
    assert sent["type"] == "sent", sent
    await stayer.event("message", text="still here")
    assert (await mover.request("bye"))["type"] == "ok"
    assert await mover.closed()
    # One that does not leave is closed as at any shutdown once the drain is over.
    closing = await stayer.event("closing")
    assert closing["code"] == "server-shutdown", closing
    assert await node.exited(TIMEOUT_SECONDS)
    status, out, err = await node.process.finish()
    node.running = False
    assert status == 0, out + err
    assert "Draining: told 2 connections to move to another node" in node.log()
    assert "Draining: 1 connections still open after 3 s are closed" in node.log()


async def test_a_user_who_is_not_logged_in_is_not_kept_waiting(cluster: Cluster) -> None:
    node = await cluster.start_node("a")
    lurker = await cluster.connect(node.port)
    lurker.send(type="hello", id=1, versions=[1])
    await lurker.expect("welcome", id=1)
    node.process.signal(signal.SIGTERM)
    # Nothing to carry over to another node: closed at once, not after the drain.
    closing = await lurker.expect("closing")
    assert closing["code"] == "server-shutdown", closing
    assert await node.exited(TIMEOUT_SECONDS)
    assert "still open after" not in node.log()


async def test_a_rolling_restart_loses_and_repeats_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.balance("a", "b", "c")
    await asyncio.gather(*(cluster.start_node(name) for name in "abc"))
    await cluster.start_balancer()
    users = Balanced(cluster, tmp_path / "pins")
    try:
        writer = await users.user("Writer", "#flow")
        # Round robin: every node has users, the writer among them.
        readers = [await users.user(f"Reader{i}", "#flow") for i in range(5)]
        members: list[Member] = [writer, *readers]
        following = [asyncio.create_task(users.follow(m, "#flow", "end")) for m in members]
        restarted = asyncio.Event()

        async def write() -> dict[str, int]:
            """Send until every node was restarted, one message at a time, then "end"."""
            acked: dict[str, int] = {}
            count = 0
            while not restarted.is_set() and count < 5000:
                acked[f"m{count}"] = await writer.send("#flow", f"m{count}")
                count += 1
                await asyncio.sleep(0.01)
            acked["end"] = await writer.send("#flow", "end")
            return acked

        writing = asyncio.create_task(write())
        await asyncio.sleep(0.5)
        for name in "abc":
            printed = await cluster.restart(name)
            assert "Shutting down..." in printed and "Server stopped." in printed, printed
            # Traffic flows through the cluster with the node back before the next one goes.
            await asyncio.sleep(1.0)
        restarted.set()
        acked = await writing
        total = len(acked)
        assert sorted(acked.values()) == list(range(1, total + 1))
        for shown in await asyncio.gather(*following):
            assert [message.seq for message in shown] == list(range(1, total + 1))
            assert {message.text: message.seq for message in shown} == acked
        # Every user was told to move at least once (each node had some), and every one left
        # in time on its own: no drain ran out.
        assert users.moves >= len(members), users.moves
        for node in cluster.nodes.values():
            assert "Draining: told" in node.log(), node.log()
            assert "still open after" not in node.log(), node.log()
        # The nodes share one certificate: nobody was told it changed.
        assert len(users.pins.path.read_text().split()) == 2
    finally:
        await users.close()


async def test_the_terminal_client_moves_to_another_node_when_told(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.balance("a", "b")
    await asyncio.gather(*(cluster.start_node(name) for name in "ab"))
    balancer = await cluster.start_balancer()
    child = pexpect.spawn(
        sys.executable,
        ["client.py", "--plain", "--trust-new", "--port", str(balancer.port), "--nick", "Reader"],
        cwd=str(ROOT),
        env=environment(tmp_path / "reader"),
        dimensions=(40, 120),
    )
    printed = io.BytesIO()
    child.logfile_read = printed

    async def shown(text: str, seconds: float = 15.0) -> None:
        await asyncio.to_thread(child.expect_exact, text, timeout=seconds)

    users = Balanced(cluster, tmp_path / "pins")
    try:
        await shown("Welcome to the chat!")
        writer = await users.user("Writer", "#general")
        await writer.send("#general", "before")
        await shown("Writer: before")
        moving = cluster.node_of("Reader")
        output = await cluster.restart(moving.name)
        assert "Server stopped." in output, output
        # Told, it left on its own (the drain did not run out) and came back elsewhere.
        await shown("This server is going away")
        await shown("Reconnected to", 40.0)
        assert "Draining: told 1 connections" in moving.log(), moving.log()
        assert "still open after" not in moving.log(), moving.log()
        await writer.send("#general", "after")
        await shown("Writer: after")
        child.send("/exit\r")
        await asyncio.to_thread(child.expect, pexpect.EOF, timeout=10)
        child.close()
        assert child.exitstatus == 0
        # Each shown once: nothing missed, nothing repeated by the move; the certificate the
        # client trusted at first is the one the other node presents.
        text = printed.getvalue().decode(errors="replace")
        assert text.count("Writer: before") == 1, text
        assert text.count("Writer: after") == 1, text
        assert "CHANGED" not in text, text
    finally:
        await users.close()
        if child.isalive():
            child.terminate(force=True)
