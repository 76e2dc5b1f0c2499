"""What the kernel knows about a process: CPU time and resident memory, read from /proc.

A server's figures include its descendants. They are found by scanning every /proc/PID/stat for
its parent, because /proc/PID/task/TID/children exists only on kernels built with
CONFIG_PROC_CHILDREN.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

_PROC = Path("/proc")
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
# Positions in /proc/PID/stat counted after the ")" that ends the command name (which may itself
# hold spaces and parentheses), so field 4 of proc(5) is index 1 here.
_PPID, _UTIME, _STIME, _CUTIME, _CSTIME, _RSS = 1, 11, 12, 13, 14, 21


def raise_open_file_limit() -> int:
    """Every connection is a file descriptor, and the servers started from here inherit this."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _stat(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:  # the process is gone
        return None
    return text.rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[_PPID]), []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        if current not in found:
            found.append(current)
            pending.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int, *, descendants: bool = True) -> float:
    """User + system CPU time. With ``descendants``, also that of every live descendant and of
    children already reaped (cutime, cstime); without, the process's own time only.
    """
    ticks = 0
    for each in process_tree(pid) if descendants else [pid]:
        fields = _stat(each)
        if fields is None:
            continue
        ticks += int(fields[_UTIME]) + int(fields[_STIME])
        if descendants:
            ticks += int(fields[_CUTIME]) + int(fields[_CSTIME])
    return ticks / _TICKS_PER_SECOND


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its live descendants."""
    pages = 0
    for each in process_tree(pid):
        fields = _stat(each)
        if fields is not None:
            pages += int(fields[_RSS])
    return pages * _PAGE_BYTES


def machine_busy_seconds() -> float:
    """Core-seconds the whole machine has spent busy since boot, from /proc/stat: with the
    server's and the generator's own time, it tells how much else was running.
    """
    first = (_PROC / "stat").read_text().split("\n", 1)[0].split()
    # user nice system idle iowait irq softirq steal (guest time is already inside user).
    ticks = [int(value) for value in first[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICKS_PER_SECOND
