"""Start-up and shutdown of the server, owned in one place.

:class:`ParleyServer` starts the hub, the storage and the listener, and stops them in order.
:func:`serve` adds what a process needs: the banner, signal handling (SIGHUP reloads the
settings, see :mod:`parley.server.reload`), and the exit status;
:func:`run` picks the event loop and raises the open-file limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import resource
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from parley import logs
from parley.accounts import throttle
from parley.accounts.bootstrap import AdminNameTaken, ensure_admin
from parley.bus import Bus, BusUnavailable, Directory, Roster
from parley.bus.local import LocalBus, LocalDirectory, LocalRoster
from parley.clock import SYSTEM_CLOCK, Clock
from parley.config import ServerConfig, parse_listen, public_origin
from parley.protocol.errors import ErrorCode
from parley.protocol.messages import Closing, GoingAway, encode
from parley.protocol.names import GENERAL_ROOM, room_key
from parley.protocol.session import State
from parley.server.auth import Authenticator
from parley.server.blob_directory import DirectoryBlobStore
from parley.server.connection import Connection, ServerContext
from parley.server.deadlines import Deadlines
from parley.server.files import FileService
from parley.server.health import Readiness
from parley.server.http_server import HttpListener
from parley.server.hub import Hub
from parley.server.metrics import ServerMetrics
from parley.server.preflight import (
    StartupRefused,
    check_data_dir,
    check_database_file,
    keep_files_private,
    require_shared_certificate,
    require_shared_database,
)
from parley.server.proxy_protocol import trusted_proxies
from parley.server.reload import reload
from parley.server.request_limits import LocalRequestLimits
from parley.server.revocation import RevocationWatch
from parley.server.tasks import TaskSet, supervise
from parley.server.tls_transport import TlsServer, start_tls_server
from parley.server.tracker import ConnectionTracker
from parley.server.transfer import TransferServer
from parley.server.web import WebListener
from parley.storage import RunStart, Storage, StorageUnavailable, factory
from parley.storage.factory import open_storage
from parley.storage.sqlite import SqliteStorage
from parley.tls import CertificateProblem, ensure_certificate, file_fingerprint, server_context

if TYPE_CHECKING:
    from parley.server.workers import Worker

log = logging.getLogger("parley.server")

# The metrics' names of the sessions' states.
_STATE_NAMES = {
    "hello": State.HELLO,
    "login": State.LOGIN,
    "active": State.ACTIVE,
    "closing": State.CLOSED,
}

# What a client that is told to move to another node is told.
_GOING_AWAY = "This server is going away (a restart): connect again to carry on, on another server."

# At shutdown, what storage gets to close after the connections' grace period: a database that
# does not answer must not keep the process from exiting.
_STORAGE_CLOSE_SECONDS = 2.0


class ParleyServer:
    """A running server. ``async with ParleyServer(config) as server:`` serves until the block
    ends, then shuts down gracefully. ``port`` is the bound port (useful with port 0).
    """

    def __init__(
        self, config: ServerConfig, storage: Storage | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.config = config
        self.clock = clock
        self._given_storage = storage
        self.tracker = ConnectionTracker(config.max_connections_per_address, config.max_connections)
        # The web port's sockets (pages, files, WebSockets) within the same limits, apart from
        # the chat's: a browser opens a few at once. Its WebSockets count in ``tracker`` too.
        self.web_tracker = ConnectionTracker(
            config.max_connections_per_address, config.max_connections, port_name="web"
        )
        self.fingerprint = ""
        self.cert_file: Path | None = None
        self.key_file: Path | None = None
        self._ssl_context: ssl.SSLContext | None = None
        # The password of the admin account made on first start, to show once; else None.
        self.admin_password: str | None = None
        self._storage: Storage | None = None
        # What this run tells clients at hello (see Storage.start_run), and whether it was
        # raised at this start.
        self.history_epoch = RunStart(0)
        # This run is recorded in storage: its clean stop is to be recorded too.
        self._running = False
        self._bus: Bus | None = None
        self._directory: Directory | None = None
        self._roster: Roster | None = None
        # This node's id in the cluster ("" without a bus).
        self.node = ""
        self._hub: Hub | None = None
        self._server: TlsServer | None = None
        # The long-lived tasks (purges), and the tasks of requests that need storage.
        self._services = TaskSet("parley-service")
        self._requests = TaskSet("parley-request")
        self.files: FileService | None = None
        self._transfers: TransferServer | None = None
        self.metrics = ServerMetrics()
        self._http: HttpListener | None = None
        self._web: WebListener | None = None
        self._web_ssl: ssl.SSLContext | None = None
        # Set as soon as stopping begins: the server is then no longer ready.
        self._stopping = False

    @property
    def storage(self) -> Storage:
        assert self._storage is not None, "server not started"
        return self._storage

    @property
    def hub(self) -> Hub:
        assert self._hub is not None, "server not started"
        return self._hub

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def metrics_port(self) -> int | None:
        """The bound port of the HTTP listener (metrics_listen), or None when it is off."""
        return self._http.port if self._http is not None else None

    @property
    def web_port(self) -> int | None:
        """The bound port of the web client (web_port), or None when it is off."""
        return self._web.port if self._web is not None else None

    @property
    def web_origin(self) -> str | None:
        """The address the web client is served at (web_public_url), or None when it is off."""
        return self._web.origin if self._web is not None else None

    async def start(self) -> None:
        """Load or make the certificate, start the hub, listen. Raises CertificateProblem when
        the certificate does not load, StartupRefused when a port cannot be had,
        StorageUnavailable when the database cannot be opened.
        """
        config = self.config
        self._stopping = False
        if (config.cert_file is None) != (config.key_file is None):
            given, missing = ("--cert", "--key") if config.key_file is None else ("--key", "--cert")
            raise CertificateProblem(
                f"{given} was given without {missing}: give both (the certificate and its "
                "private key), or neither to use a self-signed pair made in the data dir."
            )
        if config.bus is not None:
            if self._given_storage is None:
                require_shared_database(config)
            # Before a self-signed pair is made: a node of a cluster must not make one.
            require_shared_certificate(config)
        if config.cert_file is not None and config.key_file is not None:
            cert_file, key_file = config.cert_file, config.key_file
        else:
            cert_file, key_file = ensure_certificate(config.data_dir, config.hostnames)
        ssl_context = server_context(cert_file, key_file)
        self._ssl_context = ssl_context
        self.cert_file, self.key_file = cert_file, key_file
        self.fingerprint = file_fingerprint(cert_file)
        # The bus first: a node that cannot reach the others touches nothing.
        bus, directory, roster = self._open_bus()
        await bus.start()
        self._bus, self._directory, self._roster = bus, directory, roster
        try:
            storage = self._given_storage or await open_storage(
                config.database,
                config.data_dir,
                clock=self.clock,
                sqlite_synchronous=config.sqlite_synchronous,
            )
        except BaseException:
            await self._stop_bus()
            raise
        self._storage = storage
        try:
            # Before anyone is served: a client must never be told an epoch that then changes.
            self.history_epoch = await storage.start_run()
            self._running = True
            if self.history_epoch.raised:
                log.warning("%s", _epoch_raised(self.history_epoch.history_epoch))
            auth = Authenticator(storage, config, self.clock)
            self.admin_password = await ensure_admin(
                storage, auth.hasher, self.clock.now_ms(), force=config.init_admin
            )
            self._hub = hub = Hub(storage, bus, config, self.metrics, self.clock, directory, roster)
            await hub.start()
            await directory.start(hub.local_users)
            await roster.start(hub.local_rooms)
            revocations = RevocationWatch(storage, hub, config.revocation_poll_seconds)
            await revocations.start()
            self.files = files = FileService(
                storage, hub, config, DirectoryBlobStore(config.data_dir / "files")
            )
            context = ServerContext(
                config=config,
                hub=hub,
                auth=auth,
                tracker=self.tracker,
                deadlines=Deadlines(asyncio.get_running_loop()),
                files=files,
                requests=self._requests,
                limits=LocalRequestLimits(
                    address_burst=config.request_burst_per_address,
                    address_rate_per_second=config.request_rate_per_address,
                    principal_burst=config.request_burst_per_principal,
                    principal_rate_per_second=config.request_rate_per_principal,
                    guests_burst=config.request_burst_guests_per_address,
                    guests_rate_per_second=config.request_rate_guests_per_address,
                    penalty_seconds=config.flood_penalty_seconds,
                    penalty_strikes=config.flood_penalty_strikes,
                    clock=self.clock,
                ),
                metrics=self.metrics,
                history_epoch=self.history_epoch.history_epoch,
            )
            try:
                self._server = await start_tls_server(
                    lambda: Connection(context),
                    config.host,
                    config.port,
                    ssl_context,
                    handshake_timeout=config.tls_handshake_timeout_seconds,
                    tracker=self.tracker,
                    refusal=encode(
                        Closing(
                            code=ErrorCode.TOO_MANY_CONNECTIONS,
                            message=ErrorCode.TOO_MANY_CONNECTIONS.text,
                        )
                    ),
                    nodelay=config.tcp_nodelay,
                    proxies=trusted_proxies(config),
                    reuse_port=config.workers > 1,
                )
            except OSError as exc:
                raise StartupRefused(
                    _cannot_listen(exc, f"{config.port} (chat)", "with --port")
                ) from exc
            self._transfers = TransferServer(files, config, self.metrics)
            files_port = self._files_port()
            try:
                await self._transfers.start(ssl_context, files_port)
            except OSError as exc:
                which = (
                    f"{files_port} (files)"
                    if config.files_port is not None
                    else f"{files_port} (files: the chat port {self.port} + 1)"
                )
                how = "with files_port in the settings file"
                raise StartupRefused(_cannot_listen(exc, which, how)) from exc
            files.port = self._transfers.port
            self._watch(hub)
            if config.metrics_listen is not None:
                await self._start_http(config.metrics_listen, hub)
            if config.web_port is not None:
                await self._start_web(config.web_port, context)
        except BaseException:
            if self._web is not None:
                await self._web.stop()
                self._web = None
            if self._http is not None:
                await self._http.stop()
                self._http = None
            if self._server is not None:
                self._server.close()
            if self._transfers is not None and self._transfers.port:
                # Started (a file port that could not be had has no thread left to stop).
                await self._transfers.stop()
            if self._hub is not None:
                await self._hub.stop(config.shutdown_grace_seconds)
            await self._stop_bus()
            await self._end_run(storage)
            await storage.close()
            raise
        # A bug in one of these is logged and it starts again after its interval.
        services = [
            ("The retention purge", "parley-purge", self._purge_forever,
             config.purge_interval_seconds),
            ("The file purge", "parley-file-purge", self._purge_files_forever,
             config.file_purge_interval_seconds),
            ("The revocation watch", "parley-revocations", revocations.run,
             config.revocation_poll_seconds),
        ]  # fmt: skip
        for what, name, run, restart in services:
            self._services.spawn(supervise(what, run, restart_seconds=restart), name=name)

    def _open_bus(self) -> tuple[Bus, Directory, Roster]:
        """The bus, directory and roster the settings name: in-process without ``bus``, else
        Redis.
        """
        if self.config.bus is None:
            return LocalBus(), LocalDirectory(), LocalRoster()
        from parley.bus.redis import RedisBus, describe, redis_client
        from parley.bus.redis_directory import RedisDirectory
        from parley.bus.redis_roster import RedisRoster

        client, prefix = redis_client(self.config.bus)
        bus = RedisBus(client, prefix, describe(self.config.bus))
        self.node = bus.node
        return bus, RedisDirectory(client, prefix, bus.node), RedisRoster(client, prefix, bus.node)

    async def _stop_bus(self) -> None:
        # The roster before the directory, whose lease its members count under.
        if self._roster is not None:
            await self._roster.stop()
            self._roster = None
        if self._directory is not None:
            await self._directory.stop()
            self._directory = None
        if self._bus is not None:
            await self._bus.stop()
            self._bus = None

    @property
    def started(self) -> bool:
        return self._server is not None

    def reload_certificate(self, cert_file: Path, key_file: Path) -> None:
        """Read the certificate and key again (they may be new files); new handshakes on both
        ports use them, open connections keep theirs. Raises CertificateProblem, leaving the
        ones in use.
        """
        context = server_context(cert_file, key_file)
        fingerprint = file_fingerprint(cert_file)
        self._ssl_context = context
        if self._server is not None:
            self._server.replace_context(context)
        if self._transfers is not None:
            self._transfers.reconfigure(context)
        if self._web_ssl is not None:
            # aiohttp keeps the context it was given: new handshakes read the new pair from it.
            self._web_ssl.load_cert_chain(cert_file, key_file)
        if fingerprint != self.fingerprint:
            log.info(
                "Reload: new certificate %s, SHA-256 fingerprint %s",
                cert_file,
                fingerprint,
                extra={"fingerprint": fingerprint},
            )
        self.cert_file, self.key_file, self.fingerprint = cert_file, key_file, fingerprint

    def apply_limits(self) -> None:
        """Hand the connection limits of ``config`` (changed by a reload) to both ports."""
        config = self.config
        self.tracker.set_limits(config.max_connections_per_address, config.max_connections)
        self.web_tracker.set_limits(config.max_connections_per_address, config.max_connections)
        if self._transfers is not None and self._ssl_context is not None:
            self._transfers.reconfigure(self._ssl_context)

    def _watch(self, hub: Hub) -> None:
        """Let a scrape read what the server already knows."""
        transfers = self._transfers
        self.metrics.watch(
            self._connection_states,
            self.tracker,
            lambda: transfers.tracker if transfers is not None else None,
            lambda: hub.health.degraded,
        )

    def _connection_states(self) -> dict[str, int]:
        """The chat connections by state, for a scrape: O(connections)."""
        states = collections.Counter(
            connection.session.state
            for connection in self.tracker.live
            if isinstance(connection, Connection)
        )
        counts = {name: states.get(state, 0) for name, state in _STATE_NAMES.items()}
        # Counted from accept, open only once the handshake is done.
        counts["handshaking"] = max(0, self.tracker.total - len(self.tracker.live))
        return counts

    async def _start_http(self, listen: str, hub: Hub) -> None:
        """Serve /healthz, /readyz and /metrics on ``listen`` (metrics_listen)."""
        storage = self.storage
        general = room_key(GENERAL_ROOM)
        readiness = Readiness(
            lambda: storage.room(general),  # one row by its key: cheap on any database
            hub.health,
            self._not_listening,
            timing=self.metrics.probe_seconds.time,
            clock=self.clock,
        )
        self._http = HttpListener(self.metrics, readiness)
        host, port = parse_listen(listen)
        try:
            await self._http.start(host, port)
        except OSError as exc:
            self._http = None
            how = "with metrics_listen in the settings file"
            raise StartupRefused(
                _cannot_listen(exc, f"{port} (metrics_listen {listen})", how)
            ) from exc

    async def _start_web(self, port: int, context: ServerContext) -> None:
        """Serve the web client and its WebSocket on ``host``:``port`` (web_port)."""
        public = self.config.web_public_url
        assert self._transfers is not None
        web = WebListener(context, self._transfers, hsts=self.config.cert_file is not None)
        # Its own context: a reloaded certificate is loaded into it in place.
        assert self.cert_file is not None
        assert self.key_file is not None
        ssl_context = server_context(self.cert_file, self.key_file)
        try:
            await web.start(
                self.config.host,
                port,
                ssl_context,
                public_origin(public) if public else "",
                tracker=self.web_tracker,
                handshake_timeout=self.config.tls_handshake_timeout_seconds,
                nodelay=self.config.tcp_nodelay,
                proxies=trusted_proxies(self.config),
                reuse_port=self.config.workers > 1,
            )
        except OSError as exc:
            raise StartupRefused(
                _cannot_listen(exc, f"{port} (web)", "with web_port in the settings file")
            ) from exc
        self._web = web
        self._web_ssl = ssl_context

    def _not_listening(self) -> str | None:
        """None while the chat and file ports are listening, else why not."""
        if self._stopping:
            return "shutting down"
        if self._server is None or self.files is None or not self.files.port:
            return "not listening yet"
        return None

    def _files_port(self) -> int:
        if self.config.files_port is not None:
            return self.config.files_port
        return self.port + 1 if self.config.port else 0

    async def _purge_files_forever(self) -> None:
        """Delete expired files and abandoned uploads every file_purge_interval_seconds."""
        assert self.files is not None
        while True:
            try:
                deleted = await self.files.purge()
            except StorageUnavailable as exc:
                log.warning("File purge failed, will retry: %s", exc)
            else:
                if deleted:
                    log.info("Files: deleted %d expired or abandoned", deleted)
            await asyncio.sleep(self.config.file_purge_interval_seconds)

    async def _purge_forever(self) -> None:
        """Apply the retention settings now and every purge_interval_seconds; forget login
        attempts, limited events and account changes too old to matter.
        """
        while True:
            try:
                now = self.clock.now_ms()
                await self.storage.forget_attempts(now - int(throttle.FORGET_AFTER_SECONDS * 1000))
                await self.storage.forget_window_slots(now - throttle.LIMIT_WINDOW_MS)
                # Far longer than any poll interval: every node has long read them.
                await self.storage.forget_account_changes(now - 86_400_000)
                deleted = await self.storage.purge(now, self.config.retention_days)
            except StorageUnavailable as exc:
                log.warning("Retention purge failed, will retry: %s", exc)
            else:
                if deleted:
                    log.info("Retention: deleted %d old messages", deleted)
            await asyncio.sleep(self.config.purge_interval_seconds)

    async def stop(self) -> None:
        """Stop accepting; stop reading requests; store what was already accepted and send its
        acks; tell every client the server is shutting down; let them flush; cut the rest;
        close storage. Storing and flushing share shutdown_grace_seconds, whatever storage
        does: what is not stored by then is answered ``unavailable``; closing storage gets
        2 s more.
        """
        if self._server is None:
            return
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace_seconds
        await self._services.cancel()
        self._server.close()
        if self._web is not None:
            self._web.refuse_new()
        await self._drain()
        if self._transfers is not None:
            await self._transfers.stop()  # a transfer cut short resumes on the next start
        connections = [c for c in self.tracker.live if isinstance(c, Connection)]
        # Take no new requests, but store what was already accepted, so that every message a
        # sender was told is stored ('sent') really is, and the acks reach their senders.
        for connection in connections:
            connection.stop_reading()
        if self._hub is not None:
            # Storing may take the grace period but for a moment (at most a second) left to
            # tell the clients.
            telling = min(1.0, self.config.shutdown_grace_seconds / 2)
            await self._hub.stop(max(0.0, deadline - telling - loop.time()))
        # Requests still waiting on storage (a login, a history page) are not answered.
        await self._requests.cancel()
        for connection in connections:
            connection.close(ErrorCode.SERVER_SHUTDOWN)
        try:
            # However long storing took, the `closing` frames get their moment to leave.
            flushing = max(deadline - loop.time(), min(1.0, self.config.shutdown_grace_seconds))
            await asyncio.wait_for(self.tracker.wait_empty(), flushing)
        except TimeoutError:
            log.warning("Cutting %d connections that did not close in time", len(self.tracker.live))
            for straggler in connections:
                straggler.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._web is not None:
            await self._web.stop()
            self._web = None
            self._web_ssl = None
        if self._http is not None:
            # Up until here, so that /readyz says "shutting down" while connections drain.
            await self._http.stop()
            self._http = None
        if self.files is not None:
            await self.files.stop()
        await self._stop_bus()
        await self._end_run(self.storage)
        try:
            await asyncio.wait_for(self.storage.close(), _STORAGE_CLOSE_SECONDS)
        except TimeoutError:
            log.warning("Storage did not close within %g s; leaving it", _STORAGE_CLOSE_SECONDS)
        self._server = None

    async def _end_run(self, storage: Storage) -> None:
        """Record the clean stop, after the last write; not recorded, the next start takes the
        stop for a crash (on SQLite with "normal" it then raises the history epoch). Only for
        a run that was recorded: an unclean one before it must not pass for clean.
        """
        if not self._running:
            return
        self._running = False
        try:
            await asyncio.wait_for(storage.end_run(), _STORAGE_CLOSE_SECONDS)
        except (StorageUnavailable, TimeoutError) as exc:
            log.warning(
                "Could not record the clean stop in the database (%s): the next start will "
                "take it for a crash",
                exc or "no answer in time",
            )

    async def _drain(self) -> None:
        """With a bus, before shutting down: tell every logged-in client that this node is
        going away, and give them up to shutdown_drain_seconds to finish what is in flight and
        leave, to carry on on another node (new connections are refused already, so the
        balancer sends them elsewhere). Meanwhile everything works as before. A connection
        that is not logged in has nothing to carry over: it is closed at once.
        """
        seconds = self.config.shutdown_drain_seconds
        if self.config.bus is None or seconds <= 0:
            return
        notice = encode(GoingAway(seconds=seconds, message=_GOING_AWAY))
        told = 0
        for connection in [c for c in self.tracker.live if isinstance(c, Connection)]:
            if connection.session.state is State.ACTIVE:
                connection.write(notice)
                told += 1
            else:
                connection.close(ErrorCode.SERVER_SHUTDOWN)
        log.info("Draining: told %d connections to move to another node", told)
        try:
            async with asyncio.timeout(seconds):
                await self.tracker.wait_empty()
        except TimeoutError:
            log.info(
                "Draining: %d connections still open after %g s are closed",
                len(self.tracker.live),
                seconds,
            )

    async def __aenter__(self) -> ParleyServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _cannot_listen(exc: OSError, port: str, how: str) -> str:
    """Why a port cannot be listened on, in one line naming it and how to choose another."""
    if exc.errno == errno.EADDRINUSE:
        problem = "is in use by another program"
    elif exc.errno == errno.EACCES:
        problem = "needs privileges this user does not have (ports below 1024)"
    else:
        problem = f"cannot be listened on ({exc.strerror or exc})"
    return f"Port {port} {problem}: free it, or choose another port {how}."


def _quiet_handshake_errors(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """Failed TLS handshakes (port scanners, plain-TCP clients) are routine, not tracebacks."""
    exception = context.get("exception")
    if isinstance(exception, (OSError, TimeoutError, ConnectionError)):
        log.debug("Connection error: %s", context.get("message"))
        return
    loop.default_exception_handler(context)


async def serve(
    config: ServerConfig,
    load: Callable[[], ServerConfig] | None = None,
    worker: Worker | None = None,
) -> int:
    """Run a server until SIGTERM or SIGINT, then shut down gracefully. Returns the exit status.
    On SIGHUP, ``load`` (when given) reads the settings again and the live ones are applied.
    ``worker``: this process is one of several (``workers``), told once it serves.
    """
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_handshake_errors)
    # Handlers first: a signal that arrives while starting still means "stop gracefully".
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = ParleyServer(config)
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, _on_hangup, server, load)
    try:
        check_data_dir(config.data_dir)
        check_database_file(config.database, config.data_dir)
        await server.start()
    except (
        StartupRefused,
        CertificateProblem,
        AdminNameTaken,
        StorageUnavailable,
        BusUnavailable,
        ValueError,
    ) as exc:
        print(f"parley server: {exc}", file=sys.stderr)
        return 2
    if worker is not None:
        worker.serving(server)
    # With workers, the first speaks for them all (their log lines carry their numbers).
    speaks_for_all = worker is None or worker.number == 1
    if speaks_for_all:
        await _show_banner(config, server)
    elif worker is not None and server.metrics_port is not None:
        # The first worker printed the banner; the others only their own metrics port.
        logs.say(f"Worker {worker.number}: {_metrics_line(config, server.metrics_port)}")
    await stop.wait()
    if speaks_for_all:
        logs.say("Shutting down...")
    await server.stop()
    if worker is None:
        # With workers, the supervisor says it once every worker has stopped.
        logs.say("Server stopped.")
    return 0


async def _show_banner(config: ServerConfig, server: ParleyServer) -> None:
    host = f"[{config.host}]" if ":" in config.host else config.host
    logs.say(f"Server is running on {host}:{server.port}...")
    logs.say(f"Certificate SHA-256 fingerprint: {server.fingerprint}")
    if server.files is not None:
        logs.say(f"Files travel on port {server.files.port}.")
    if server.metrics_port is not None:
        logs.say(_metrics_line(config, server.metrics_port))
    if server.web_origin is not None:
        logs.say(f"Web client on {server.web_origin}/ (port {server.web_port})")
    logs.say(f"Database: {factory.describe(config.database, config.data_dir)}")
    if isinstance(server.storage, SqliteStorage) and not server.storage.in_memory:
        logs.say(_sqlite_durability(await server.storage.synchronous()))
    if server.history_epoch.raised:
        # The log says why at length (a warning); this line is for whoever watches the start.
        logs.say(
            f"History epoch raised to {server.history_epoch.history_epoch}: the previous run "
            'did not stop cleanly with sqlite_synchronous = "normal", so clients reload their '
            "history."
        )
    if config.bus is not None:
        from parley.bus.redis import describe

        logs.say(f"Bus: {describe(config.bus)}, node {server.node}")
    if server.admin_password is not None:
        _show_admin_password(server.admin_password)


def _metrics_line(config: ServerConfig, port: int) -> str:
    where = parse_listen(config.metrics_listen)[0] if config.metrics_listen else "127.0.0.1"
    where = f"[{where}]" if ":" in where else where
    return f"Health and metrics on http://{where}:{port}/metrics"


def _on_hangup(server: ParleyServer, load: Callable[[], ServerConfig]) -> None:
    if not server.started:
        log.warning("Reload: the server is not serving (starting or stopping); nothing reloaded")
        return
    reload(server, load)


def _sqlite_durability(level: str) -> str:
    """The start-up line saying what a SQLite commit survives, from the level read back."""
    if level == "normal":
        return (
            'SQLite commits do not wait for the disk (sqlite_synchronous = "normal"): a killed '
            "server loses no acknowledged message; a power cut may lose the last ones."
        )
    return f'SQLite commits wait for the disk (sqlite_synchronous = "{level}").'


def _epoch_raised(epoch: int) -> str:
    """What a raised history epoch means, for the log."""
    return (
        "The previous run did not stop cleanly while its SQLite commits did not wait for the "
        'disk (sqlite_synchronous = "normal"): a power cut or a system crash may have taken '
        "back its last messages, and their seq numbers would now go to new ones. History epoch "
        f"raised to {epoch}: clients reload their history instead of trusting what they showed. "
        'With sqlite_synchronous = "full" this never happens.'
    )


def _show_admin_password(password: str) -> None:
    logs.say(
        f"Created the account 'admin' with password {password}\n"
        "  It is shown only this once: log in as admin and change it with /passwd,\n"
        "  or set another with 'parley admin reset admin'."
    )
    if not sys.stdout.isatty():
        logs.say(
            "  This output is not a terminal: the password is now also in whatever keeps it\n"
            "  (a log file, the service manager's journal). Change it after logging in."
        )


def _raise_file_limit() -> None:
    """Every connection is a file descriptor; the usual soft limit (1,024) is far too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(
    config: ServerConfig,
    load: Callable[[], ServerConfig] | None = None,
    worker: Worker | None = None,
) -> int:
    """Run :func:`serve` on uvloop when it is installed, else on asyncio's own loop. ``load``
    reads the settings again on SIGHUP; ``worker``: this process is one of several.
    """
    refused = logs.start(
        config.log_level, config.log_format, config.log_file, config.log_queue_lines
    )
    if refused is not None:
        print(f"parley server: {refused}", file=sys.stderr)
        return 2
    status = 1
    try:
        keep_files_private()
        _raise_file_limit()
        try:
            import uvloop
        except ImportError:
            # The TLS transport needs add_reader/add_writer, which only selector loops have.
            with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
                status = runner.run(serve(config, load, worker))
        else:
            status = uvloop.run(serve(config, load, worker))
    finally:
        # The last lines (a traceback too) are written before the process ends.
        status = logs.finish(status)
    return status
