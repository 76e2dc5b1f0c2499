"""``workers = N``: N server processes on one machine sharing its ports, the bus and the
database, so that one machine uses all its cores.

The parent process (this module) serves nothing itself. It first holds every port the
workers listen on: bound with SO_REUSEPORT but never listening, so the kernel spreads new
connections over the workers' listening sockets only, no other program can take a port while
a worker restarts, and port 0 becomes one port that every worker shares. Then it forks the
workers: the first alone (it may make the certificate, the database schema and the admin
account), the others once the first serves. From then on it supervises them:

- SIGTERM and SIGINT are passed to every worker, which shuts down gracefully; the parent exits
  once all have stopped, with status 0 when every one stopped cleanly. One that has not
  stopped within ``shutdown_grace_seconds`` + :data:`STOP_MARGIN_SECONDS` is killed (status 1).
- SIGHUP is passed on: each worker reloads its settings; the parent keeps the live ones for
  the workers it starts later.
- A worker that dies is started again after 1 s, then 2, 4, ... at most
  :data:`MAX_BACKOFF_SECONDS` while it keeps dying; each time is logged.
- A worker that cannot start in the first place (a port in use, Redis unreachable) stops them
  all with its status: the settings are wrong, and starting it again would not mend them.

Why fork and not a fresh interpreter: the parent runs no event loop and no thread, so a fork is
a clean copy, with the settings already read and checked, that needs nothing passed to it.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import logging
import math
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from parley import logs
from parley.config import ConfigError, ServerConfig, parse_listen
from parley.server.reload import LIVE_SETTINGS
from parley.storage import factory

if TYPE_CHECKING:
    from parley.server.app import ParleyServer

log = logging.getLogger("parley.server.workers")

# What a stopping worker gets beyond shutdown_grace_seconds (storage and the bus closing)
# before it is killed.
STOP_MARGIN_SECONDS = 10.0
# A worker that keeps dying is started again after 1 s, 2 s, 4 s... at most this.
MAX_BACKOFF_SECONDS = 30.0
# A worker that served this long before dying starts again after 1 s, as if it never failed.
STABLE_SECONDS = 60.0
# Linux's prctl(PR_SET_PDEATHSIG): a worker is sent SIGTERM if the parent dies.
_PR_SET_PDEATHSIG = 1

_WORKERS = "workers (--workers, PARLEY_WORKERS or workers in the settings file)"


def problem(config: ServerConfig) -> str | None:
    """Why ``config`` cannot run its ``workers``, in one line naming the settings, or None."""
    count = config.workers
    if count == 1:
        return None
    if config.bus is None:
        return (
            f"{_WORKERS} is {count}: the processes must share a bus and a PostgreSQL database, "
            "and no bus is set. Set bus (--bus, PARLEY_BUS or bus in the settings file) to "
            "redis://HOST:PORT/DB and database (--database, PARLEY_DATABASE or database in the "
            "settings file) to postgresql://USER@HOST/DB, or set workers to 1."
        )
    if factory.sqlite_path(config.database, config.data_dir) is not None:
        return (
            f"{_WORKERS} is {count}: the processes must share a PostgreSQL database, and the "
            "database is SQLite, which only one process can serve. Set database (--database, "
            "PARLEY_DATABASE or database in the settings file) to postgresql://USER@HOST/DB, "
            "or set workers to 1."
        )
    if not hasattr(socket, "SO_REUSEPORT"):
        return f"{_WORKERS} is {count}: this system has no SO_REUSEPORT; set workers to 1."
    if config.metrics_listen is not None:
        _, port = parse_listen(config.metrics_listen)
        if port and port + count - 1 > 65535:
            return (
                f"metrics_listen {config.metrics_listen}: each of the {count} workers listens on "
                f"a port of its own from {port} up, past 65535: choose a lower port."
            )
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class Ports:
    """The ports every worker shares, chosen by the parent (port 0 becomes one port)."""

    chat: int
    files: int
    web: int | None


def worker_config(config: ServerConfig, number: int, ports: Ports) -> ServerConfig:
    """The settings of worker ``number`` (from 1): the shared ports, and a metrics port of
    its own (``metrics_listen``'s port + number - 1), since a scrape must see one process.
    """
    metrics = config.metrics_listen
    if metrics is not None:
        host, port = parse_listen(metrics)
        host = f"[{host}]" if ":" in host else host
        metrics = f"{host}:{port + number - 1 if port else 0}"
    return dataclasses.replace(
        config, port=ports.chat, files_port=ports.files, web_port=ports.web, metrics_listen=metrics
    )


class Worker:
    """What a worker process knows of itself; handed to :func:`parley.server.app.run`."""

    def __init__(self, number: int, count: int, ready_fd: int) -> None:
        self.number = number
        self.count = count
        self._ready_fd = ready_fd

    def serving(self, server: ParleyServer) -> None:
        """Tell the parent this worker serves (it then starts the others)."""
        log.info(
            "Worker %d of %d serving (pid %d)",
            self.number,
            self.count,
            os.getpid(),
            extra={"pid": os.getpid()},
        )
        with contextlib.suppress(OSError):
            os.write(self._ready_fd, b"\n")
            os.close(self._ready_fd)


@dataclasses.dataclass(slots=True)
class _Slot:
    number: int
    pid: int = 0
    ready_fd: int = -1
    serving: bool = False
    started_at: float = 0.0
    served_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    """The parent of ``config.workers`` server processes; :meth:`run` returns the exit
    status. ``load`` reads the settings again (SIGHUP).
    """

    def __init__(self, config: ServerConfig, load: Callable[[], ServerConfig] | None) -> None:
        self.config = config
        self.load = load
        self.slots = [_Slot(number) for number in range(1, config.workers + 1)]
        self.ports: Ports | None = None
        self._held: list[socket.socket] = []
        self._selector = selectors.DefaultSelector()
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        self._all_served = False
        self._stopping = False
        self._stop_deadline = 0.0
        self._status = 0

    # --- the parent's life -----------------------------------------------------------------

    def run(self) -> int:
        try:
            self.ports = self._hold_ports()
        except OSError as exc:
            print(f"parley server: {exc}", file=sys.stderr)
            return 2
        self._catch_signals()
        print(
            f"Starting {len(self.slots)} workers on port {self.ports.chat} "
            f"(supervised by pid {os.getpid()})...",
            flush=True,
        )
        self._start(self.slots[0])
        while any(slot.pid for slot in self.slots) or self._restarts_pending():
            self._step()
        for sock in self._held:
            sock.close()
        if self._all_served and self._status == 0:
            # Once for all the workers (the first said "Shutting down...").
            logs.say("Server stopped.")
        return self._status

    def _step(self) -> None:
        now = time.monotonic()
        due = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        if self._stopping and self._stop_deadline != math.inf:
            due.append(self._stop_deadline)
        timeout = max(0.0, min(due) - now) if due else None
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self._wakeup_read:
                self._signals(self._wakeup_read.recv(512))
            else:
                self._readiness(key.data)
        self._reap()
        now = time.monotonic()
        for slot in self.slots:
            if slot.restart_at is not None and slot.restart_at <= now and not self._stopping:
                slot.restart_at = None
                self._start(slot)
        if self._stopping and now >= self._stop_deadline:
            self._kill_stragglers()

    def _restarts_pending(self) -> bool:
        return not self._stopping and any(slot.restart_at is not None for slot in self.slots)

    # --- signals ---------------------------------------------------------------------------

    def _catch_signals(self) -> None:
        """Every signal of interest writes its number to the wakeup socket; the loop reads it."""
        self._wakeup_read.setblocking(False)
        self._wakeup_write.setblocking(False)
        signal.set_wakeup_fd(self._wakeup_write.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, _noted)
        self._selector.register(self._wakeup_read, selectors.EVENT_READ)

    def _signals(self, received: bytes) -> None:
        for signum in received:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop(signal.Signals(signum))
            elif signum == signal.SIGHUP:
                self._reload()

    def _stop(self, signum: signal.Signals) -> None:
        if not self._stopping:
            log.info("%s: stopping the workers", signum.name, extra={"signal": signum.name})
            self._stopping = True
            self._stop_deadline = (
                time.monotonic() + self.config.shutdown_grace_seconds + STOP_MARGIN_SECONDS
            )
            for slot in self.slots:
                slot.restart_at = None
        # Again at a second signal: harmless to a worker already stopping.
        self._send(signum)

    def _reload(self) -> None:
        """Pass SIGHUP on, and keep the live settings for workers started later."""
        if self.load is not None:
            try:
                new = self.load()
            except (ConfigError, ValueError) as exc:
                problems = "; ".join(str(exc).splitlines())
                log.error("Reload refused, the settings in use are kept: %s", problems)
            else:
                for name in LIVE_SETTINGS:
                    setattr(self.config, name, getattr(new, name))
                with contextlib.suppress(OSError):  # each worker says so in its own lines
                    logs.configure(new.log_level, log_format=new.log_format, log_file=new.log_file)
        self._send(signal.SIGHUP, serving_only=True)

    def _send(self, signum: signal.Signals, serving_only: bool = False) -> None:
        for slot in self.slots:
            if slot.pid and (slot.serving or not serving_only):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signum)

    # --- workers ---------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        assert self.ports is not None
        ready_read, ready_write = os.pipe()
        # Whatever this process printed must not be printed again by the child.
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(ready_read)
            self._become_worker(slot, ready_write, parent)  # never returns
        os.close(ready_write)
        slot.pid, slot.ready_fd, slot.serving = pid, ready_read, False
        slot.started_at = time.monotonic()
        self._selector.register(ready_read, selectors.EVENT_READ, slot)

    def _become_worker(self, slot: _Slot, ready_fd: int, parent: int) -> None:
        """The child's side of the fork: run one server, then exit with its status."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            # Until the server handles SIGHUP itself, a reload must not end the process.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            self._selector.close()
            self._wakeup_read.close()
            self._wakeup_write.close()
            for other in self.slots:
                if other.ready_fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(other.ready_fd)
            for sock in self._held:
                sock.close()
            _die_with_parent(parent)
            from parley.server.app import run

            ports = self.ports
            assert ports is not None
            number, load = slot.number, self.load
            logs.set_worker(number)
            status = run(
                worker_config(self.config, number, ports),
                None if load is None else lambda: worker_config(load(), number, ports),
                Worker(number, len(self.slots), ready_fd),
            )
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)

    def _readiness(self, slot: _Slot) -> None:
        try:
            said = os.read(slot.ready_fd, 64)
        except OSError:
            said = b""
        self._selector.unregister(slot.ready_fd)
        os.close(slot.ready_fd)
        slot.ready_fd = -1
        if not said:
            return  # it died before serving: the reaping says how
        slot.serving = True
        slot.served_at = time.monotonic()
        if self._all_served:
            log.info("Worker %d serves again (pid %d)", slot.number, slot.pid)
            return
        if slot.number == 1 and not self._stopping:
            for other in self.slots[1:]:
                self._start(other)
        if all(each.serving for each in self.slots):
            self._all_served = True
            pids = ", ".join(str(each.pid) for each in self.slots)
            log.info("All %d workers serve (pids %s)", len(self.slots), pids)
            logs.say(f"{len(self.slots)} workers serve (pids {pids}).")

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((each for each in self.slots if each.pid == pid), None)
            if slot is not None:
                self._ended(slot, wait_status)

    def _ended(self, slot: _Slot, wait_status: int) -> None:
        pid, how = slot.pid, _how(wait_status)
        if slot.ready_fd >= 0:
            self._selector.unregister(slot.ready_fd)
            os.close(slot.ready_fd)
            slot.ready_fd = -1
        served = slot.serving
        slot.pid, slot.serving = 0, False
        clean = os.waitstatus_to_exitcode(wait_status) == 0
        if self._stopping:
            if not clean:
                self._status = self._status or 1
                log.warning("Worker %d (pid %d) %s while stopping", slot.number, pid, how)
            return
        if not self._all_served:
            # The settings do not work (a port in use, Redis unreachable): stop them all.
            code = os.waitstatus_to_exitcode(wait_status)
            self._status = code if code > 0 else 1
            log.error(
                "Worker %d (pid %d) %s before serving; stopping the others",
                slot.number,
                pid,
                how,
            )
            self._stop(signal.SIGTERM)
            return
        now = time.monotonic()
        if served and now - slot.served_at >= STABLE_SECONDS:
            slot.failures = 0
        slot.failures += 1
        delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (slot.failures - 1))
        slot.restart_at = now + delay
        log.warning(
            "Worker %d (pid %d) %s; starting it again in %g s",
            slot.number,
            pid,
            how,
            delay,
            extra={"pid": pid, "restart_seconds": delay},
        )

    def _kill_stragglers(self) -> None:
        for slot in self.slots:
            if slot.pid:
                log.error(
                    "Worker %d (pid %d) did not stop within %g s; killing it",
                    slot.number,
                    slot.pid,
                    self.config.shutdown_grace_seconds + STOP_MARGIN_SECONDS,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                self._status = 1
        # Killed processes are reaped at once; no second round of this.
        self._stop_deadline = math.inf

    # --- ports -----------------------------------------------------------------------------

    def _hold_ports(self) -> Ports:
        """Bind (never listen on) the chat, file and web ports. Raises OSError naming the port
        and the setting that chooses it.
        """
        config = self.config
        chat = self._hold(config.port, "chat", "with --port")
        if config.files_port is not None:
            files = self._hold(config.files_port, "files", "with files_port in the settings file")
        elif config.port:
            files = self._hold(
                chat + 1,
                f"files: the chat port {chat} + 1",
                "with files_port in the settings file",
            )
        else:
            files = self._hold(0, "files", "with files_port in the settings file")
        web = None
        if config.web_port is not None:
            web = self._hold(config.web_port, "web", "with web_port in the settings file")
        return Ports(chat, files, web)

    def _hold(self, port: int, which: str, how: str) -> int:
        infos = socket.getaddrinfo(
            self.config.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        seen: set[tuple[object, ...]] = set()
        for family, kind, proto, _, address in infos:
            if (family, address[0]) in seen:
                continue
            seen.add((family, address[0]))
            if port:
                _probe(family, kind, proto, (address[0], port, *address[2:]), which, how)
            sock = socket.socket(family, kind, proto)
            self._held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address[0], port, *address[2:]))
            except OSError as exc:
                raise OSError(_cannot_hold(exc, port, which, how)) from None
            # Port 0 on the first address: the other addresses take the same port.
            port = sock.getsockname()[1]
        return port


def _probe(
    family: int, kind: int, proto: int, address: tuple[object, ...], which: str, how: str
) -> None:
    """Bind once without SO_REUSEPORT: a port that another program listens on, another set
    of workers included (which would otherwise share it with these), is refused.
    """
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            port = address[1]
            assert isinstance(port, int)
            raise OSError(_cannot_hold(exc, port, which, how)) from None


def _cannot_hold(exc: OSError, port: int, which: str, how: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        problem = "is in use by another program"
    elif exc.errno == errno.EACCES:
        problem = "needs privileges this user does not have (ports below 1024)"
    else:
        problem = f"cannot be listened on ({exc.strerror or exc})"
    return f"Port {port} ({which}) {problem}: free it, or choose another port {how}."


def _how(wait_status: int) -> str:
    """How a worker ended, in words: "exited with status 2", "was killed by SIGKILL"."""
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(wait_status)}"


def _noted(signum: int, frame: object) -> None:
    """The signal's number reaches the supervisor's loop through the wakeup socket."""


def _die_with_parent(parent: int) -> None:
    """A worker whose parent is gone (killed with SIGKILL) is sent SIGTERM, on Linux."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def whole_lines() -> None:
    """One write per line on stdout and stderr, which every worker shares: a line is never
    cut by another process's (print writes the text and its newline apart when unbuffered).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]


def supervise(config: ServerConfig, load: Callable[[], ServerConfig] | None = None) -> int:
    """Run ``config.workers`` server processes under this one; returns the exit status."""
    whole_lines()
    refused = problem(config) or logs.start(
        config.log_level, config.log_format, config.log_file, config.log_queue_lines
    )
    if refused is not None:
        print(f"parley server: {refused}", file=sys.stderr)
        return 2
    status = 1
    try:
        status = Supervisor(config, load).run()
    finally:
        status = logs.finish(status)
    return status
