"""The log's JSON lines: one parseable object per record, the fields given with ``extra=``,
and a bug's traceback in a field of the same line. The writer thread: output that does not
take lines costs dropped lines (counted, and told once it drains), never a waiting caller."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    assert logs.shutdown()
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
    assert logs.flush()
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
    assert logs.flush()
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
    assert logs.flush()
    lines = out.getvalue().splitlines()
    assert (
        "Failed to restore the pool connection floor; retrying: ConnectionRefusedError: "
        in (lines[0])
    )
    assert "Traceback" not in lines[0] and "exception" not in lines[0]
    assert "Traceback" in out.getvalue()  # the server's own record keeps its traceback


class _Stuck(io.StringIO):
    """A stream whose writes wait until it is let go: a pipe nobody reads, a stalled disk."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.let_go = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        assert self.let_go.wait(30), "never let go"
        return super().write(text)


def _in_a_thread(work: object) -> None:
    """Run ``work`` (a callable) and fail the test if it does not return within 30 s."""
    assert callable(work)
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "logging waited for the output"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_lines_the_output_cannot_take_are_dropped_counted_and_told_once(
    restore_logging: None, log_format: str
) -> None:
    out = _Stuck()
    logs.configure("info", out, log_format=log_format)
    log = logging.getLogger("parley.test")
    log.info("first", extra={"peer": "p0"})
    assert out.writing.wait(30)  # the writer holds the first line, stuck on it
    before = logs.dropped_lines()
    extra_lines = 250

    def burst() -> None:
        for n in range(logs.QUEUE_LINES + extra_lines):
            log.info("line %d", n, extra={"peer": f"p{n}"})

    _in_a_thread(burst)
    assert logs.dropped_lines() - before == extra_lines
    out.let_go.set()
    assert logs.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + logs.QUEUE_LINES + 1
    told = [line for line in lines if "log lines dropped" in line]
    assert len(told) == 1 and told[0] == lines[-1]
    if log_format == "json":
        notice = json.loads(told[0])
        assert (notice["level"], notice["logger"]) == ("warning", "parley.logs")
        assert (notice["dropped"], notice["output"]) == (extra_lines, "the log's stream")
        # The lines kept are whole, with their fields, in the order they were logged.
        assert json.loads(lines[1])["peer"] == "p0" and json.loads(lines[1])["message"] == "line 0"
    else:
        assert f"WARNING parley.logs: {extra_lines} log lines dropped: the log's stream" in told[0]
        assert lines[-2].endswith(f"line {logs.QUEUE_LINES - 1}")
    # Draining again tells nothing more: once per episode.
    log.info("after")
    assert logs.flush()
    assert sum("log lines dropped" in line for line in out.getvalue().splitlines()) == 1


def test_shutdown_writes_what_was_queued_and_gives_up_on_stuck_output(
    tmp_path: Path, restore_logging: None
) -> None:
    log_file = tmp_path / "server.log"
    logs.configure("debug", log_file=log_file)
    log = logging.getLogger("parley.test")
    for n in range(2000):
        log.debug("queued %d", n)
    assert logs.shutdown()
    assert log_file.read_text().count("DEBUG parley.test: queued ") == 2000
    assert not [t for t in threading.enumerate() if t.name == "parley-log-writer"]
    # After the writer ended, a record is still written (directly).
    log.info("late")
    assert log_file.read_text().endswith("INFO parley.test: late\n")

    out = _Stuck()
    logs.configure("info", out)
    log.info("stuck on this one")
    assert out.writing.wait(30)
    assert not logs.flush(0.1)
    assert not logs.shutdown(0.1)  # bounded: the caller is not held by the stuck output
    out.let_go.set()
    assert logs.shutdown()


def test_configuring_again_reuses_the_writer_and_reopens_the_file(
    tmp_path: Path, restore_logging: None
) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    logs.configure("info", log_file=first)
    log = logging.getLogger("parley.test")
    log.info("one")
    logs.configure("info", log_file=second, log_format="json")
    log.info("two", extra={"peer": "x"})
    logs.configure("info", log_file=second, log_format="json")  # a reload with nothing changed
    log.info("three")
    assert logs.flush()
    assert [t.name for t in threading.enumerate()].count("parley-log-writer") == 1
    assert "INFO parley.test: one" in first.read_text()
    assert [json.loads(line)["message"] for line in second.read_text().splitlines()] == [
        "two",
        "three",
    ]
