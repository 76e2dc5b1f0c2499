"""The line-oriented front end: ``parley client`` / ``python client.py``.

Two ways to read input, one chat loop:

* pipes and scripts (stdin or stdout not a terminal): one line in per message, one line out per
  event, flushed, no escape codes;
* a terminal: prompt_toolkit reads the line, and incoming lines are printed above it, so what
  the user is typing is never broken up by traffic.

Passwords are read apart from everything else: hidden on a terminal (and kept out of the line
history), never echoed from a pipe, never written anywhere. What is saved is the session token
the server gives for them (see :mod:`parley.client.credentials`).
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

from parley.client.commands import PASTE_CONFIRM_LINES, Chat, execute
from parley.client.conversations import Conversations
from parley.client.core import ChatClient, ConnectionLost, Disconnected
from parley.client.credentials import SessionStore
from parley.client.credentials import default_path as default_sessions_path
from parley.client.ignores import IgnoreList
from parley.client.ignores import default_path as default_ignores_path
from parley.client.pins import CertificateChanged, PinStatus, PinStore, server_name
from parley.client.read_markers import ReadMarkers
from parley.client.reconnect import Attempt, Connect, GaveUp, reconnect
from parley.client.render import describe, describe_unread
from parley.client.settings import ClientSettings
from parley.paths import default_config_dir, default_data_dir
from parley.protocol.errors import ErrorCode, RequestRefused
from parley.protocol.messages import GoingAway, Joined, Left, Message
from parley.protocol.text import for_terminal
from parley.tls import CertificateProblem, explain_refusal

EXIT_OK = 0
EXIT_DISCONNECTED = 1
EXIT_CERTIFICATE_CHANGED = 3
# From a pipe: the password was refused (a script must not go on as someone else).
EXIT_NOT_LOGGED_IN = 4
# A server seen for the first time was not trusted (the user said no, or --no-trust-new).
EXIT_NOT_TRUSTED = 5

# After the connection is lost, how long transfers get to say why they stopped.
_TRANSFER_GRACE_SECONDS = 1.0
# The full-screen client's input history, in the data dir.
HISTORY_FILE = "input_history"
NICK_PROMPT = "Enter your nickname: "
# Above the first unread message of a room's history.
NEW_MESSAGES = "--- new messages ---"
PASSWORD_PROMPT = "Password: "  # noqa: S105 (a prompt, not a password)
# Wrong passwords before asking for the nickname again.
PASSWORD_TRIES = 3


@dataclasses.dataclass(frozen=True, slots=True)
class ClientOptions:
    host: str = "127.0.0.1"
    port: int = 7976
    nick: str | None = None
    cafile: Path | None = None
    insecure: bool = False
    # On a terminal: the line-by-line client instead of the full-screen one (screen readers,
    # terminals without cursor addressing).
    plain: bool = False
    # A server seen for the first time: None to ask on a terminal (and trust, saying so on
    # stderr, from a pipe); True to trust without asking; False to refuse.
    trust_new: bool | None = None
    settings: ClientSettings = dataclasses.field(default_factory=ClientSettings)


class NotLoggedIn(Exception):
    """From a pipe, a login was refused: the next lines are the script's messages, never
    more password attempts.
    """


class Lines(Protocol):
    """Where the user's lines come from and where output lines go."""

    async def read(self, prompt: str) -> str | None:
        """The next line (without its newline), or None at end of input."""
        ...

    async def read_secret(self, prompt: str) -> str | None:
        """Like :meth:`read`, for a password: never shown, echoed or kept in a history."""
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

    async def read_secret(self, prompt: str) -> str | None:
        # The prompt as a whole line, at once: a script reading line by line sees the question
        # before it answers. The answer itself is never echoed.
        self.write(prompt)
        return await self._queue.get()

    def write(self, line: str) -> None:
        print(line, flush=True)


class TerminalLines:
    """Lines typed at a terminal. While a prompt is up, output goes above it."""

    def __init__(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        from parley.client.tui.history import LineHistory

        self._session: PromptSession[str] = PromptSession(history=LineHistory())
        self._secret_session: PromptSession[str] | None = None
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

    async def read_secret(self, prompt: str) -> str | None:
        if self._secret_session is None:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import DummyHistory

            # Its own session, with a history that keeps nothing: the up arrow in the chat
            # prompt must never bring a password back.
            self._secret_session = PromptSession(is_password=True, history=DummyHistory())
        try:
            return await self._secret_session.prompt_async(prompt)
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
    # A server seen for the first time is pinned only once the user trusts it.
    new_server = pins is not None and pins.pinned(server_name(options.host, options.port)) is None

    async def connect(conversations: Conversations | None = None) -> ChatClient:
        return await ChatClient.connect(
            options.host,
            options.port,
            pins=None if new_server else pins,
            cafile=options.cafile,
            conversations=conversations,
        )

    try:
        client = await connect()
    except CertificateChanged as changed:
        _warn(changed.explain())
        return EXIT_CERTIFICATE_CHANGED
    except CertificateProblem as problem:
        _warn(f"Cannot connect: {problem}")
        return EXIT_DISCONNECTED
    except ssl.SSLCertVerificationError as refused:
        why = explain_refusal(refused, options.cafile)
        _warn(f"Cannot connect to {options.host}:{options.port}: {why}")
        return EXIT_DISCONNECTED
    except (OSError, ssl.SSLError, TimeoutError, ConnectionLost, RequestRefused) as exc:
        why = exc.message if isinstance(exc, RequestRefused) else str(exc) or type(exc).__name__
        _warn(f"Cannot connect to {options.host}:{options.port}: {why}")
        return EXIT_DISCONNECTED
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if pins is not None and new_server:
        if not await _trust_new_server(client, pins, options.trust_new, interactive):
            await client.close()
            return EXIT_NOT_TRUSTED
        new_server = False
    lines: Lines = TerminalLines() if interactive else PipeLines()
    chat = Chat(
        client,
        lines.write,
        lines.read_secret,
        SessionStore(default_sessions_path()),
        ignores=IgnoreList(default_ignores_path()),
        downloads=options.settings.downloads(),
        time_format=options.settings.timestamp_format,
    )
    try:
        if interactive and not options.plain:
            return await _full_screen(chat, options, connect)
        async with lines:
            return await _chat(chat, lines, options.nick, connect if interactive else None)
    except NotLoggedIn as refused:
        _warn(f"parley client: {refused} Not logged in.")
        return EXIT_NOT_LOGGED_IN
    finally:
        await chat.client.close()


async def _trust_new_server(
    client: ChatClient, pins: PinStore, trust_new: bool | None, interactive: bool
) -> bool:
    """Ask (on a terminal, as ssh does) or decide (``--trust-new``, ``--no-trust-new``, or
    trust from a pipe, saying so on stderr) whether to trust a server seen for the first time;
    pin its certificate if so. Nothing but the hello has been sent to it yet.
    """
    server, fingerprint = client.identity.server, client.identity.fingerprint
    about = (
        f"{server} is a server this computer has not seen before. Its certificate's SHA-256 "
        f"fingerprint is\n  {fingerprint}\nCompare it with the one the server printed when it "
        "started (the line 'Certificate SHA-256 fingerprint:' of its output or log)."
    )
    if trust_new is False:
        _warn(f"{about}\nNot trusted (--no-trust-new): pin it in {pins.path} first.")
        return False
    if trust_new is None and interactive:
        print(about, flush=True)
        try:
            answer = await asyncio.to_thread(input, "Trust it and connect? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Not trusted: the connection was closed before logging in.", flush=True)
            return False
    pins.pin(server, fingerprint)
    client.identity = dataclasses.replace(
        client.identity, verified=True, pin_status=PinStatus.PINNED_NOW
    )
    if not interactive or trust_new:
        _warn(f"{about}\nTrusted from now on (pinned in {pins.path}).")
    return True


async def _full_screen(chat: Chat, options: ClientOptions, connect: Connect) -> int:
    from parley.client.tui.app import FullScreen

    async with TerminalLines() as lines:
        if not await _log_in(chat, lines, options.nick):
            await chat.client.bye()
            return EXIT_OK
    screen = FullScreen(chat, options.settings, connect, default_data_dir() / HISTORY_FILE)
    if chat.client.identity.pin_status is PinStatus.PINNED_NOW:
        screen.note(f"Certificate pinned on first use: SHA-256 {chat.client.identity.fingerprint}")
    if await screen.run():
        await screen.leave()
    return EXIT_DISCONNECTED if screen.gave_up else EXIT_OK


async def _chat(chat: Chat, lines: Lines, nick: str | None, connect: Connect | None) -> int:
    """Log in, then chat until the user leaves. With ``connect`` (a terminal), a lost connection
    is resumed as the full-screen client does; from a pipe, it ends the client.
    """
    if not await _log_in(chat, lines, nick):
        await chat.client.bye()
        return EXIT_OK
    lines.write("Welcome to the chat!")
    typed: asyncio.Task[bool] | None = None
    greet = chat.client.is_account
    while True:
        markers = ReadMarkers(chat.client)
        shown = asyncio.create_task(
            _show_events(chat, markers, moves=connect is not None), name="show-events"
        )
        # The rooms the user is in show their recent messages, as a /join does.
        with contextlib.suppress(RequestRefused, ConnectionLost):
            await chat.client.recent_history()
        if greet:
            with contextlib.suppress(ConnectionLost):
                await _greet_account(chat)
            greet = False
        if typed is None:
            # Only now: a script's first lines are run after the greeting, not during it.
            typed = asyncio.create_task(
                _run_input(chat, lines, connect is not None), name="read-input"
            )
        marking = asyncio.create_task(markers.run(), name="read-markers")
        try:
            done, _ = await asyncio.wait({shown, typed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            marking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await marking
        if typed in done and typed.result():
            if chat.transfers:
                # A script that shares a file and ends its input means the file to arrive.
                chat.out(f"Waiting for {len(chat.transfers)} transfer(s) to finish...")
                await chat.transfers.finish()
            with contextlib.suppress(ConnectionLost, TimeoutError):
                await asyncio.wait_for(markers.flush(), 5.0)
            shown.cancel()
            await chat.client.bye()
            return EXIT_OK
        # The connection ended: let the reason be printed first.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(shown), 5.0)
        # A transfer whose request was in flight learns of the loss at once: let it say so.
        await chat.transfers.cancel(grace_seconds=_TRANSFER_GRACE_SECONDS)
        lost = shown.result() if shown.done() and not shown.cancelled() else None
        if (
            connect is None
            or lost is None
            or lost.expected
            or not await _resume(chat, connect, lost)
        ):
            shown.cancel()
            typed.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
                await typed
            return EXIT_DISCONNECTED


async def _resume(chat: Chat, connect: Connect, lost: Disconnected) -> bool:
    """Connect again and carry on where the lost connection stopped, saying so line by line.
    False when that cannot be (the login is refused for good, the certificate changed).
    """

    def attempting(attempt: Attempt) -> None:
        if attempt.number == 1:
            chat.out(f"Reconnecting in {attempt.delay_seconds:.0f} s...")
        else:
            chat.out(
                f"Reconnecting (try {attempt.number}, in {attempt.delay_seconds:.0f} s): "
                f"{for_terminal(attempt.reason)}"
            )

    try:
        client, refused = await reconnect(chat.client, connect, lost.reason, attempting)
    except GaveUp as stop:
        chat.out(f"Not reconnecting: {for_terminal(stop.reason)}")
        return False
    except CertificateChanged as changed:
        _warn(changed.explain())
        return False
    chat.client = client
    chat.out(f"Reconnected to {client.identity.server}.")
    for room, refusal in refused:
        chat.out(f"Could not rejoin {for_terminal(room)}: {for_terminal(refusal.message)}")
    return True


async def _log_in(chat: Chat, lines: Lines, nick: str | None) -> bool:
    """Ask for a nickname (and its password, when it is registered and no saved login works)
    until the server takes one. False when input ends first. Raises NotLoggedIn when going on
    could put a secret or a script's message where a nickname goes (see _log_in_as).
    """
    while True:
        if nick is None:
            nick = await lines.read(NICK_PROMPT)
            if nick is None:
                return False
        logged_in = await _log_in_as(chat, lines, nick.strip())
        if logged_in is not None:
            return logged_in
        nick = None


async def _log_in_as(chat: Chat, lines: Lines, nick: str) -> bool | None:
    """Log in as ``nick``: with the saved token if there is one, else as a guest, and with a
    password if the server asks for one. True when logged in, False when input ended, None to
    ask for another nickname.

    The nickname prompt shows what is typed, so once a password was asked for it comes back
    only when the user leaves the password empty on a terminal: after a refused password
    (three wrong, throttled, ...) the client stops, as ssh does, rather than echo a next
    attempt as a nickname and send it as a guest's name or message. From a pipe, any refusal
    stops it: the script's next line is a message, not another nickname.
    """
    client, sessions, server = chat.client, chat.sessions, chat.client.identity.server
    piped = isinstance(lines, PipeLines)
    token = sessions.token(server, nick) if sessions is not None else None
    try:
        await client.login(nick, token=token)
        return True
    except RequestRefused as refusal:
        lines.write(for_terminal(refusal.message))
        if refusal.code == ErrorCode.SESSION_EXPIRED:
            chat.forget_token(nick)
        if refusal.code not in (ErrorCode.PASSWORD_REQUIRED, ErrorCode.SESSION_EXPIRED):
            if piped:
                raise NotLoggedIn(for_terminal(refusal.message)) from None
            return None
    if not piped:
        lines.write("(Leave the password empty to choose another nickname.)")
    # From a pipe there is one answer: a second one would be the script's next message.
    for _ in range(1 if piped else PASSWORD_TRIES):
        password = await lines.read_secret(PASSWORD_PROMPT)
        if password is None:
            return False
        if not password:
            if piped:
                raise NotLoggedIn(ErrorCode.PASSWORD_REQUIRED.text)
            return None
        try:
            ok = await client.login(nick, password=password)
        except RequestRefused as refusal:
            lines.write(for_terminal(refusal.message))
            if refusal.code != ErrorCode.AUTH_FAILED:
                raise NotLoggedIn(for_terminal(refusal.message)) from None
            continue
        chat.save_token(ok.token)
        return True
    raise NotLoggedIn(f"The password for {for_terminal(nick)} was refused.")


async def _greet_account(chat: Chat) -> None:
    """An account is back in its rooms: say which, and where messages wait unread."""
    rooms = list(chat.client.rooms.values())
    if len(rooms) > 1:
        chat.out(f"Your rooms: {', '.join(for_terminal(room) for room in rooms)}.")
    with contextlib.suppress(RequestRefused):
        unread = await chat.client.unread()
        if unread.conversations:
            chat.out(describe_unread(unread))


async def _show_events(chat: Chat, markers: ReadMarkers, *, moves: bool) -> Disconnected:
    """Print the events of the connection until it ends; returns how it ended. When it
    ``moves`` (it reconnects), a ``going-away`` makes it leave with nothing in flight, to be
    resumed on another server.
    """
    client = chat.client
    while True:
        event = await client.next_event()
        if isinstance(event, Message | Joined | Left) and _hidden(chat, event):
            chat.follow(event)
            continue
        line = describe(event, client.nick, time_format=chat.time_format)
        if isinstance(event, Message) and client.starts_unread(event):
            chat.out(NEW_MESSAGES)
        if line is not None:
            chat.out(line)
        if isinstance(event, Message):
            markers.shown(event)
        chat.follow(event)
        if isinstance(event, GoingAway) and moves:
            await client.move_on(event)
        if isinstance(event, Disconnected):
            return event


def _hidden(chat: Chat, event: Message | Joined | Left) -> bool:
    """An ignored user's message, join or part (a removal by a moderator is always shown)."""
    if isinstance(event, Message):
        return chat.hides(event.sender)
    return not (isinstance(event, Left) and event.reason) and chat.hides(event.nick)


async def _run_input(chat: Chat, lines: Lines, reconnects: bool) -> bool:
    """Run what the user types. True when the user leaves; False when the connection ends,
    unless it ``reconnects``: then a line typed meanwhile is refused and reading goes on.
    """
    while True:
        line = await lines.read("")
        if line is None:
            return True
        try:
            for one in await _lines_of(line, lines):
                if not await execute(chat, one):
                    return True
        except ConnectionLost:
            if not reconnects:
                return False
            lines.write("Not sent: the connection is lost. Send it again once reconnected.")


async def _lines_of(typed: str, lines: Lines) -> list[str]:
    """What a terminal gave as one entry: a paste of several lines is sent one line each, as
    in the full-screen client (more than PASTE_CONFIRM_LINES after asking), never refused whole
    for its line breaks.
    """
    if "\n" not in typed and "\r" not in typed:
        return [typed]
    text = typed.replace("\r\n", "\n").replace("\r", "\n")
    parts = [part for part in text.split("\n") if part.strip()]
    if len(parts) > PASTE_CONFIRM_LINES:
        answer = await lines.read(f"Send {len(parts)} pasted lines one by one? [y/N] ")
        if (answer or "").strip().lower() not in ("y", "yes"):
            lines.write(f"The {len(parts)} pasted lines were not sent.")
            return []
    return parts
