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
        formatter = logging.Formatter(FORMAT, DATE_FORMAT)
        formatter.converter = time.gmtime
        result.setFormatter(formatter)
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
