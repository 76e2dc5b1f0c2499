"""The log's JSON lines: one parseable object per record, the fields given with ``extra=``,
and a bug's traceback in a field of the same line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_records_carry_their_fields(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("info", out, log_format="json")
    log = logging.getLogger("parley.test")
    log.debug("not written")
    log.info(
        "Connected with %s", "peer", extra={"peer": "('::1', 5)", "count": 3, "path": Path("/x")}
    )
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("Bug: %s failed", "something")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "Connected with peer"
    assert (first["level"], first["logger"]) == ("info", "parley.test")
    assert (first["peer"], first["count"], first["path"]) == ("('::1', 5)", 3, "/x")
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exception"]
    assert not {"args", "msg", "exc_info", "levelno"} & set(first)


def test_a_file_that_cannot_be_opened_leaves_the_log_as_it_was(
    tmp_path: Path, restore_logging: None
) -> None:
    out = io.StringIO()
    logs.configure("info", out)
    with pytest.raises(FileNotFoundError):
        logs.configure("debug", log_file=tmp_path / "missing" / "server.log")
    logging.getLogger("parley.test").info("still here")
    assert "INFO parley.test: still here" in out.getvalue()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_pool_reconnect_warning_is_one_line_without_its_traceback(
    restore_logging: None, log_format: str
) -> None:
    out = io.StringIO()
    logs.configure("info", out, log_format=log_format)
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError:
        logging.getLogger("asyncpg.pool").warning(
            "Failed to restore the pool connection floor; retrying", exc_info=True
        )
        logging.getLogger("parley.test").warning("A bug of ours keeps it", exc_info=True)
    lines = out.getvalue().splitlines()
    assert (
        "Failed to restore the pool connection floor; retrying: ConnectionRefusedError: "
        in (lines[0])
    )
    assert "Traceback" not in lines[0] and "exception" not in lines[0]
    assert "Traceback" in out.getvalue()  # the server's own record keeps its traceback
