"""The server's log: one line per record, with a UTC timestamp and a level, on stdout (where a
service manager collects it) or in ``log_file``, filtered by ``log_level`` / ``--log-level``.

``log_format = "json"`` writes one JSON object per line: ``ts``, ``level``, ``logger``,
``message``, and the record's structured fields (``extra={"peer": ..., "nick_key": ...}`` at
the call site). Call sites put addresses, nick keys, counts and ids in those fields, never a
chat message's text, a password or a token.

A log file is opened by a WatchedFileHandler: when logrotate moves it away, the next record
opens a new file of the same name (no ``copytruncate`` needed, no line lost or cut). A SIGHUP
(reload) also opens it afresh.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any, TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# In each process of ``workers``, its number: on every line, so that the lines of processes
# sharing one log can be told apart.
_worker: int | None = None


def set_worker(number: int | None) -> None:
    """Mark every record of this process from now on as worker ``number`` (None: none)."""
    global _worker
    _worker = number


class _WorkerTag(logging.Filter):
    """Puts the worker's number on each record: JSON shows it as ``worker``."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.number
        return True


# What every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class RetryOnOneLine(logging.Filter):
    """asyncpg's pool logs a full traceback each time it fails to reconnect (about once a second
    while PostgreSQL is down), on top of the server's own "Storage degraded" line: keep each
    of those warnings to one line, the exception's type and text after the message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.name.startswith("asyncpg") and record.levelno < logging.ERROR and exc is not None:
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def handler(
    log_format: str = "text", log_file: Path | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """A handler writing ``log_format`` ("text" or "json") records to ``log_file`` (appended
    to), else to ``stream`` (default stdout). Raises OSError when the file cannot be opened.
    """
    result: logging.Handler
    if log_file is not None:
        result = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
    else:
        result = logging.StreamHandler(stream or sys.stdout)
    if log_format == "json":
        result.setFormatter(JsonFormatter())
    else:
        line = FORMAT if _worker is None else FORMAT.replace(": ", f" [worker {_worker}]: ", 1)
        formatter = logging.Formatter(line, DATE_FORMAT)
        formatter.converter = time.gmtime
        result.setFormatter(formatter)
    result.addFilter(RetryOnOneLine())
    if _worker is not None:
        result.addFilter(_WorkerTag(_worker))
    return result


def configure(
    level: str,
    stream: TextIO | None = None,
    log_format: str = "text",
    log_file: Path | None = None,
) -> None:
    """Send every record at ``level`` ("debug", "info", "warning", "error") or above to
    ``log_file`` or ``stream`` (default stdout) as ``log_format``, replacing whatever handlers
    were set before (and closing them: a reload reopens the file). Raises OSError when the file
    cannot be opened, leaving the handlers as they were.
    """
    new = handler(log_format, log_file, stream)
    root = logging.getLogger()
    old = root.handlers[:]
    root.handlers[:] = [new]
    root.setLevel(level.upper())
    for previous in old:
        if isinstance(previous, logging.FileHandler):
            previous.close()


def start(level: str, log_format: str, log_file: Path | None) -> str | None:
    """:func:`configure` at start-up: None when logging is set up, else what the operator must
    fix (the file named, the reason, the remedy).
    """
    try:
        configure(level, log_format=log_format, log_file=log_file)
    except OSError as exc:
        return (
            f"log_file {log_file}: cannot be opened for writing ({exc.strerror}): "
            "check the directory exists and the server's user may write it."
        )
    return None
