"""The server's shared epoll set, on real socket pairs."""

from __future__ import annotations

import asyncio
import select
import socket

import pytest

from parley.server.fd_poller import FdPoller

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux's")


async def until(condition: object, what: str) -> None:
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_number_reused_by_a_socket_closed_without_being_removed_is_watched_afresh() -> None:
    poller = FdPoller(asyncio.get_running_loop())
    old, old_peer = socket.socketpair()
    old_fd = old.fileno()
    poller.add_reader(old_fd, lambda: None)
    old.close()  # the caller's mistake: closed while still registered
    new, new_peer = socket.socketpair()
    try:
        # Not the same socket, though: the kernel gives out the lowest free number.
        assert old_fd in (new.fileno(), new_peer.fileno())
        reused = new if new.fileno() == old_fd else new_peer
        other = new_peer if reused is new else new
        heard: list[bytes] = []
        reused.setblocking(False)
        poller.add_reader(old_fd, lambda: heard.append(reused.recv(100)))
        other.send(b"ping")
        await until(lambda: heard, "the reused number's reader called")
        assert heard == [b"ping"]
        assert poller.remove_reader(old_fd)
        assert len(poller) == 0
    finally:
        for sock in (old_peer, new, new_peer):
            sock.close()


async def test_a_failing_callback_does_not_keep_the_others_from_theirs() -> None:
    loop = asyncio.get_running_loop()
    reported: list[BaseException | None] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context.get("exception")))
    poller = FdPoller(loop)
    pairs = [socket.socketpair() for _ in range(3)]
    heard: list[int] = []

    def reader(number: int, sock: socket.socket) -> None:
        sock.recv(100)
        heard.append(number)
        if number == 0:
            raise RuntimeError("bad callback")

    try:
        for number, (mine, _) in enumerate(pairs):
            mine.setblocking(False)
            poller.add_reader(mine.fileno(), lambda n=number, s=mine: reader(n, s))  # type: ignore[misc]
        for _, theirs in pairs:
            theirs.send(b"x")
        await until(lambda: len(heard) == 3, "every reader called")
        assert sorted(heard) == [0, 1, 2]
        assert len(reported) == 1 and isinstance(reported[0], RuntimeError)
        for mine, _ in pairs:
            assert poller.remove_reader(mine.fileno())
        assert not poller.remove_reader(pairs[0][0].fileno())  # removed already
    finally:
        loop.set_exception_handler(None)
        for pair in pairs:
            for sock in pair:
                sock.close()


async def test_a_writer_is_called_only_while_it_is_registered() -> None:
    poller = FdPoller(asyncio.get_running_loop())
    mine, theirs = socket.socketpair()
    calls: list[str] = []
    try:
        poller.add_writer(mine.fileno(), lambda: calls.append("writable"))
        await until(lambda: calls, "the writer called")
        assert poller.remove_writer(mine.fileno())
        calls.clear()
        await asyncio.sleep(0.05)
        assert calls == []
        assert len(poller) == 0
    finally:
        mine.close()
        theirs.close()
