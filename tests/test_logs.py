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
