"""The server's log: one line per record, with a UTC timestamp and a level, on stdout (where a
service manager collects it) or in ``log_file``, filtered by ``log_level`` / ``--log-level``.

``log_format = "json"`` writes one JSON object per line: ``ts``, ``level``, ``logger``,
``message``, and the record's structured fields (``extra={"peer": ..., "nick_key": ...}`` at
the call site). Call sites put addresses, nick keys, counts and ids in those fields, never a
chat message's text, a password or a token.

A log file is opened by a WatchedFileHandler: when logrotate moves it away, the next record
opens a new file of the same name (no ``copytruncate`` needed, no line lost or cut). A SIGHUP
(reload) also opens it afresh.

The event loop never writes a line itself: it puts each record in a bounded queue, and one
thread of the writer takes them out and writes them. Output that does not drain (a pipe nobody
reads, a stalled disk) then holds up that thread only; once the queue is full, records are
dropped and counted, and when the output takes lines again one line says how many were lost
and where. At exit the queue is written out, waiting :data:`STOP_WAIT_SECONDS` at most.
"""

from __future__ import annotations

import atexit
import copy
import datetime
import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
import traceback
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


# Records waiting for the writer (``log_queue_lines``): ten thousand lines (a few MB at most)
# ride out a burst of logins or a slow disk for a while; beyond, lines are dropped.
QUEUE_LINES = 10_000
# At exit, how long the queued lines may take to be written before the process ends anyway.
STOP_WAIT_SECONDS = 2.0


class _Wake:
    """Put in the queue to have the writer reach this point: set once every item before it is
    written (or dropped), so a caller can wait for the queue to drain.
    """

    def __init__(self, generation: int = 0) -> None:
        self.done = threading.Event()
        # Of the output in use when it was put in the queue (see _Writer.target).
        self.generation = generation


class _Stop(_Wake):
    """The writer's last item: it ends once this is reached."""


class _Line(str):
    """Plain text for stdout (start-up and shutdown lines), kept in order with the log's."""


# A record goes with the output it was logged for: one logged before a reload is written as
# it would have been before it.
_Item = tuple[int, logging.Handler, logging.LogRecord] | _Line | _Wake


class _Enqueue(logging.handlers.QueueHandler):
    """The root logger's only handler: hands each record to the writer, never waiting."""

    def __init__(self, writer: _Writer) -> None:
        super().__init__(writer.queue)
        self.writer = writer

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The message is made now, from the arguments as they are now; the exception stays
        # (unlike QueueHandler's own prepare) for the writer's text or JSON formatter, and so
        # do the fields given with ``extra=``.
        prepared = copy.copy(record)
        prepared.msg = record.getMessage()
        prepared.args = None
        return prepared

    def enqueue(self, record: logging.LogRecord) -> None:
        self.writer.put(record)


class _Writer:
    """The thread that writes the log: records from the queue to the output handler."""

    def __init__(self, output: logging.Handler, where: str, queue_lines: int) -> None:
        self.queue: queue.Queue[_Item] = queue.Queue(queue_lines)
        # The output, its name and its generation, replaced as a whole on reload. Generations
        # count the outputs: a record carries the one of its time, so the thread knows when it
        # is done with the records of an output replaced since, and closes it.
        self.target: tuple[logging.Handler, str, int] = (output, where, 0)
        self._retired: list[tuple[int, logging.Handler]] = []
        self.handler = _Enqueue(self)
        # Set by the thread as it ends: from then on records are written directly.
        self.stopped = False
        self.stop_mark: _Stop | None = None
        self._count_lock = threading.Lock()
        self.dropped = 0
        self._reported = 0
        self.thread = threading.Thread(target=self._run, name="parley-log-writer", daemon=True)

    def put(self, item: logging.LogRecord | _Line) -> None:
        output, _, generation = self.target
        if self.stopped:
            _write_directly(output, item)
            return
        try:
            self.queue.put_nowait(item if isinstance(item, _Line) else (generation, output, item))
        except queue.Full:
            with self._count_lock:
                self.dropped += 1

    def wake(self, timeout: float) -> _Wake | None:
        """A mark put in the queue (waiting ``timeout`` at most for room), or None."""
        mark = _Wake(self.target[2])
        try:
            self.queue.put(mark, timeout=timeout)
        except queue.Full:
            return None
        return mark

    def switch(self, output: logging.Handler, where: str) -> None:
        """Write to ``output`` from now on; the thread closes the previous one (it may be in
        the middle of a write to it)."""
        with self._count_lock:
            previous, _, generation = self.target
            self._retired.append((generation, previous))
            self.target = (output, where, generation + 1)
        self.wake(0)  # nobody waits for it: it only has the thread close the old one soon

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if isinstance(item, tuple):
                    generation, output, record = item
                    _write_directly(output, record)
                    self._close_retired(generation)
                elif isinstance(item, _Line):
                    _write_directly(self.target[0], item)
                else:
                    self._close_retired(item.generation)
                if isinstance(item, _Wake) or self.queue.empty():
                    self._report_drops(self.target[0])
            except Exception:  # a bug here must not end the thread: the queue would fill up
                traceback.print_exc()
            if isinstance(item, _Stop):
                self.stopped = True
            if isinstance(item, _Wake):
                item.done.set()
            if self.stopped:
                return

    def _close_retired(self, reached: int) -> None:
        """Close the outputs older than the one of generation ``reached``: the queue is in
        order, so none of their records is left."""
        with self._count_lock:
            done = [output for generation, output in self._retired if generation < reached]
            self._retired = [entry for entry in self._retired if entry[0] >= reached]
        for output in done:
            output.close()

    def _report_drops(self, output: logging.Handler) -> None:
        """Once the output takes lines again: how many were lost since the last such line."""
        with self._count_lock:
            lost = self.dropped - self._reported
            self._reported = self.dropped
        if lost == 0:
            return
        where = self.target[1]
        if where == "stdout":
            remedy = "check that whatever reads the server's output keeps reading it"
        elif where.startswith("log_file"):
            remedy = "check the disk that holds it (full, slow or stalled)"
        else:
            remedy = "check what it writes to"
        notice = logging.LogRecord(
            "parley.logs",
            logging.WARNING,
            __file__,
            0,
            f"{lost} log lines dropped: {where} did not take them as fast as they came "
            f"(a queue of {self.queue.maxsize} lines was full); {remedy}",
            None,
            None,
        )
        notice.__dict__.update(dropped=lost, output=where)  # JSON fields, as with extra=
        output.handle(notice)


def _write_directly(output: logging.Handler, item: logging.LogRecord | _Line) -> None:
    if isinstance(item, _Line):
        try:
            sys.stdout.write(item + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):  # stdout closed or gone: nothing else to tell it to
            pass
    else:
        output.handle(item)  # a failed write is handled (and told on stderr) in there


_writer: _Writer | None = None


def configure(
    level: str,
    stream: TextIO | None = None,
    log_format: str = "text",
    log_file: Path | None = None,
    queue_lines: int = QUEUE_LINES,
) -> None:
    """Send every record at ``level`` ("debug", "info", "warning", "error") or above to
    ``log_file`` or ``stream`` (default stdout) as ``log_format``, through the writer thread
    (started the first time; called again, the same thread writes to the new output and closes
    the old one: a reload reopens the file; ``queue_lines`` applies to a new thread only).
    Raises OSError when the file cannot be opened,
    leaving the log as it was.
    """
    global _writer
    new = handler(log_format, log_file, stream)
    if log_file is not None:
        where = f"log_file {log_file}"
    else:
        where = "stdout" if stream is None or stream is sys.stdout else "the log's stream"
    if _writer is None or _writer.stop_mark is not None:
        _writer = _Writer(new, where, queue_lines)
        _writer.thread.start()
    else:
        _writer.switch(new, where)
    root = logging.getLogger()
    old = root.handlers[:]
    root.handlers[:] = [_writer.handler]
    root.setLevel(level.upper())
    for previous in old:
        if isinstance(previous, logging.FileHandler):
            previous.close()


def start(
    level: str, log_format: str, log_file: Path | None, queue_lines: int = QUEUE_LINES
) -> str | None:
    """:func:`configure` at start-up: None when logging is set up, else what the operator must
    fix (the file named, the reason, the remedy).
    """
    try:
        configure(level, log_format=log_format, log_file=log_file, queue_lines=queue_lines)
    except OSError as exc:
        return (
            f"log_file {log_file}: cannot be opened for writing ({exc.strerror}): "
            "check the directory exists and the server's user may write it."
        )
    return None


def say(text: str) -> None:
    """Print ``text`` on stdout for the person running the server, through the writer when
    there is one (in order with the log's lines, never blocking the caller)."""
    if _writer is None:
        print(text, flush=True)
    else:
        _writer.put(_Line(text))


def dropped_lines() -> int:
    """Log lines this process dropped because the output did not take them in time."""
    return 0 if _writer is None else _writer.dropped


def flush(timeout: float = STOP_WAIT_SECONDS) -> bool:
    """Wait until every line logged so far is written, ``timeout`` seconds at most; False when
    the output did not take them in time."""
    if _writer is None or _writer.stopped:
        return True
    deadline = time.monotonic() + timeout
    mark = _writer.wake(timeout)
    return mark is not None and mark.done.wait(max(0.0, deadline - time.monotonic()))


def shutdown(timeout: float = STOP_WAIT_SECONDS) -> bool:
    """Write out the queue and end the writer thread, waiting ``timeout`` seconds at most.
    Records logged afterwards are written directly. False when the output did not take the
    queued lines in time (the thread then ends once it has; calling again waits again).
    """
    writer = _writer
    if writer is None:
        return True
    deadline = time.monotonic() + timeout
    if writer.stop_mark is None:
        mark = _Stop(writer.target[2])
        try:
            writer.queue.put(mark, timeout=timeout)
        except queue.Full:
            return False
        writer.stop_mark = mark
    if not writer.stop_mark.done.wait(max(0.0, deadline - time.monotonic())):
        return False
    writer.thread.join(max(0.0, deadline - time.monotonic()))
    root = logging.getLogger()
    root.handlers[:] = [writer.target[0] if h is writer.handler else h for h in root.handlers]
    return True


def finish(status: int) -> int:
    """At the end of a server process: :func:`shutdown`, then ``status``. When the output does
    not take the last lines within STOP_WAIT_SECONDS, the process ends at once with ``status``
    (its exit would otherwise wait on that same output, forever)."""
    if shutdown():
        return status
    where = _writer.target[1] if _writer is not None else "the log"
    note = (
        f"parley server: {where} did not take the last log lines within {STOP_WAIT_SECONDS:g} s; "
        "exiting without them.\n"
    )
    # stderr may be the same stuck pipe: this note gets a moment, not a wait.
    threading.Thread(target=_write_note, args=(note,), daemon=True).start()
    time.sleep(0.2)
    os._exit(status)


def _write_note(note: str) -> None:
    try:
        sys.stderr.write(note)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _after_fork_in_child() -> None:
    """A forked child (a worker) gets a writer and queue of its own: the parent's thread is not
    in the child, and its queue may have been in use at the fork."""
    global _writer
    inherited = _writer
    if inherited is None or inherited.stop_mark is not None:
        return
    output, where, _ = inherited.target
    _writer = _Writer(output, where, inherited.queue.maxsize)
    _writer.thread.start()
    root = logging.getLogger()
    root.handlers[:] = [_writer.handler if h is inherited.handler else h for h in root.handlers]


os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    """Lines still queued when a process ends without :func:`finish` (a script, a test run)
    are written; an output stuck in a write is left out of logging's own flush at exit, which
    would wait for it forever."""
    if shutdown() or _writer is None:
        return
    stuck = {id(_writer.target[0])} | {id(output) for _, output in _writer._retired}
    handlers: list[Any] = getattr(logging, "_handlerList", [])
    handlers[:] = [ref for ref in handlers if id(ref()) not in stuck]


atexit.register(_at_exit)
