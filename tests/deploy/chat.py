"""The real terminal client (``python -m parley client``) against a server in a container."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from podman_lab import Podman

from e2e.processes import Process, environment


async def start(home: Path, host: str, port: int, nick: str, *trust: str) -> Process:
    """The line-by-line client of the user whose XDG dirs are under ``home``."""
    return await Process.start(
        "-m",
        "parley",
        "client",
        "--host",
        host,
        "--port",
        str(port),
        "--nick",
        nick,
        *trust,
        env=environment(home),
    )


async def client(home: Path, port: int, nick: str, *trust: str) -> Process:
    """The client, logged in to the server at localhost:``port``."""
    process = await start(home, "localhost", port, nick, *trust)
    await process.expect("Welcome to the chat!$")
    return process


async def refused(home: Path, host: str, port: int, *trust: str) -> tuple[int, str]:
    """A client that should not get in: its exit status and what it said on stderr."""
    process = await start(home, host, port, "Mallory", *trust)
    process.end_input()
    status, out, err = await process.finish()
    assert "Welcome to the chat!" not in out
    return status, err


async def say(home: Path, port: int, nick: str, lines: list[str], *trust: str) -> None:
    """Log in, send ``lines`` and leave. The client sends each line once the one before was
    answered, so an exit status of 0 means the server acknowledged every line.
    """
    process = await client(home, port, nick, *trust)
    for line in lines:
        process.type(line)
    process.end_input()
    status, out, err = await process.finish()
    assert status == 0, f"{nick}'s client ended with {status}: {out}\n{err}"
    assert "error" not in out.lower(), out


async def history_of(home: Path, port: int, nick: str, expected: list[str], *trust: str) -> None:
    """Log in and see the ``expected`` lines (``NICK: text``) in #general's recent history."""
    process = await client(home, port, nick, *trust)
    try:
        await process.expect_all(*(rf"\[\d\d:\d\d\] {re.escape(line)}$" for line in expected))
    finally:
        process.end_input()
        await process.finish()


def wait_for_log(
    podman: Podman, container: str, pattern: str, *, count: int = 1, timeout: float
) -> None:
    """Wait until the container's output (of all its starts) has ``count`` lines matching
    ``pattern``.
    """
    regex = re.compile(pattern, re.MULTILINE)
    deadline = time.monotonic() + timeout
    while True:
        result = podman("logs", container, check=False)
        if len(regex.findall(result.stdout + result.stderr)) >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{container}: not {count} lines matching {pattern!r} within {timeout} s; "
                f"its log:\n{(result.stdout + result.stderr)[-3000:]}"
            )
        time.sleep(0.5)


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:PORT/PATH: the status and the body (stripped), a 503 included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()


def metric(page: str, name: str) -> float:
    """The value of an unlabelled sample in a Prometheus text page."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", page, re.MULTILINE)
    assert match, f"no {name} in:\n{page}"
    return float(match.group(1))


def wait_for_http(port: int, path: str, status: int, *, timeout: float) -> str:
    """Wait until GET PATH answers ``status``; returns the body."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, body = http_get(port, path)
        except OSError as exc:
            got, body = 0, str(exc)
        if got == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} answered {got} {body!r}, not {status}, for {timeout} s")
        time.sleep(0.5)
