"""What the server counts, for Prometheus: one :class:`ServerMetrics` per server.

Each server has its own registry (never the library's global one): several servers may run in
one process, as they do in the tests. The parts that count are handed this object and call its
metrics at a few points; what is already known elsewhere (connections by state, the limits'
refusals, whether storage is degraded) is read when a scrape asks, not kept up on every change.

No label ever holds a nickname, an address, a room or any text a user sent: every label has a
small fixed set of values, so the number of series stays the same however many people connect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from parley import logs
from parley.server.tracker import ConnectionTracker

# How a login proved who it is; a guest proves nothing.
LOGIN_METHODS = ("password", "token", "guest")
# The states of a chat connection, in the order a connection goes through them.
CONNECTION_STATES = ("handshaking", "hello", "login", "active", "closing")
# Storage calls that are timed: committing a batch of messages, and the readiness probe.
TIMED_OPERATIONS = ("append", "probe")

# From a local SQLite commit (about a millisecond) to a database that no longer answers.
_STORAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Messages per commit: one for a quiet room, hundreds when a busy server groups its commits.
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
# Counting the connections by state looks at each one (tens of milliseconds for 50,000 on a
# busy machine): done at most this often, however often scrapes come.
_STATES_KEPT_SECONDS = 1.0


class ServerMetrics:
    """The server's metrics and the registry a scrape renders."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.logins = Counter(
            "parley_logins",
            "Logins that put a user online, by how the user proved who it is.",
            ["method"],
            registry=registry,
        )
        self.messages_stored = Counter(
            "parley_messages_stored",
            "Messages newly stored (a resend recognised as a duplicate is not counted).",
            registry=registry,
        )
        self.deliveries = Counter(
            "parley_deliveries",
            "Frames written to online users by the fan-out: messages, joins, parts, topics.",
            registry=registry,
        )
        self.slow_readers_cut = Counter(
            "parley_slow_readers_cut",
            "Connections cut off because they did not read (send_buffer_limit_bytes queued).",
            registry=registry,
        )
        self.storage_seconds = Histogram(
            "parley_storage_duration_seconds",
            "How long storage took to answer, failures included, by operation.",
            ["operation"],
            buckets=_STORAGE_BUCKETS,
            registry=registry,
        )
        self.batch_messages = Histogram(
            "parley_commit_batch_messages",
            "Messages stored together in one commit.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.file_received_bytes = Counter(
            "parley_file_received_bytes",
            "Bytes of shared files received on the file port (uploads).",
            registry=registry,
        )
        self.file_sent_bytes = Counter(
            "parley_file_sent_bytes",
            "Bytes of shared files sent on the file port (downloads).",
            registry=registry,
        )
        # Every label value from the start: a series that appears only once it is non-zero
        # makes rate() miss its first increase.
        for method in LOGIN_METHODS:
            self.logins.labels(method=method)
        for operation in TIMED_OPERATIONS:
            self.storage_seconds.labels(operation=operation)
        # Bound once: the commit path should not look up a label on every batch.
        self.append_seconds = self.storage_seconds.labels(operation="append")
        self.probe_seconds = self.storage_seconds.labels(operation="probe")

    def committed(self, batch_size: int, new: int) -> None:
        """A commit of ``batch_size`` messages stored ``new`` of them for the first time."""
        self.batch_messages.observe(batch_size)
        self.messages_stored.inc(new)

    def watch(
        self,
        connection_states: Callable[[], Mapping[str, int]],
        chat: ConnectionTracker,
        files: Callable[[], ConnectionTracker | None],
        storage_degraded: Callable[[], bool],
    ) -> None:
        """Read these at every scrape: the chat connections by state (every one of
        CONNECTION_STATES), the two ports' trackers, and whether storage is degraded.
        """
        self.registry.register(_LiveCollector(connection_states, chat, files, storage_degraded))

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """What the server already knows, read when a scrape asks."""

    def __init__(
        self,
        connection_states: Callable[[], Mapping[str, int]],
        chat: ConnectionTracker,
        files: Callable[[], ConnectionTracker | None],
        storage_degraded: Callable[[], bool],
    ) -> None:
        self._connection_states = connection_states
        # (when they were counted, the counts).
        self._states: tuple[float, Mapping[str, int]] | None = None
        self._chat = chat
        self._files = files
        self._storage_degraded = storage_degraded

    def describe(self) -> Iterable[Metric]:
        # Names only, so registering checks for clashes without reading the server's state.
        return [
            GaugeMetricFamily("parley_connections", "", labels=["state"]),
            GaugeMetricFamily("parley_file_connections", ""),
            CounterMetricFamily("parley_connections_refused", "", labels=["port", "limit"]),
            GaugeMetricFamily("parley_storage_degraded", ""),
            CounterMetricFamily("parley_log_lines_dropped", ""),
        ]

    def collect(self) -> Iterable[Metric]:
        states = GaugeMetricFamily(
            "parley_connections",
            "Chat connections open now, by state: TLS handshake, waiting for the hello, "
            "waiting for a nickname, logged in, closing.",
            labels=["state"],
        )
        now = time.monotonic()
        if self._states is None or now - self._states[0] >= _STATES_KEPT_SECONDS:
            self._states = (now, self._connection_states())
        counts = self._states[1]
        for state in CONNECTION_STATES:
            states.add_metric([state], counts.get(state, 0))
        yield states
        files = self._files()
        yield GaugeMetricFamily(
            "parley_file_connections",
            "Connections open now on the file port, TLS handshakes included.",
            value=files.total if files is not None else 0,
        )
        refused = CounterMetricFamily(
            "parley_connections_refused",
            "Connections refused at accept: over the per-address limit (an IPv6 /64 is one "
            "address) or over the limit for all, by port.",
            labels=["port", "limit"],
        )
        for port, tracker in (("chat", self._chat), ("files", files)):
            per_address = tracker.refused_per_address if tracker is not None else 0
            in_all = tracker.refused_in_all if tracker is not None else 0
            refused.add_metric([port, "per_address"], per_address)
            refused.add_metric([port, "total"], in_all)
        yield refused
        yield GaugeMetricFamily(
            "parley_storage_degraded",
            "1 while storage is failing (since a call failed, until one works again), else 0.",
            value=1 if self._storage_degraded() else 0,
        )
        yield CounterMetricFamily(
            "parley_log_lines_dropped",
            "Log lines this process dropped because its output (stdout or log_file) did not "
            "take them as fast as they came.",
            value=logs.dropped_lines(),
        )
