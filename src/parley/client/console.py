"""The line-oriented front end: ``parley client`` / ``python client.py``.

Two ways to read input, one chat loop:

* pipes and scripts (stdin or stdout not a terminal): one line in per message, one line out per
  event, flushed, no escape codes;
* a terminal: prompt_toolkit reads the line, and incoming lines are printed above it, so what
  the user is typing is never broken up by traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import ssl
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Protocol

from parley.client.commands import execute
from parley.client.core import ChatClient, ConnectionLost, Disconnected
from parley.client.pins import CertificateChanged, PinStatus, PinStore
from parley.client.render import describe
from parley.paths import default_config_dir
from parley.protocol.errors import RequestRefused
from parley.protocol.text import for_terminal

EXIT_OK = 0
EXIT_DISCONNECTED = 1
EXIT_CERTIFICATE_CHANGED = 3

NICK_PROMPT = "Enter your nickname: "


@dataclasses.dataclass(frozen=True, slots=True)
class ClientOptions:
    host: str = "127.0.0.1"
    port: int = 7976
    nick: str | None = None
    cafile: Path | None = None
    insecure: bool = False


class Lines(Protocol):
    """Where the user's lines come from and where output lines go."""

    async def read(self, prompt: str) -> str | None:
        """The next line (without its newline), or None at end of input."""
        ...

    def write(self, line: str) -> None: ...

    async def __aenter__(self) -> Lines: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class PipeLines:
    """Lines from a pipe or file, read by a daemon thread so that any stdin works (a regular
    file cannot be polled) and a blocked read never keeps the process alive.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def __aenter__(self) -> PipeLines:
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._pump, args=(loop,), daemon=True, name="stdin").start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        sys.stdout.flush()

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside the buffered
        # reader at interpreter exit holds its lock, and Python aborts.
        pending = b""
        while chunk := os.read(sys.stdin.fileno(), 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not self._put(loop, line.decode("utf-8", errors="replace").rstrip("\r")):
                    return
        if pending:
            self._put(loop, pending.decode("utf-8", errors="replace").rstrip("\r"))
        self._put(loop, None)

    def _put(self, loop: asyncio.AbstractEventLoop, line: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(self._queue.put_nowait, line)
        except RuntimeError:  # the loop has closed: nobody is reading any more
            return False
        return True

    async def read(self, prompt: str) -> str | None:
        if prompt:
            sys.stdout.write(prompt)
            sys.stdout.flush()
        line = await self._queue.get()
        if prompt:
            # Nothing echoes piped input; echoing the answer keeps transcripts readable.
            self.write(line if line is not None else "")
        return line

    def write(self, line: str) -> None:
        print(line, flush=True)


class TerminalLines:
    """Lines typed at a terminal. While a prompt is up, output goes above it."""

    def __init__(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        self._session: PromptSession[str] = PromptSession()
        self._patch = patch_stdout(raw=False)

    async def __aenter__(self) -> TerminalLines:
        self._patch.__enter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._patch.__exit__(None, None, None)

    async def read(self, prompt: str) -> str | None:
        try:
            return await self._session.prompt_async(prompt or "> ")
        except (EOFError, KeyboardInterrupt):
            return None

    def write(self, line: str) -> None:
        print(line, flush=True)


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run_client(options: ClientOptions) -> int:
    """Connect, choose a nickname, chat until /exit or end of input. Returns the exit status."""
    if options.insecure:
        _warn(
            "WARNING: --insecure: the server's certificate is NOT verified. Anyone on the "
            "network path could read and change this chat."
        )
    pins = None
    if not options.insecure and options.cafile is None:
        pins = PinStore(default_config_dir() / "known_servers")
    try:
        client = await ChatClient.connect(
            options.host, options.port, pins=pins, cafile=options.cafile
        )
    except CertificateChanged as changed:
        _warn(changed.explain())
        return EXIT_CERTIFICATE_CHANGED
    except (OSError, ssl.SSLError, TimeoutError, ConnectionLost, RequestRefused) as exc:
        _warn(f"Cannot connect to {options.host}:{options.port}: {exc or type(exc).__name__}")
        return EXIT_DISCONNECTED
    if pins is not None and client.identity.pin_status is PinStatus.PINNED_NOW:
        _warn(
            f"First connection to {client.identity.server}: trusting its certificate from now "
            f"on.\n  SHA-256 {client.identity.fingerprint}\nCompare it with the fingerprint the "
            f"server printed when it started. Pinned in {pins.path}"
        )
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    lines: Lines = TerminalLines() if interactive else PipeLines()
    try:
        async with lines:
            return await _chat(client, lines, options.nick)
    finally:
        await client.close()


async def _chat(client: ChatClient, lines: Lines, nick: str | None) -> int:
    if not await _log_in(client, lines, nick):
        await client.bye()
        return EXIT_OK
    lines.write("Welcome to the chat!")
    shown = asyncio.create_task(_show_events(client, lines), name="show-events")
    typed = asyncio.create_task(_run_input(client, lines), name="read-input")
    done, _ = await asyncio.wait({shown, typed}, return_when=asyncio.FIRST_COMPLETED)
    if typed in done and typed.result():
        shown.cancel()
        await client.bye()
        return EXIT_OK
    typed.cancel()
    # The connection ended: let the reason be printed before leaving.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(shown, 5.0)
    return EXIT_DISCONNECTED


async def _log_in(client: ChatClient, lines: Lines, nick: str | None) -> bool:
    """Ask for a nickname until the server takes one. False when input ends first."""
    while True:
        if nick is None:
            nick = await lines.read(NICK_PROMPT)
            if nick is None:
                return False
        try:
            await client.login(nick.strip())
            return True
        except RequestRefused as refusal:
            lines.write(for_terminal(refusal.message))
        nick = None


async def _show_events(client: ChatClient, lines: Lines) -> None:
    while True:
        event = await client.next_event()
        line = describe(event, client.nick)
        if line is not None:
            lines.write(line)
        if isinstance(event, Disconnected):
            return


async def _run_input(client: ChatClient, lines: Lines) -> bool:
    """Run what the user types. True when the user leaves, False when the connection ends."""
    while True:
        line = await lines.read("")
        if line is None:
            return True
        try:
            if not await execute(client, line, lines.write):
                return True
        except ConnectionLost:
            return False
