"""The server's settings: one object, a default for every setting, units in the names.

Settings come from the defaults, then a TOML file (``--config``), then ``PARLEY_*`` environment
variables, then command-line options (the layering is in :mod:`parley.config_sources`).
Every value is checked in one place (:func:`check_setting`: its type, then its range or its
choices), and an error names the setting, where its value came from and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from parley.paths import default_data_dir
from parley.protocol.limits import MAX_HISTORY_MESSAGES

ROOM_CREATION = ("everyone", "accounts", "moderators")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
SQLITE_SYNCHRONOUS = ("full", "normal")
# Where the settings are described, for error messages.
SETTINGS_DOC = "docs/server-settings.md"


class ConfigError(ValueError):
    """A setting cannot be used; the message names it, its source and what to do."""


@dataclasses.dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7976
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    # PEM files; when both are unset a self-signed pair is made in data_dir on first start.
    cert_file: Path | None = None
    key_file: Path | None = None
    # Extra names (DNS or IP) for the generated certificate, beyond localhost and loopback.
    hostnames: tuple[str, ...] = ()

    # A TLS handshake (plain TCP, a stalled peer) must finish within this.
    tls_handshake_timeout_seconds: float = 10.0
    # After TLS, the hello must arrive within this.
    hello_timeout_seconds: float = 10.0
    # After the hello, a nickname must be accepted within this: a person is typing it.
    login_timeout_seconds: float = 300.0

    # Per connection token bucket for requests: a burst, then a steady rate. A client that keeps
    # sending while refused runs the bucket into debt; past flood_debt_requests it is dropped.
    flood_burst_requests: int = 30
    flood_rate_per_second: float = 10.0
    flood_debt_requests: int = 60
    # What a listing (rooms, who, list, history, files) costs in every request bucket, where
    # any other request costs 1: it makes the server read and encode far more.
    expensive_request_cost: int = 5
    # Buckets that outlive a connection, in the same units: one per address group (an IPv6 /64
    # is one; generous, as many people share a NAT), one per account or guest (all its
    # connections together). A request either would refuse gets "rate-limited".
    request_burst_per_address: int = 5000
    request_rate_per_address: float = 1000.0
    request_burst_per_principal: int = 150
    request_rate_per_principal: float = 30.0
    # One more bucket for all the guests of an address group together: a guest id is new at
    # every login, so a guest's own bucket alone would be full again after each reconnection.
    # As shipped it holds guests to a smaller burst than the address's and the same rate (a
    # NAT full of guests still chats); lower it where guests from one address misbehave.
    request_burst_guests_per_address: int = 2000
    request_rate_guests_per_address: float = 1000.0
    # A connection cut for flooding keeps its account from logging in again this long (0:
    # never), so that reconnecting does not buy a fresh burst; its address group gets a
    # strike, and a group with flood_penalty_strikes strikes, each within this long of the
    # last, is refused new connections this long. One flooder does not lock out a whole NAT.
    flood_penalty_seconds: float = 30.0
    flood_penalty_strikes: int = 3

    # Bytes queued for a client that does not read. Past this it is disconnected, so one slow
    # reader never holds memory without bound or delays anyone else.
    send_buffer_limit_bytes: int = 1024 * 1024

    # Off (Nagle's algorithm on), as IRC servers run: while a client has not yet acknowledged
    # what it was sent, the kernel gathers the next frames into one segment. In a room of 1,000
    # at 200 messages/s that took the server's CPU per delivery from 4.1 to 2.9 microseconds,
    # for a median latency of about 38 ms instead of 11 ms. At everyday rates it changes
    # nothing measurable. On: every write leaves at once, for the lowest latency under load.
    tcp_nodelay: bool = False

    # Many people share one address (NAT, offices): generous, and separate from flood control.
    # Counted from accept, TLS handshakes included, per address group (an IPv6 /64 is one).
    max_connections_per_address: int = 1000
    max_connections: int = 50_000
    # TCP load balancers (addresses or CIDR networks) whose connections start with a PROXY
    # protocol header (v2, or v1) naming the real client: from these, the header is required
    # and the client it names is the one every per-address limit, ban and log line sees.
    # From any other address a header is not honoured. On the chat and file ports.
    proxy_protocol_from: tuple[str, ...] = ()

    # Where accounts, rooms and history live: None for the SQLite file in data_dir, or a URL
    # (postgresql://user@host/db, sqlite:///path).
    database: str | None = None
    # SQLite only: "full" waits for the disk at every commit (an acknowledged message survives
    # a power cut); "normal" leaves that to the WAL checkpoint (it survives the process being
    # killed, not a power cut or an operating system crash), for lower latency under load.
    sqlite_synchronous: str = "full"
    # The cluster bus, redis://HOST:PORT/DB: nodes that share it (and one PostgreSQL
    # database) serve one chat. None: this process alone, with its in-process bus.
    bus: str | None = None
    # Server processes on this machine, sharing the chat, file and web ports (SO_REUSEPORT),
    # the bus and the database, so that one machine uses all its cores. More than one needs
    # a bus and PostgreSQL; a parent process starts and restarts them (server/workers.py).
    workers: int = 1
    # Guests chat under any free unregistered nickname; off, every user needs an account.
    allow_guests: bool = True
    # Who may create a room by joining it: "everyone", "accounts" or "moderators".
    room_creation: str = "everyone"
    # argon2id cost: OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane), about 30 ms a
    # hash here. Raising them rehashes each account at its next login.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    # A saved login (session token) lasts this long without the password.
    session_days: float = 30.0
    # How often the server looks for accounts changed by another process (parley admin reset,
    # delete, role): a revoked login is cut within this.
    revocation_poll_seconds: float = 1.0
    # Rooms a user (not a moderator) may create per hour, and all users of one address together.
    rooms_per_principal_per_hour: int = 10
    rooms_per_address_per_hour: int = 30
    # Accounts one address group may register per hour.
    registrations_per_address_per_hour: int = 3
    # Messages older than this are deleted (None: kept forever); rooms may set their own.
    retention_days: int | None = None
    # Messages of a room's history sent to someone joining it.
    history_on_join: int = 50
    # A room with more members than this on the server is told of joins and parts as a
    # summary ("members": how many came and went) every room_summary_seconds, not one by one:
    # one by one, filling a room of N costs N^2/2 deliveries.
    room_announce_limit: int = 300
    room_summary_seconds: float = 2.0
    # How often the retention purge runs.
    purge_interval_seconds: float = 3600.0

    # File sharing. The bytes travel on their own port: None means the chat port + 1 (or
    # any free port when the chat port is 0).
    files_port: int | None = None
    max_file_bytes: int = 100 * 1024 * 1024
    # What one account's files may take in all, uploads in progress included.
    file_quota_bytes: int = 1024 * 1024 * 1024
    # Guests may share files (off: only accounts may)...
    allow_guest_files: bool = True
    # ...and all guests of one address share one quota of this size: new guest names do not
    # make more room.
    guest_file_quota_bytes_per_address: int = 256 * 1024 * 1024
    file_expiry_days: float = 7.0
    max_uploads_in_progress: int = 3
    # Download and upload tokens one account or guest may hold unused at once (each lasts 5
    # minutes); past it, "get" and "share" are refused with "too-many-tokens".
    max_tokens_per_principal: int = 20
    # An upload connection silent this long is closed (its bytes kept, to resume)...
    upload_stall_seconds: float = 30.0
    # ...and an upload not finished within this is deleted by the purge.
    unfinished_upload_seconds: float = 3600.0
    file_purge_interval_seconds: float = 60.0
    # Connections on the file port, counted from accept (TLS handshake included) like the chat
    # port's. Each transfer is heavy (up to 256 KiB of buffers, a thread's share of the CPU), and
    # a client needs only a few at once (max_uploads_in_progress, a few downloads): a host
    # cannot hold the port with idle handshakes, while an office behind one address still can
    # move many files at once.
    max_file_connections_per_address: int = 100
    max_file_connections: int = 2000

    # Health and metrics over HTTP ("HOST:PORT", "[::1]:9976"): /healthz, /readyz and /metrics
    # in the Prometheus text format. None (or "") is off: nothing listens.
    metrics_listen: str | None = None

    # The web client over HTTPS on the chat's address (host), with its WebSocket at /ws. None
    # is off; 0 is any free port.
    web_port: int | None = None
    # Where browsers reach the web client ("https://chat.example.org"): a WebSocket upgrade from
    # any other origin is refused. None means https://<host>:<web_port>.
    web_public_url: str | None = None

    # Message of the day: each line is sent as a 'notice' to every user who logs in.
    motd: str = ""

    # On SIGTERM/SIGINT: how long connections get to flush and close before being cut.
    shutdown_grace_seconds: float = 5.0
    # With a bus, before that: how long clients get to move to another node once told the
    # node is going away (a rolling restart). 0: no such warning.
    shutdown_drain_seconds: float = 10.0

    # The least severe log records written: "debug", "info", "warning" or "error".
    log_level: str = "info"
    # "text": one readable line per record; "json": one JSON object per line, for collectors.
    log_format: str = "text"
    # The log's file (appended to; reopened when logrotate moves it), or None for stdout.
    log_file: Path | None = None
    # Log lines waiting for an output that is slow to take them; beyond, they are dropped.
    log_queue_lines: int = 10_000
    # Make the account 'admin' when no administrator exists, even in a database that is not new
    # (after the last administrator was deleted). A new database always gets one.
    init_admin: bool = False

    @classmethod
    def from_toml(
        cls, path: Path, overrides: Mapping[str, Any] | None = None, flags: Mapping[str, str] = {}
    ) -> ServerConfig:
        """Read settings from a TOML file (keys are the field names), then apply ``overrides``
        (from the command line; ``flags`` names the option each came from).

        Raises ConfigError naming the file, and the key when one is unknown or wrong.
        """
        values = read_settings_file(path)
        config = cls()
        config.apply(values, lambda name: f"{path}:{name}")
        config.apply(overrides or {}, lambda name: flags.get(name, name))
        return config

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], flags: Mapping[str, str] = {}) -> ServerConfig:
        """Settings from ``values`` over the defaults; ``flags`` names the command-line option
        each came from. Raises ConfigError.
        """
        config = cls()
        config.apply(values, lambda name: flags.get(name, name))
        return config

    def apply(self, values: Mapping[str, Any], source: Any) -> None:
        """Check and set each of ``values``; ``source(name)`` says where it came from (a file's
        key, an option), for the error message. Raises ConfigError.
        """
        fields = {field.name: field for field in dataclasses.fields(self)}
        for name, value in values.items():
            if name not in fields:
                close = difflib.get_close_matches(name, fields, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"see {SETTINGS_DOC}"
                raise ConfigError(f"{source(name)}: unknown setting {name!r}; {hint}")
            setattr(self, name, check_setting(name, fields[name].type, value, source(name)))


def read_settings_file(path: Path, named_by: str = "--config") -> dict[str, Any]:
    """The settings in the TOML file ``path`` (``named_by``: the option or variable that
    named it, for the error message). Raises ConfigError.
    """
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(
            f"{named_by} {path}: no such file. Give the path of a TOML settings file "
            f"(see {SETTINGS_DOC})."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{named_by} {path}: cannot be read: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}. Fix that line.") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Bounds:
    """What a numeric setting may be: ``low`` to ``high``, ``low`` itself excluded when
    ``above`` (a duration of zero seconds would mean "never wait").
    """

    low: float
    high: float = math.inf
    above: bool = False

    def allows(self, value: float) -> bool:
        return (value > self.low if self.above else value >= self.low) and value <= self.high

    def describe(self) -> str:
        low = _number(self.low)
        if self.high == math.inf:
            return f"more than {low}" if self.above else f"at least {low}"
        return f"from {low} to {_number(self.high)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_PORT = Bounds(0, 65535)
_POSITIVE = Bounds(0, above=True)
_COUNT = Bounds(1)
# More processes than this on one machine is a mistake (a typed 1000 for 10), not a plan.
MAX_WORKERS = 256
# Every numeric setting has bounds; test_config checks that none is left out.
BOUNDS: dict[str, Bounds] = {
    "port": _PORT,
    "files_port": _PORT,
    "web_port": _PORT,
    "tls_handshake_timeout_seconds": _POSITIVE,
    "hello_timeout_seconds": _POSITIVE,
    "login_timeout_seconds": _POSITIVE,
    "flood_burst_requests": _COUNT,
    "flood_rate_per_second": _POSITIVE,
    "flood_debt_requests": Bounds(0),
    "expensive_request_cost": Bounds(1, 1000),
    "request_burst_per_address": _COUNT,
    "request_rate_per_address": _POSITIVE,
    "request_burst_per_principal": _COUNT,
    "request_rate_per_principal": _POSITIVE,
    "request_burst_guests_per_address": _COUNT,
    "request_rate_guests_per_address": _POSITIVE,
    "flood_penalty_seconds": Bounds(0, 86400),
    "flood_penalty_strikes": Bounds(1, 1000),
    "max_tokens_per_principal": Bounds(1, 100_000),
    # Below a few frames' worth, every reader would count as slow.
    "send_buffer_limit_bytes": Bounds(64 * 1024),
    "max_connections_per_address": _COUNT,
    "log_queue_lines": Bounds(100, 1_000_000),
    "max_connections": _COUNT,
    "argon2_time_cost": _COUNT,
    # argon2 needs 8 KiB per lane.
    "argon2_memory_kib": Bounds(8, 4 * 1024 * 1024),
    "argon2_parallelism": Bounds(1, 64),
    "session_days": _POSITIVE,
    "retention_days": Bounds(0),
    "history_on_join": Bounds(0, MAX_HISTORY_MESSAGES),
    "room_announce_limit": Bounds(0),
    # At least a tenth of a second: a summary per member and room is no cheaper than the
    # announcements it replaces when it comes with every join.
    "room_summary_seconds": Bounds(0.1, 3600),
    "purge_interval_seconds": _POSITIVE,
    "max_file_bytes": _COUNT,
    "file_quota_bytes": _COUNT,
    "file_expiry_days": _POSITIVE,
    "max_uploads_in_progress": _COUNT,
    "upload_stall_seconds": _POSITIVE,
    "unfinished_upload_seconds": _POSITIVE,
    "file_purge_interval_seconds": _POSITIVE,
    "shutdown_grace_seconds": Bounds(0),
    "shutdown_drain_seconds": Bounds(0),
    "revocation_poll_seconds": _POSITIVE,
    "rooms_per_principal_per_hour": Bounds(0),
    "rooms_per_address_per_hour": Bounds(0),
    "registrations_per_address_per_hour": Bounds(0),
    "guest_file_quota_bytes_per_address": Bounds(0),
    "max_file_connections_per_address": _COUNT,
    "max_file_connections": _COUNT,
    "workers": Bounds(1, MAX_WORKERS),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "room_creation": ROOM_CREATION,
    "log_level": LOG_LEVELS,
    "log_format": LOG_FORMATS,
    "sqlite_synchronous": SQLITE_SYNCHRONOUS,
}


def parse_listen(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (an IPv6 address in brackets: ``"[::1]:9976"``) as (host, port).
    Raises ValueError saying what is wrong.
    """
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isascii() or not port.isdigit():
        raise ValueError("must be HOST:PORT, like 127.0.0.1:9976 or [::1]:9976")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host or ":" not in host:
            raise ValueError("has brackets around something that is not an IPv6 address")
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError("must put an IPv6 address in brackets, like [::1]:9976")
    if any(char.isspace() for char in host):
        raise ValueError("has a space in its host")
    number = int(port)
    if not _PORT.allows(number):
        raise ValueError(f"has port {number}; it must be {_PORT.describe()}")
    return host, number


def _check_bus(value: str) -> str | None:
    """A Redis URL, or None for "" (no bus: one process)."""
    if not value.strip():
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("is not a Redis URL: use redis://HOST:PORT/DB")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError("names a Redis database that is not a number: use redis://HOST:PORT/DB")
    return value


def _check_listen(value: str) -> str | None:
    """An address to listen on, or None for "" (off)."""
    if not value.strip():
        return None
    parse_listen(value)
    return value


def public_origin(url: str) -> str:
    """The origin (scheme, host and port, as a browser sends it in ``Origin``) of a web
    address like ``https://chat.example.org/``. Raises ValueError saying what is wrong.
    """
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme != "https":
        raise ValueError("must start with https:// (the web client is served over HTTPS only)")
    if not parsed.hostname or parsed.username is not None or parsed.password is not None:
        raise ValueError("must name a host, like https://chat.example.org")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise ValueError("must be the site alone, with no path, like https://chat.example.org")
    try:
        port = parsed.port
    except ValueError as exc:
        raise ValueError(f"has a bad port ({exc})") from None
    host = parsed.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}" if port in (None, 443) else f"https://{host}:{port}"


def _check_public_url(value: str) -> str | None:
    """A web address, or None for "" (the default: the listening address)."""
    if not value.strip():
        return None
    public_origin(value)
    return value.strip()


def parse_networks(
    values: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses and CIDR networks (``10.0.0.5``, ``10.0.0.0/24``, ``fd00::/64``) as networks.
    Raises ValueError saying which one is wrong.
    """
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip()))
        except ValueError as exc:
            if "has host bits set" in str(exc):
                whole = ipaddress.ip_network(value.strip(), strict=False)
                raise ValueError(
                    f"has {value!r}, which has host bits set: did you mean {whole}?"
                ) from None
            raise ValueError(f"has {value!r}, which is not an address or a CIDR network") from None
    return tuple(networks)


def _check_networks(values: tuple[str, ...]) -> tuple[str, ...]:
    parse_networks(values)
    return tuple(value.strip() for value in values)


# Settings whose text has a form of its own: each function returns the value to keep, or
# raises ValueError saying what is wrong with it.
FORMATS: dict[str, Callable[[Any], Any]] = {
    "bus": _check_bus,
    "metrics_listen": _check_listen,
    "web_public_url": _check_public_url,
    "proxy_protocol_from": _check_networks,
}


def check_setting(name: str, annotation: object, value: Any, source: str) -> Any:
    """``value`` converted to the setting's type and checked against its bounds or choices.
    Raises ConfigError naming ``source``.
    """
    converted = _coerce(annotation, value)
    if converted is _WRONG_TYPE:
        raise ConfigError(f"{source}: {value!r} is not {_kind(annotation)}. See {SETTINGS_DOC}.")
    bounds = BOUNDS.get(name)
    if (
        bounds is not None
        and converted is not None
        and not (math.isfinite(converted) and bounds.allows(converted))
    ):
        raise ConfigError(
            f"{source}: {value!r} is out of range; it must be {bounds.describe()}. "
            f"See {SETTINGS_DOC}."
        )
    choices = CHOICES.get(name)
    if choices is not None and converted not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ConfigError(f"{source}: {value!r} is not one of {allowed}. See {SETTINGS_DOC}.")
    form = FORMATS.get(name)
    if form is not None and converted is not None:
        try:
            return form(converted)
        except ValueError as exc:
            raise ConfigError(f"{source}: {value!r} {exc}. See {SETTINGS_DOC}.") from None
    return converted


_WRONG_TYPE = object()

# What a setting's type is called in an error, in the words the environment variables use.
_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text (in quotes in a TOML file)",
    "Path": "a path (in quotes in a TOML file)",
    "tuple[str, ...]": 'a list of text, like ["a", "b"]',
}


def _kind(annotation: object) -> str:
    text = str(annotation).removesuffix(" | None")
    return _KINDS.get(text, text)


def _coerce(annotation: object, value: Any) -> Any:
    """Convert a TOML or command-line value to the field's type, or return _WRONG_TYPE."""
    kind = str(annotation)
    if kind.endswith(" | None") and kind != "Path | None":
        if value is None:
            return None
        kind = kind.removesuffix(" | None")
    try:
        if "Path" in kind:
            if value is not None and not isinstance(value, str | Path):
                raise TypeError
            return None if value is None else Path(value)
        if kind.startswith("tuple"):
            # A lone string is iterable too, but would become a tuple of its characters.
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise TypeError
            return tuple(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        # Numbers are numbers: int() and float() would also take "7000" (a quoted value in a
        # TOML file, which is text) and int() would quietly truncate 8000.5 to 8000.
        if kind == "float":
            if isinstance(value, bool | str):
                raise TypeError
            return float(value)
        if kind == "int":
            if isinstance(value, bool | float | str):
                raise TypeError
            return int(value)
        if not isinstance(value, str):
            raise TypeError
        return value
    except (TypeError, ValueError):
        return _WRONG_TYPE
