"""The server's shared epoll set, on real socket pairs."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Callable

import pytest

from parley.server.fd_poller import FdPoller

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux's")


class Owner:
    """A socket's owner that notes each time it is told the socket is ready."""

    def __init__(self, sock: socket.socket, on_read: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.events: list[str] = []
        self.on_read = on_read

    def read_ready(self) -> None:
        self.events.append(self.sock.recv(100).decode())
        if self.on_read is not None:
            self.on_read()

    def write_ready(self) -> None:
        self.events.append("writable")


async def until(condition: Callable[[], object], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_number_reused_by_a_socket_closed_without_being_removed_is_watched_afresh() -> None:
    poller = FdPoller(asyncio.get_running_loop())
    old, old_peer = socket.socketpair()
    old_fd = old.fileno()
    poller.add_reader(old_fd, Owner(old))
    old.close()  # the caller's mistake: closed while still registered
    new, new_peer = socket.socketpair()
    try:
        # Not the same socket, though: the kernel gives out the lowest free number.
        assert old_fd in (new.fileno(), new_peer.fileno())
        reused = new if new.fileno() == old_fd else new_peer
        other = new_peer if reused is new else new
        reused.setblocking(False)
        owner = Owner(reused)
        poller.add_reader(old_fd, owner)
        other.send(b"ping")
        await until(lambda: owner.events, "the reused number's owner told")
        assert owner.events == ["ping"]
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

    def fail() -> None:
        raise RuntimeError("bad callback")

    owners = [Owner(mine, fail if number == 0 else None) for number, (mine, _) in enumerate(pairs)]
    try:
        for owner in owners:
            owner.sock.setblocking(False)
            poller.add_reader(owner.sock.fileno(), owner)
        for number, (_, theirs) in enumerate(pairs):
            theirs.send(str(number).encode())
        await until(lambda: all(owner.events for owner in owners), "every owner told")
        assert [owner.events for owner in owners] == [["0"], ["1"], ["2"]]
        assert len(reported) == 1 and isinstance(reported[0], RuntimeError)
        for owner in owners:
            assert poller.remove_reader(owner.sock.fileno())
        assert not poller.remove_reader(owners[0].sock.fileno())  # removed already
    finally:
        loop.set_exception_handler(None)
        for pair in pairs:
            for sock in pair:
                sock.close()


async def test_a_writer_is_told_only_while_it_is_registered() -> None:
    poller = FdPoller(asyncio.get_running_loop())
    mine, theirs = socket.socketpair()
    owner = Owner(mine)
    try:
        poller.add_writer(mine.fileno(), owner)
        await until(lambda: owner.events, "the writer told")
        assert set(owner.events) == {"writable"}  # not read: only writing was asked for
        assert poller.remove_writer(mine.fileno())
        owner.events.clear()
        theirs.send(b"unread")
        await asyncio.sleep(0.05)
        assert owner.events == []
        assert len(poller) == 0
    finally:
        mine.close()
        theirs.close()
