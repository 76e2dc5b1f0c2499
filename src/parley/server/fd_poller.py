"""One readiness registration in the event loop for many sockets.

The event loop's own ``add_reader`` costs each socket a poll handle in the loop (uvloop: a libuv
poll handle, a callback handle and their bookkeeping, about 700 bytes in Python objects and more
in C), for as long as the socket is read, which for an idle chat connection is all its life.
:class:`FdPoller` keeps the sockets in an epoll set of its own instead; only that set is
registered in the loop, and one dict entry per socket says whom to tell. What it is told is
the owner itself (a :class:`Watcher`, which knows what its socket is waiting for), not a bound
method made for the registration: one object less per socket.

The set is level-triggered, like the loop's registrations: a socket whose callback does not
read everything is reported again, and each poll takes a bounded batch, so one busy socket does
not starve the others (the kernel returns ready sockets round-robin).

Callers must remove a socket's registrations *before* closing it: a closed descriptor's number is
soon reused by a new socket, and the set would otherwise still hold the old one.

Without epoll (not Linux), :func:`fd_poller` returns a :class:`LoopPoller`: the same four
methods on the loop's own registrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from collections.abc import Callable
from typing import Protocol

# How many ready sockets one loop callback serves before the loop gets its turn again.
_EVENTS_PER_CALLBACK = 256

_READABLE = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP if hasattr(select, "epoll") else 0
_WRITABLE = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP if hasattr(select, "epoll") else 0


class Watcher(Protocol):
    """The owner of a socket: told when the socket is ready for what it registered."""

    def read_ready(self) -> None: ...

    def write_ready(self) -> None: ...


class Poller(Protocol):
    """What a transport needs of a poller: the event loop's readiness methods, for watchers."""

    def add_reader(self, fd: int, watcher: Watcher) -> None: ...

    def remove_reader(self, fd: int) -> bool: ...

    def add_writer(self, fd: int, watcher: Watcher) -> None: ...

    def remove_writer(self, fd: int) -> bool: ...


class LoopPoller:
    """The loop's own registrations, one per socket (where there is no epoll)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add_reader(self, fd: int, watcher: Watcher) -> None:
        self._loop.add_reader(fd, watcher.read_ready)

    def remove_reader(self, fd: int) -> bool:
        return self._loop.remove_reader(fd)

    def add_writer(self, fd: int, watcher: Watcher) -> None:
        self._loop.add_writer(fd, watcher.write_ready)

    def remove_writer(self, fd: int) -> bool:
        return self._loop.remove_writer(fd)


class FdPoller:
    """Readers and writers of many sockets, behind one registration in ``loop``.

    Registered in the loop only while it holds a socket, so an idle server (or a test's
    closed loop) keeps no epoll descriptor.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoll: select.epoll | None = None
        # What the kernel is asked to report of a socket follows from these two alone: no
        # third table of masks, which would cost every socket one more entry.
        self._readers: dict[int, Watcher] = {}
        self._writers: dict[int, Watcher] = {}

    def __len__(self) -> int:
        """How many sockets are registered."""
        return len(self._readers.keys() | self._writers.keys())

    def add_reader(self, fd: int, watcher: Watcher) -> None:
        was_watched = fd in self._readers or fd in self._writers
        self._readers[fd] = watcher
        self._tell_kernel(fd, was_watched)

    def remove_reader(self, fd: int) -> bool:
        if self._readers.pop(fd, None) is None:
            return False
        self._tell_kernel(fd, True)
        return True

    def add_writer(self, fd: int, watcher: Watcher) -> None:
        was_watched = fd in self._readers or fd in self._writers
        self._writers[fd] = watcher
        self._tell_kernel(fd, was_watched)

    def remove_writer(self, fd: int) -> bool:
        if self._writers.pop(fd, None) is None:
            return False
        self._tell_kernel(fd, True)
        return True

    def _tell_kernel(self, fd: int, was_watched: bool) -> None:
        # Told even when unchanged: a socket closed without being removed leaves these tables
        # out of step with the kernel's set (which forgot it at the close).
        mask = (select.EPOLLIN if fd in self._readers else 0) | (
            select.EPOLLOUT if fd in self._writers else 0
        )
        epoll = self._epoll if self._epoll is not None else self._open()
        if not mask:
            # OSError: closed before it was removed, and the kernel dropped it already.
            with contextlib.suppress(OSError):
                epoll.unregister(fd)
            if not self._readers and not self._writers:
                self._close()
        elif was_watched:
            try:
                epoll.modify(fd, mask)
            except FileNotFoundError:
                epoll.register(fd, mask)
        else:
            try:
                epoll.register(fd, mask)
            except FileExistsError:
                epoll.modify(fd, mask)

    def _open(self) -> select.epoll:
        self._epoll = epoll = select.epoll()
        self._loop.add_reader(epoll.fileno(), self._dispatch)
        return epoll

    def _close(self) -> None:
        epoll, self._epoll = self._epoll, None
        if epoll is not None:
            self._loop.remove_reader(epoll.fileno())
            epoll.close()

    def _dispatch(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        try:
            events = epoll.poll(0, _EVENTS_PER_CALLBACK)
        except InterruptedError:
            return
        readers, writers = self._readers, self._writers
        for fd, event in events:
            # Looked up at each call: an earlier callback of this batch may have removed it.
            if event & _READABLE:
                watcher = readers.get(fd)
                if watcher is not None:
                    self._run(watcher.read_ready)
            if event & _WRITABLE:
                watcher = writers.get(fd)
                if watcher is not None:
                    self._run(watcher.write_ready)

    def _run(self, callback: Callable[[], None]) -> None:
        # As the loop does for its own callbacks: one failing callback does not stop the rest.
        try:
            callback()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {"message": f"Exception in callback {callback!r}", "exception": exc}
            )


def fd_poller(loop: asyncio.AbstractEventLoop) -> Poller:
    """A poller for the sockets of one server: an :class:`FdPoller` where epoll exists,
    else a :class:`LoopPoller`.
    """
    if hasattr(select, "epoll"):
        return FdPoller(loop)
    return LoopPoller(loop)
