"""SIGHUP: read the settings again (file and environment; the command line is kept) and apply
those that can change while serving, without dropping a connection.

Live settings are written into the running server's one ServerConfig, which every part reads
when it needs a value: a new connection gets the new flood and timeout numbers, the next login
the new motd, the next purge the new retention. The certificate and key are read from disk
again and new handshakes use them; connections already open keep theirs. Everything else
(ports, addresses, the data dir, the database, hashing cost...) is read once at start: a change
is logged as needing a restart and left as it was. A settings file with a mistake, a log file
that cannot be opened or a certificate that does not load is logged, and what was in use is
kept.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from parley import logs
from parley.config import ConfigError, ServerConfig
from parley.config_sources import shown
from parley.server.preflight import exposure
from parley.tls import CertificateProblem

if TYPE_CHECKING:
    from parley.server.app import ParleyServer

log = logging.getLogger("parley.server")

_LOGGING = ("log_level", "log_format", "log_file")
_CERTIFICATE = ("cert_file", "key_file")
# Settings read each time they are used, or handed on by :func:`reload`.
LIVE_SETTINGS = frozenset(
    {
        *_LOGGING,
        *_CERTIFICATE,
        "motd",
        "allow_guests",
        "room_creation",
        "history_on_join",
        "room_announce_limit",
        "room_summary_seconds",
        "session_days",
        "hello_timeout_seconds",
        "login_timeout_seconds",
        "flood_burst_requests",
        "flood_rate_per_second",
        "flood_debt_requests",
        "expensive_request_cost",
        "max_tokens_per_principal",
        "send_buffer_limit_bytes",
        "max_connections_per_address",
        "max_connections",
        "max_file_connections_per_address",
        "max_file_connections",
        "retention_days",
        "purge_interval_seconds",
        "file_purge_interval_seconds",
        "max_file_bytes",
        "file_quota_bytes",
        "allow_guest_files",
        "guest_file_quota_bytes_per_address",
        "file_expiry_days",
        "max_uploads_in_progress",
        "upload_stall_seconds",
        "unfinished_upload_seconds",
        "shutdown_grace_seconds",
    }
)


def reload(server: ParleyServer, load: Callable[[], ServerConfig]) -> None:
    """Read the settings with ``load`` and apply them to ``server`` (see the module's doc).
    Never raises for a bad setting or file: each problem is logged.
    """
    try:
        new = load()
    except (ConfigError, ValueError) as exc:
        problems = "; ".join(str(exc).splitlines())
        log.error("Reload refused, the settings in use are kept: %s", problems)
        return
    current = server.config
    changed = [
        field.name
        for field in dataclasses.fields(current)
        if getattr(current, field.name) != getattr(new, field.name)
    ]
    # Always: the log file is opened afresh, as a logrotate postrotate script expects.
    try:
        logs.configure(new.log_level, log_format=new.log_format, log_file=new.log_file)
    except OSError as exc:
        log.error(
            "Reload: log_file %s cannot be opened (%s); the log stays as it was",
            new.log_file,
            exc.strerror,
            extra={"setting": "log_file"},
        )
        _keep(new, current, _LOGGING)
    try:
        server.reload_certificate(*_certificate_files(new, current))
    except CertificateProblem as exc:
        log.error(
            "Reload: the certificate was not reloaded, the one in use is kept: %s",
            exc,
            extra={"setting": "cert_file"},
        )
        _keep(new, current, _CERTIFICATE)
    _warn_if_exposed(current.data_dir)
    applied = []
    for name in changed:
        old_value, new_value = getattr(current, name), getattr(new, name)
        if old_value == new_value:
            continue  # kept above
        if name in LIVE_SETTINGS:
            setattr(current, name, new_value)
            applied.append(name)
        else:
            log.warning(
                "Reload: %s changed from %s to %s, which needs a restart; %s stays in use",
                name,
                shown(name, old_value),
                shown(name, new_value),
                shown(name, old_value),
                extra={"setting": name},
            )
    server.apply_limits()
    log.info(
        "Reloaded the settings; changed: %s",
        ", ".join(applied) or "none",
        extra={"changed": ",".join(applied)},
    )


def _warn_if_exposed(data_dir: Path) -> None:
    """A certificate renewed with the usual umask (0644) serves well now, but the next start
    refuses the data dir: say so at the reload, while someone is watching."""
    try:
        problem = exposure(data_dir)
    except OSError:
        return  # the data dir in use is the start's concern; nothing new to say here
    if problem is not None:
        log.warning(
            "Reload: %s; the next start refuses the data dir until then",
            problem,
            extra={"setting": "data_dir"},
        )


def _certificate_files(new: ServerConfig, current: ServerConfig) -> tuple[Path, Path]:
    """The certificate and key the new settings name, or the data dir's pair."""
    if (new.cert_file is None) != (new.key_file is None):
        given, missing = (
            ("cert_file", "key_file") if new.key_file is None else ("key_file", "cert_file")
        )
        raise CertificateProblem(f"{given} was given without {missing}: give both, or neither")
    if new.cert_file is not None and new.key_file is not None:
        return new.cert_file, new.key_file
    # The data dir is not live: its pair is the one in the data dir in use.
    return current.data_dir / "cert.pem", current.data_dir / "key.pem"


def _keep(new: ServerConfig, current: ServerConfig, names: tuple[str, ...]) -> None:
    for name in names:
        setattr(new, name, getattr(current, name))
