"""The server's log: one line per record, with a UTC timestamp and a level, on stdout (where a
service manager collects it), filtered by ``log_level`` / ``--log-level``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def configure(level: str, stream: TextIO | None = None) -> None:
    """Send every record at ``level`` ("debug", "info", "warning", "error") or above to
    ``stream`` (default stdout), replacing whatever handlers were set before.
    """
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
