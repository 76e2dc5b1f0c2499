"""The commands a user types, one handler each: adding a command means adding one function here
(and its test). Lines that are not commands are chat text for the current room.

Arguments are checked here before anything is sent: a bad one gets the command's usage line,
never a request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol

from parley.client import transfer
from parley.client.core import ChatClient, ConnectionLost
from parley.client.credentials import SessionStore
from parley.client.ignores import IgnoreList
from parley.client.progress import Meter
from parley.client.progress import describe as describe_progress
from parley.client.render import (
    describe,
    describe_room,
    describe_rooms,
    describe_unread,
    describe_users,
    describe_whois,
)
from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError, RequestRefused
from parley.protocol.files import human_size
from parley.protocol.messages import Left
from parley.protocol.names import (
    GENERAL_ROOM,
    is_room,
    nick_key,
    normalize_nick,
    normalize_room,
    room_key,
)
from parley.protocol.text import ACTION_PREFIX, check_message_text, for_terminal

Output = Callable[[str], None]
# Asks for a line that must not be shown or kept (a password); None at end of input.
AskSecret = Callable[[str], Awaitable[str | None]]


class Screen(Protocol):
    """What a front end with windows (the full-screen client) adds to the commands."""

    def show_conversation(self, target: str) -> None:
        """Open the window of a room or a private conversation, and bring it into view."""
        ...

    def close_window(self, target: str) -> None:
        """Close the window of ``target`` if it is open."""
        ...

    def select(self, number: int) -> bool:
        """Bring window ``number`` into view; False if there is none."""
        ...

    def clear(self) -> None:
        """Empty the window in view."""
        ...

    def progress(self, key: str, text: str | None, share: float = 0.0) -> None:
        """Show how transfer ``key`` is going, ``share`` of it done (None: it ended)."""
        ...


@dataclasses.dataclass(slots=True)
class Chat:
    """What commands work on: the connection, the user's screen, and where lines go."""

    client: ChatClient
    out: Output
    ask_secret: AskSecret
    # Where session tokens are saved; None keeps them for this run only.
    sessions: SessionStore | None = None
    # Plain lines go here: #general at first, then the room joined last...
    room: str = GENERAL_ROOM
    # ...unless a private conversation is open with /query: then to this user.
    query: str = ""
    # Room key -> the seq the next /history pages back from.
    history_cursor: dict[str, int] = dataclasses.field(default_factory=dict)
    # Nicknames whose messages are not shown; None when nothing is ignored or saved.
    ignores: IgnoreList | None = None
    # The windows of a full-screen front end; None for the line-by-line one.
    screen: Screen | None = None
    # Where /get saves files.
    downloads: Path = dataclasses.field(default_factory=Path.cwd)
    # How lines from the record are stamped (the ``timestamp_format`` setting).
    time_format: str = "%H:%M"
    # Transfers running in the background: chat goes on meanwhile.
    transfers: transfer.Transfers = dataclasses.field(default_factory=transfer.Transfers)

    @property
    def target(self) -> str:
        """Where a plain line goes: the private conversation open, else the current room."""
        return self.query or self.room

    def switch_to(self, target: str) -> None:
        """Send plain lines to ``target`` (a room, or a user for a private conversation)."""
        if target.startswith("#"):
            self.room, self.query = target, ""
        else:
            self.query = target
        if self.screen is not None:
            self.screen.show_conversation(target)
        else:
            private = "" if target.startswith("#") else " (private)"
            self.out(f"Lines you type now go to {for_terminal(target)}{private}.")

    def hides(self, nick: str) -> bool:
        """True when ``nick`` is ignored (never the user themself)."""
        return (
            self.ignores is not None
            and nick in self.ignores
            and nick_key(nick) != nick_key(self.client.nick)
        )

    def leave_current(self) -> None:
        """The current room is closed to us: go back to the room joined most recently that is
        still open (#general, unless the user left it).
        """
        open_rooms = list(self.client.rooms.values())
        room = open_rooms[-1] if open_rooms else GENERAL_ROOM
        if not open_rooms and self.screen is None:
            # Not "lines now go to #general" just after leaving it.
            self.room = room
            self.out("You are in no room now: /join #room to chat again.")
        elif self.query:
            self.room = room  # a private conversation is in front: it stays there
        else:
            self.switch_to(room)

    def follow(self, event: object) -> None:
        """Keep the current room right as events arrive (a kick or ban ends membership)."""
        if (
            isinstance(event, Left)
            and nick_key(event.nick) == nick_key(self.client.nick)
            and room_key(event.room) == room_key(self.room)
            and event.reason
        ):
            self.leave_current()

    def save_token(self, token: str) -> None:
        """Keep this login's session token for next time (a failure is shown, not raised)."""
        if not token or self.sessions is None:
            return
        try:
            self.sessions.save(self.client.identity.server, self.client.nick, token)
        except OSError as exc:
            self.out(f"*** Could not save the login in {self.sessions.path}: {exc.strerror}")

    def forget_token(self, nick: str) -> bool:
        """Delete the saved login of ``nick`` on this server; True if there was one."""
        if self.sessions is None:
            return False
        try:
            return self.sessions.forget(self.client.identity.server, nick)
        except OSError as exc:
            self.out(f"*** Could not delete the login in {self.sessions.path}: {exc.strerror}")
            return False


# A command returns False when the user is leaving.
Handler = Callable[[Chat, str], Awaitable[bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    summary: str
    run: Handler
    aliases: tuple[str, ...] = ()
    # Only a front end with windows (full screen, desktop) does it: not listed in the line client.
    windows: bool = False


COMMANDS: dict[str, Command] = {}


def command(
    name: str, usage: str, summary: str, aliases: tuple[str, ...] = (), windows: bool = False
) -> Callable[[Handler], Handler]:
    def register(run: Handler) -> Handler:
        entry = Command(name, usage, summary, run, aliases, windows)
        for key in (name, *aliases):
            COMMANDS[key] = entry
        return run

    return register


def _usage(chat: Chat, name: str) -> bool:
    chat.out(f"Usage: {COMMANDS[name].usage}")
    return True


# --- argument parsing (pure, tested on its own) ----------------------------------------------

# Nine digits at most per number: int() of thousands of digits is slow, then refused.
_DURATION = re.compile(r"(?:[0-9]{1,9}[smhdw])+")
_DURATION_PART = re.compile(r"([0-9]{1,9})([smhdw])")
# A word meant as a duration, right or wrong (30m, 30min, 5x): one not understood is refused,
# never taken for the start of a reason (and the sanction for one without end). A reason may
# start with an ordinal ("3rd warning").
_DURATION_LIKE = re.compile(r"[0-9]\S*")
_ORDINAL = re.compile(r"[0-9]+(?:st|nd|rd|th)", re.IGNORECASE)
_NUMBER = re.compile(r"[0-9]{1,9}")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# The protocol's bound on a ban or mute (messages.Seconds): ten years.
MAX_DURATION_SECONDS = 10 * 365 * 86400
# /history without N.
HISTORY_PAGE = 20
# A paste of more lines than this asks before sending them one by one.
PASTE_CONFIRM_LINES = 3


def parse_duration(text: str) -> int | None:
    """Seconds in ``30m``, ``2h``, ``7d``, ``1w``, ``1h30m``...; None unless 1 s to ten years."""
    if len(text) > 40 or not _DURATION.fullmatch(text):
        return None
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return seconds if 1 <= seconds <= MAX_DURATION_SECONDS else None


def format_duration(seconds: int) -> str:
    """``1h30m`` for 5400: the largest units first, as a user would type it."""
    parts = []
    for unit in "wdhms":
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """The arguments of a moderation command."""

    room: str
    nick: str
    seconds: int | None = None
    reason: str = ""


def parse_target(args: str, *, duration: bool = False, reason: bool = False) -> Target | None:
    """``#room USER [DURATION] [reason]`` (each optional part only when allowed); None when the
    arguments are wrong: a bad room or nickname, a duration out of range or without a unit,
    or words that are not allowed.
    """
    room, _, rest = args.strip().partition(" ")
    nick, _, rest = rest.strip().partition(" ")
    rest = rest.strip()
    try:
        room, nick = normalize_room(room), normalize_nick(nick)
    except PeerError:
        return None
    seconds = None
    if duration and rest:
        first, _, after = rest.partition(" ")
        if _DURATION_LIKE.fullmatch(first) and not _ORDINAL.fullmatch(first):
            seconds = parse_duration(first)
            if seconds is None:
                return None  # 0m, ten years and more, or a number without its unit
            rest = after.strip()
    if rest and not reason:
        return None
    return Target(room, nick, seconds, rest)


def parse_count(args: str, default: int, most: int) -> int | None:
    """An optional count from 1 to ``most``: ``default`` when absent, None when wrong."""
    if not args:
        return default
    if not _NUMBER.fullmatch(args):
        return None
    count = int(args)
    return count if 1 <= count <= most else None


def _room_arg(chat: Chat, args: str) -> str | None:
    """An optional ``#room`` argument: the current room when absent, None when invalid."""
    if not args:
        return chat.room
    try:
        return normalize_room(args)
    except PeerError:
        return None


# --- chatting --------------------------------------------------------------------------------


@command("list", "/list", "show who is online")
async def list_users(chat: Chat, args: str) -> bool:
    chat.out(describe_users(await chat.client.list_users()))
    return True


@command("pm", "/pm USER MESSAGE", "a private message that only USER sees")
async def private_message(chat: Chat, args: str) -> bool:
    user, _, text = args.partition(" ")
    if not user or not text.strip():
        return _usage(chat, "pm")
    await send(chat, user, text)
    return True


@command("msg", "/msg #room|USER MESSAGE", "message a room, or USER privately")
async def message(chat: Chat, args: str) -> bool:
    target, _, text = args.partition(" ")
    try:
        target = normalize_room(target) if target.startswith("#") else normalize_nick(target)
    except PeerError:
        return _usage(chat, "msg")
    if not text.strip():
        return _usage(chat, "msg")
    await send(chat, target, text)
    return True


@command("history", "/history [N]", "earlier messages here (again: older)")
async def history(chat: Chat, args: str) -> bool:
    count = parse_count(args, HISTORY_PAGE, limits.MAX_HISTORY_MESSAGES)
    if count is None:
        return _usage(chat, "history")
    room = chat.target
    key = room_key(room) if is_room(room) else nick_key(room)
    # Page back from the oldest message shown so far: the newest ones are on screen already.
    before = chat.history_cursor.get(key) or chat.client.conversations.first_seq(key) or None
    page = None
    if before != 1:
        page = await chat.client.history(room, before=before, limit=count)
    if page is None or not page.messages:
        if before is None:
            chat.out(f"No messages in {for_terminal(room)} yet.")
        else:
            chat.out(
                f"No earlier messages in {for_terminal(room)}: its history starts with the "
                "first one shown."
            )
        return True
    for entry in page.messages:
        line = describe(entry, chat.client.nick, time_format=chat.time_format)
        if line is not None:
            chat.out(line)
    chat.history_cursor[key] = page.messages[0].seq
    if not page.more:
        what = "history of" if is_room(page.to) else "conversation with"
        chat.out(f"The {what} {for_terminal(page.to)} starts here.")
    return True


@command("unread", "/unread", "where unread messages are (accounts)")
async def unread(chat: Chat, args: str) -> bool:
    if args:
        return _usage(chat, "unread")
    chat.out(describe_unread(await chat.client.unread()))
    return True


# --- rooms -----------------------------------------------------------------------------------


@command("join", "/join #room", "join a room; your lines then go there")
async def join(chat: Chat, args: str) -> bool:
    name = _room_arg(chat, args) if args else None
    if name is None:
        return _usage(chat, "join")
    already = room_key(name) in chat.client.rooms
    info = await chat.client.join(name)
    said = f"You are in {describe_room(info)}" if already else f"You joined {describe_room(info)}"
    if chat.screen is not None:
        chat.switch_to(info.room)  # its window first, so that the line lands in it
        chat.out(said)
    else:
        chat.out(said)
        chat.switch_to(info.room)
    return True


@command("part", "/part [#room]", "leave a room (default: this one)")
async def part(chat: Chat, args: str) -> bool:
    name = _room_arg(chat, args)
    if name is None:
        return _usage(chat, "part")
    shown = chat.client.rooms.get(room_key(name), name)
    await chat.client.part(name)
    chat.out(f"You left {for_terminal(shown)}.")
    if room_key(name) == room_key(chat.room):
        chat.leave_current()
    return True


@command("rooms", "/rooms [#after]", "list the rooms by name, a page at a time")
async def rooms(chat: Chat, args: str) -> bool:
    after = ""
    if args:
        try:
            after = normalize_room(args)
        except PeerError:
            return _usage(chat, "rooms")
    for line in describe_rooms(await chat.client.list_rooms(after)):
        chat.out(line)
    return True


@command("topic", "/topic [#room] [TEXT]", "show a room's topic, or set it")
async def topic(chat: Chat, args: str) -> bool:
    room, text = chat.room, args
    first, _, rest = args.partition(" ")
    if first.startswith("#"):
        try:
            room, text = normalize_room(first), rest.strip()
        except PeerError:
            return _usage(chat, "topic")
    if not text:
        chat.out(describe_room(await chat.client.topic(room)))
    else:
        await chat.client.topic(room, text)  # the room, us included, sees the change
    return True


@command("who", "/who [#room]", "who is in a room (default: this one)")
async def who(chat: Chat, args: str) -> bool:
    name = _room_arg(chat, args)
    if name is None:
        return _usage(chat, "who")
    shown = chat.client.rooms.get(room_key(name), name)
    chat.out(describe_users(await chat.client.who(name), shown))
    return True


async def send(chat: Chat, to: str, text: str) -> None:
    """Send, and say so when a private message went to someone who is away or offline."""
    sent = await chat.client.send(to, text)
    if sent.away:
        chat.out(f"{for_terminal(to)} is away: {for_terminal(sent.away)}")
    if sent.offline:
        chat.out(f"{for_terminal(to)} is offline: they get it when they next log in.")


@command("away", "/away [TEXT]", "say you are away (alone: you are back)")
async def away(chat: Chat, args: str) -> bool:
    await chat.client.away(args)
    chat.out(f"You are marked away: {for_terminal(args)}" if args else "You are no longer away.")
    return True


@command("whois", "/whois USER", "who USER is: online, away, rooms, account")
async def whois(chat: Chat, args: str) -> bool:
    try:
        nick = normalize_nick(args)
    except PeerError:
        return _usage(chat, "whois")
    for line in describe_whois(await chat.client.whois(nick)):
        chat.out(line)
    return True


# --- conversations and windows -------------------------------------------------------------


@command("me", "/me ACTION", "say what you do: /me waves reads * You waves")
async def me(chat: Chat, args: str) -> bool:
    if not args:
        return _usage(chat, "me")
    await send(chat, chat.target, ACTION_PREFIX + args)
    return True


@command("query", "/query [USER]", "talk privately with USER (alone: back to the room)")
async def query(chat: Chat, args: str) -> bool:
    if not args:
        chat.switch_to(chat.room)
        return True
    try:
        nick = normalize_nick(args)
    except PeerError:
        return _usage(chat, "query")
    if nick_key(nick) == nick_key(chat.client.nick):
        chat.out("*** That is you.")
        return True
    chat.switch_to(nick)
    return True


@command("close", "/close", "end this conversation (in a room: leave it)")
async def close(chat: Chat, args: str) -> bool:
    if args:
        return _usage(chat, "close")
    if chat.query:
        other = chat.query
        chat.switch_to(chat.room)
        if chat.screen is not None:
            chat.screen.close_window(other)
        return True
    room = chat.room
    await part(chat, room)
    if chat.screen is not None:
        chat.screen.close_window(room)
    return True


@command(
    "win", "/win N", "show window N (also Alt+N, Ctrl+N, Ctrl+P)", aliases=("window",), windows=True
)
async def window(chat: Chat, args: str) -> bool:
    if chat.screen is None:
        chat.out(_NO_WINDOWS)
        return True
    number = parse_count(args, 0, 1000) if args else None
    if not number:
        return _usage(chat, "win")
    if not chat.screen.select(number):
        chat.out(f"*** There is no window {number}.")
    return True


@command("clear", "/clear", "empty the window in view", windows=True)
async def clear(chat: Chat, args: str) -> bool:
    if chat.screen is None:
        chat.out(_NO_WINDOWS)
        return True
    chat.screen.clear()
    return True


_NO_WINDOWS = (
    "*** Windows are in the full-screen client (on a terminal). Here, /join #room or "
    "/query USER chooses where your lines go."
)


@command("ignore", "/ignore [USER]", "hide USER's messages (alone: who is ignored)")
async def ignore(chat: Chat, args: str) -> bool:
    if chat.ignores is None:
        chat.out("*** Ignoring is not available here.")
        return True
    if not args:
        names = chat.ignores.names()
        chat.out(
            f"Ignored: {', '.join(map(for_terminal, names))}" if names else "Nobody is ignored."
        )
        return True
    try:
        nick = normalize_nick(args)
    except PeerError:
        return _usage(chat, "ignore")
    if nick_key(nick) == nick_key(chat.client.nick):
        chat.out("*** You cannot ignore yourself.")
        return True
    try:
        added = chat.ignores.add(nick)
    except (OSError, ValueError) as exc:
        chat.out(f"*** Could not ignore {nick}: {getattr(exc, 'strerror', None) or exc}")
        return True
    chat.out(
        f"Ignoring {nick}; /unignore {nick} to see them again."
        if added
        else f"{nick} is already ignored."
    )
    return True


@command("unignore", "/unignore USER", "show USER's messages again")
async def unignore(chat: Chat, args: str) -> bool:
    if chat.ignores is None or not args:
        return _usage(chat, "unignore")
    try:
        nick = normalize_nick(args)
    except PeerError:
        return _usage(chat, "unignore")
    try:
        removed = chat.ignores.remove(nick)
    except OSError as exc:
        chat.out(f"*** Could not save the change: {exc.strerror}")
        return True
    chat.out(f"{nick} is no longer ignored." if removed else f"{nick} was not ignored.")
    return True


# --- files -----------------------------------------------------------------------------------


@command(
    "send",
    "/send #room|USER PATH",
    "share a file with a room or a user (it uploads while you chat)",
    aliases=("upload",),
)
async def send_file(chat: Chat, args: str) -> bool:
    target, _, raw_path = args.partition(" ")
    if not target or not raw_path.strip():
        return _usage(chat, "send")
    try:
        target = normalize_room(target) if target.startswith("#") else normalize_nick(target)
    except PeerError:
        return _usage(chat, "send")
    path = _local_path(raw_path.strip())
    if path.is_dir():
        chat.out(f"*** {for_terminal(str(path))} is a folder: /send shares one file at a time.")
        return True
    if not _is_file(path):
        chat.out(f"*** There is no file {for_terminal(str(path))}.")
        return True
    _in_background(chat, _upload(chat, path, target))
    return True


# A file id as typed: its first characters will do, when they name one file.
_FILE_ID_PREFIX = re.compile(r"[0-9a-f]{4,32}")


async def _upload(chat: Chat, path: Path, target: str) -> None:
    try:
        with _progress(chat, f"up:{path}") as report:
            file_id = await transfer.upload(chat.client, path, target, report)
    except (RequestRefused, transfer.TransferFailed) as failed:
        chat.out(f"*** {for_terminal(path.name)} was not sent: {for_terminal(_why(failed))}")
    except ConnectionLost:
        chat.out(
            f"*** {for_terminal(path.name)} was not sent: the connection to the server was "
            "lost. Send it again once connected: it resumes where it stopped."
        )
    except OSError as exc:
        chat.out(f"*** Cannot read {for_terminal(str(path))}: {exc.strerror}")
    else:
        shown = for_terminal(file_id[:8])
        chat.out(f"Shared {for_terminal(path.name)} with {for_terminal(target)} ({shown}).")


@command("files", "/files [#room|USER]", "files shared with you (and by you), newest first")
async def files(chat: Chat, args: str) -> bool:
    listing = await chat.client.files(args)
    if not listing.files:
        chat.out("No files." if not args else f"No files with {for_terminal(args)}.")
        return True
    chat.out(f"Files ({len(listing.files)}):")
    for entry in listing.files:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.ts / 1000))
        chat.out(
            f"  {for_terminal(entry.file_id[:8])}  {for_terminal(entry.name)} "
            f"({human_size(entry.size)}) "
            f"from {for_terminal(entry.sender)} to {for_terminal(entry.to)}, {when}"
        )
    return True


@command("get", "/get ID [DEST]", "download a file (ID: its first characters will do)")
async def get_file(chat: Chat, args: str) -> bool:
    wanted, _, raw_dest = args.partition(" ")
    if not wanted:
        return _usage(chat, "get")
    if not _FILE_ID_PREFIX.fullmatch(wanted.lower()):
        chat.out(f"*** {for_terminal(wanted)} is not a file id: /files lists them "
                 "(4 or more of the characters 0-9 and a-f).")  # fmt: skip
        return True
    file_id = await _resolve_file(chat, wanted.lower())
    if file_id is None:
        return True
    folder, name = _destination(raw_dest.strip(), chat.downloads)
    _in_background(chat, _download(chat, file_id, folder, name))
    return True


def _destination(typed: str, downloads: Path) -> tuple[Path, str | None]:
    """Where /get saves: the downloads folder; a folder given (existing, or ending in /);
    else the path of the file to make.
    """
    if not typed:
        return downloads, None
    path = _local_path(typed)
    if typed.endswith("/") or path.is_dir():
        return path, None
    return path.parent, path.name


async def _download(chat: Chat, file_id: str, folder: Path, name: str | None) -> None:
    try:
        with _progress(chat, f"down:{file_id}") as report:
            saved = await transfer.download(chat.client, file_id, folder, name, report)
    except (RequestRefused, transfer.TransferFailed) as failed:
        chat.out(f"*** The download failed: {for_terminal(_why(failed))}")
    except ConnectionLost:
        chat.out(
            "*** The download stopped: the connection to the server was lost. /get it again "
            "once connected: it resumes where it stopped."
        )
    except OSError as exc:
        chat.out(f"*** Cannot save in {for_terminal(str(folder))}: {exc.strerror}")
    else:
        chat.out(f"Saved {for_terminal(str(saved))} (SHA-256 checked).")


@command("rmfile", "/rmfile ID", "delete a file you shared")
async def remove_file(chat: Chat, args: str) -> bool:
    if not _FILE_ID_PREFIX.fullmatch(args.lower()):
        return _usage(chat, "rmfile")
    file_id = await _resolve_file(chat, args.lower())
    if file_id is not None:
        await chat.client.delete_file(file_id)
        chat.out(f"Deleted the file {for_terminal(file_id[:8])}.")
    return True


async def _resolve_file(chat: Chat, prefix: str) -> str | None:
    """The one file id starting with ``prefix`` among those the user may see."""
    if len(prefix) == 32:
        return prefix
    matches = [e.file_id for e in (await chat.client.files()).files if e.file_id.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    chat.out(
        f"*** No file starts with {prefix}; /files lists them."
        if not matches
        else f"*** {len(matches)} files start with {prefix}; give more of the id."
    )
    return None


def _why(failed: RequestRefused | transfer.TransferFailed) -> str:
    """The reason in words, without the wire code."""
    return failed.message if isinstance(failed, RequestRefused) else str(failed)


def _local_path(typed: str) -> Path:
    return Path(typed).expanduser()


def _is_file(path: Path) -> bool:
    return path.is_file()


@contextlib.contextmanager
def _progress(chat: Chat, key: str) -> Iterator[transfer.ProgressCallback]:
    """How transfer ``key`` reports: a bar on a screen (taken down at the end), else a line
    every few seconds.
    """
    meter = Meter()

    def report(progress: transfer.Progress) -> None:
        rate = meter.rate(progress)
        if chat.screen is not None:
            share = progress.done / progress.total if progress.total else 1.0
            chat.screen.progress(key, describe_progress(progress, rate, bar=True), share)
        elif meter.due(progress):
            chat.out(describe_progress(progress, rate))

    try:
        yield report
    finally:
        if chat.screen is not None:
            chat.screen.progress(key, None)


def _in_background(chat: Chat, work: Coroutine[Any, Any, None]) -> None:
    chat.transfers.start(work)


# --- moderation ------------------------------------------------------------------------------


@command("kick", "/kick #room USER [REASON]", "put USER out of a room (operators)")
async def kick(chat: Chat, args: str) -> bool:
    target = parse_target(args, reason=True)
    if target is None:
        return _usage(chat, "kick")
    await chat.client.kick(target.room, target.nick, target.reason)
    chat.out(f"Kicked {for_terminal(target.nick)} from {target.room}.")
    return True


@command(
    "ban",
    "/ban #room USER [DURATION] [REASON]",
    "keep USER out; DURATION like 30m, 2h, 7d",
)
async def ban(chat: Chat, args: str) -> bool:
    target = parse_target(args, duration=True, reason=True)
    if target is None:
        return _usage(chat, "ban")
    await chat.client.ban(target.room, target.nick, target.seconds, target.reason)
    chat.out(f"Banned {for_terminal(target.nick)} from {target.room} {_how_long(target)}.")
    return True


@command("unban", "/unban #room USER", "let USER join the room again")
async def unban(chat: Chat, args: str) -> bool:
    target = parse_target(args)
    if target is None:
        return _usage(chat, "unban")
    await chat.client.unban(target.room, target.nick)
    chat.out(f"{for_terminal(target.nick)} may join {target.room} again.")
    return True


@command(
    "mute",
    "/mute #room USER [DURATION] [REASON]",
    "silence USER there (DURATION optional)",
)
async def mute(chat: Chat, args: str) -> bool:
    target = parse_target(args, duration=True, reason=True)
    if target is None:
        return _usage(chat, "mute")
    await chat.client.mute(target.room, target.nick, target.seconds, target.reason)
    chat.out(f"Muted {for_terminal(target.nick)} in {target.room} {_how_long(target)}.")
    return True


@command("unmute", "/unmute #room USER", "let USER speak in the room again")
async def unmute(chat: Chat, args: str) -> bool:
    target = parse_target(args)
    if target is None:
        return _usage(chat, "unmute")
    await chat.client.unmute(target.room, target.nick)
    chat.out(f"{for_terminal(target.nick)} may speak in {target.room} again.")
    return True


@command("op", "/op #room USER", "make the account USER an operator of the room (moderators)")
async def op(chat: Chat, args: str) -> bool:
    target = parse_target(args)
    if target is None:
        return _usage(chat, "op")
    await chat.client.op(target.room, target.nick)
    chat.out(f"{for_terminal(target.nick)} is now an operator of {target.room}.")
    return True


def _how_long(target: Target) -> str:
    return "until lifted" if target.seconds is None else f"for {format_duration(target.seconds)}"


# --- account ---------------------------------------------------------------------------------


@command("register", "/register", "make your nickname an account")
async def register(chat: Chat, args: str) -> bool:
    if args:
        # Perhaps a password: not repeated, and not sent.
        chat.out("Usage: /register (the password is asked for; never type it on the line)")
        return True
    if chat.client.is_account:
        chat.out(f"*** {ErrorCode.ALREADY_REGISTERED.text}")
        return True
    password = await _new_password(chat, "Password: ", "Password again: ")
    if password is None:
        return True
    ok = await chat.client.register(password)
    chat.save_token(ok.token)
    chat.out(
        f"Registered {for_terminal(chat.client.nick)}. This computer logs in without the "
        "password from now on; /logout forgets it."
    )
    return True


@command("passwd", "/passwd", "change your account's password")
async def passwd(chat: Chat, args: str) -> bool:
    if args:
        chat.out("Usage: /passwd (the passwords are asked for; never type them on the line)")
        return True
    if not chat.client.is_account:
        chat.out("*** Only an account has a password: /register first.")
        return True
    old = await chat.ask_secret("Current password: ")
    if old is None:
        return True
    new = await _new_password(chat, "New password: ", "New password again: ")
    if new is None:
        return True
    ok = await chat.client.change_password(old, new)
    chat.save_token(ok.token)
    chat.out("Password changed. Your other sessions were logged out.")
    return True


@command("logout", "/logout", "log out; forget the saved login here")
async def logout(chat: Chat, args: str) -> bool:
    if args:
        return _usage(chat, "logout")
    # Forgotten here first: it must go even if the server cannot be told.
    forgotten = chat.forget_token(chat.client.nick)
    await chat.client.logout()
    chat.out("Logged out." + " The saved login was deleted." * forgotten)
    return False


async def _new_password(chat: Chat, prompt: str, again: str) -> str | None:
    """Ask for a new password twice; None (having said why) unless both are the same valid one.

    Both are asked before either is judged: a user types the second entry at once, and after
    an early refusal it would land on the chat line and be sent to the room.
    """
    first = await chat.ask_secret(prompt)
    if first is None:
        return None
    second = await chat.ask_secret(again)
    if second is None:
        return None
    if not limits.MIN_PASSWORD_CHARS <= len(first) <= limits.MAX_PASSWORD_CHARS or (
        not first.strip()
    ):
        chat.out(f"*** {ErrorCode.INVALID_PASSWORD.text} Nothing was changed.")
        return None
    if first != second:
        chat.out("*** The passwords do not match; nothing was changed.")
        return None
    return first


# --- the session -----------------------------------------------------------------------------


@command("help", "/help [COMMAND]", "the list of commands, or how to use one")
async def show_help(chat: Chat, args: str) -> bool:
    if args:
        entry = COMMANDS.get(args.removeprefix("/").lower())
        if entry is None:
            chat.out(f"No command /{for_terminal(args.removeprefix('/'))}.{_suggest(args)}")
            return True
        also = f" Also /{', /'.join(entry.aliases)}." if entry.aliases else ""
        chat.out(f"{entry.usage}: {entry.summary}.{also}")
        return True
    chat.out("Commands:")
    entries = [
        entry
        for name, entry in COMMANDS.items()
        if name == entry.name and (chat.screen is not None or not entry.windows)
    ]
    width = max(len(entry.usage) for entry in entries)
    for entry in entries:
        also = f" (or /{', /'.join(entry.aliases)})" if entry.aliases else ""
        chat.out(f"  {entry.usage:<{width}}  {entry.summary}{also}")
    chat.out(
        "Other lines go to the current room; start a line with // to send one beginning with /."
    )
    return True


def _suggest(name: str) -> str:
    """ " Did you mean /join?" for a near miss such as /jion; else nothing."""
    close = difflib.get_close_matches(name.removeprefix("/").lower()[:40], COMMANDS, n=1)
    return f" Did you mean /{close[0]}?" if close else ""


@command("exit", "/exit", "leave the chat", aliases=("quit",))
async def leave(chat: Chat, args: str) -> bool:
    return False


def unsendable(line: str) -> str | None:
    """Why a typed message line (not a command) would be refused, to say so while the line is
    still in the input field (nothing typed is lost); None when it can be sent.
    """
    if line.startswith("/") and not line.startswith("//"):
        return None
    text = line[1:] if line.startswith("//") else line
    if len(text) > limits.MAX_TEXT_CHARS:
        return (
            f"A message is at most {limits.MAX_TEXT_CHARS:,} characters, and this one has "
            f"{len(text):,}."
        )
    try:
        check_message_text(text)
    except PeerError as refused:
        return refused.detail
    return None


async def execute(chat: Chat, line: str) -> bool:
    """Act on one line the user typed. Returns False when the user is leaving.

    A refusal from the server is shown as a line, never raised: a typo must not end the chat.
    """
    try:
        if line.startswith("/") and not line.startswith("//"):
            name, _, args = line[1:].partition(" ")
            entry = COMMANDS.get(name.lower())
            if entry is None:
                chat.out(
                    f"Unknown command /{for_terminal(name)}.{_suggest(name)} "
                    "Type /help for the list of commands."
                )
                return True
            return await entry.run(chat, args.strip())
        text = line[1:] if line.startswith("//") else line
        if text.strip():
            await send(chat, chat.target, text)
    except RequestRefused as refusal:
        chat.out(f"*** {for_terminal(refusal.message)}")
    return True
