"""Running the real ``server.py`` and ``client.py`` as processes, talking to them over pipes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 15.0


class Process:
    """A child process whose stdout is read line by line and kept, so a test can wait for a
    line and later check everything the process ever printed.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._seen = 0

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], cwd: Path = ROOT) -> Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def expect(self, pattern: str) -> re.Match[str]:
        """Wait for the next stdout line (after those already matched) that matches ``pattern``
        at its start. Fails the test after TIMEOUT_SECONDS or at end of output.
        """
        regex = re.compile(pattern)
        while True:
            while self._seen < len(self.lines):
                line = self.lines[self._seen]
                self._seen += 1
                match = regex.match(line)
                if match:
                    return match
            assert self.process.stdout is not None
            raw = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT_SECONDS)
            assert raw, (
                f"output ended while waiting for {pattern!r}; got {self.lines}"
                f"{await self._stderr_tail()}"
            )
            self.lines.append(raw.decode().rstrip("\n"))

    async def expect_all(self, *patterns: str) -> None:
        """Wait for lines matching each of ``patterns``, in any order (output from two sources,
        such as a reply and an event, can come either way round).
        """
        waiting = [re.compile(pattern) for pattern in patterns]
        while waiting:
            while self._seen < len(self.lines) and waiting:
                line = self.lines[self._seen]
                self._seen += 1
                waiting = [regex for regex in waiting if not regex.match(line)]
            if waiting:
                assert self.process.stdout is not None
                raw = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT_SECONDS)
                assert raw, (
                    f"output ended while waiting for {patterns!r}; got {self.lines}"
                    f"{await self._stderr_tail()}"
                )
                self.lines.append(raw.decode().rstrip("\n"))

    async def _stderr_tail(self) -> str:
        """What the process wrote on stderr (its last 2,000 characters), when it has ended."""
        if self.process.stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            err = await asyncio.wait_for(self.process.stderr.read(), 5)
            return f"; stderr: {err.decode(errors='replace')[-2000:]}"
        return ""

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    def end_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    async def finish(self) -> tuple[int, str, str]:
        """Wait for exit; return the status, all of stdout and all of stderr."""
        out, err = await asyncio.wait_for(self.process.communicate(), TIMEOUT_SECONDS)
        self.lines.extend(out.decode().splitlines())
        return self.process.returncode or 0, "\n".join(self.lines), err.decode()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        # A process that already ended is left for finish() to report, with its output.
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


def environment(home: Path) -> dict[str, str]:
    """The child's environment: its own XDG dirs, so pins and data stay in the test's folder."""
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(home / "config")
    env["XDG_DATA_HOME"] = str(home / "data")
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def start_server(home: Path, *args: str) -> tuple[Process, int]:
    """``python server.py --port 0``; returns the process and the port it printed."""
    server = await Process.start("server.py", "--port", "0", *args, env=environment(home))
    match = await server.expect(r"Server is running on 127\.0\.0\.1:(\d+)\.\.\.$")
    return server, int(match.group(1))


async def start_client(home: Path, port: int, *args: str) -> Process:
    return await Process.start("client.py", "--port", str(port), *args, env=environment(home))


class Lab:
    """One test's server and clients, each client with a home (XDG dirs) of its own, like a
    computer of its own. :meth:`stop` ends whatever is still running.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server: Process | None = None
        self.port = 0
        self.clients: list[Process] = []

    async def start_server(self, *args: str) -> int:
        """``server.py`` with its data under ``root/server``; returns its port."""
        self.server, self.port = await start_server(self.root / "server", *args)
        return self.port

    def home(self, name: str) -> Path:
        return self.root / name

    async def client(self, home: str, *args: str) -> Process:
        """``client.py`` for the user whose home is ``root/home``, connected to the server."""
        client = await start_client(self.home(home), self.port, *args)
        self.clients.append(client)
        return client

    async def guest(self, nick: str) -> Process:
        """``client.py --nick NICK`` in a home of its own, once it is in the chat."""
        client = await self.client(nick.lower(), "--nick", nick)
        await client.expect("Welcome to the chat!$")
        return client

    async def stop(self) -> str:
        """Kill the clients still running, stop the server; returns all the server printed."""
        for client in self.clients:
            client.kill()
        if self.server is None:
            return ""
        # A test that failed while the server was stopped (SIGSTOP) must not leave it so.
        self.server.signal(signal.SIGCONT)
        self.server.signal(signal.SIGTERM)
        status, out, err = await self.server.finish()
        self.server = None
        assert status == 0, err
        return out + err
