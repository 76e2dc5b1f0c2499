"""Command arguments, checked before any request: durations and moderation targets."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from parley.client.commands import (
    COMMANDS,
    MAX_DURATION_SECONDS,
    Chat,
    Target,
    execute,
    format_duration,
    parse_count,
    parse_duration,
    parse_target,
    unsendable,
)
from parley.client.core import ChatClient, ServerIdentity
from parley.protocol.messages import FileInfo, FileList, ListFiles, decode_request, encode


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45s", 45),
        ("30m", 1800),
        ("2h", 7200),
        ("7d", 604800),
        ("1w", 604800),
        ("1h30m", 5400),
        ("3650d", MAX_DURATION_SECONDS),
    ],
)
def test_durations_read_as_people_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "", "30", "m", "0m", "-5m", "1.5h", "2 h", "3651d", "1y", "٣m", "30M", "h2",
        "99999999999m", "9" * 5000 + "m", "1m" * 100,
    ],
)  # fmt: skip
def test_bad_durations_are_refused(text: str) -> None:
    assert parse_duration(text) is None


def test_durations_are_shown_largest_unit_first() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(90061) == "1d1h1m1s"


def test_moderation_arguments() -> None:
    assert parse_target("#dev Bob") == Target("#dev", "Bob")
    assert parse_target("#dev Bob spamming links", reason=True) == Target(
        "#dev", "Bob", None, "spamming links"
    )
    assert parse_target("#dev  Bob  2h  spam", duration=True, reason=True) == Target(
        "#dev", "Bob", 7200, "spam"
    )
    assert parse_target("#dev Bob 2h", duration=True, reason=True) == Target("#dev", "Bob", 7200)
    # A reason may start with a word that is not a duration.
    assert parse_target("#dev Bob hourly spam", duration=True, reason=True) == Target(
        "#dev", "Bob", None, "hourly spam"
    )
    assert parse_target("#dev Bob 3rd warning", duration=True, reason=True) == Target(
        "#dev", "Bob", None, "3rd warning"
    )


@pytest.mark.parametrize(
    ("args", "duration", "reason"),
    [
        ("", False, False),
        ("#dev", False, True),
        ("dev Bob", False, True),  # no '#'
        ("#dev Bob!", False, True),  # not a nickname
        ("#dev Bob extra", False, False),  # /unban takes no reason
        ("#dev Bob 0m", True, True),
        ("#dev Bob 30 spam", True, True),  # a number without its unit
        ("#dev Bob 30min being loud", True, True),  # not a unit: not a reason either
        ("#dev Bob 5x", True, True),
        ("#dev Bob 9999d", True, True),
        ("#dev Bob 99999999999m spam", True, True),
    ],
)
def test_bad_moderation_arguments_are_refused(args: str, duration: bool, reason: bool) -> None:
    assert parse_target(args, duration=duration, reason=reason) is None


def test_counts() -> None:
    assert parse_count("", 20, 200) == 20
    assert parse_count("7", 20, 200) == 7
    assert parse_count("200", 20, 200) == 200
    for wrong in ("0", "201", "-1", "x", "1.5", "²", "9" * 5000):
        assert parse_count(wrong, 20, 200) is None


def test_every_command_has_a_usage_line_naming_it() -> None:
    names = {entry.name for entry in COMMANDS.values()}
    assert names >= {
        "list", "pm", "msg", "help", "exit", "register", "passwd", "logout", "join", "part",
        "rooms", "topic", "who", "history", "unread", "kick", "ban", "unban", "mute", "unmute",
    }  # fmt: skip
    for name in names:
        assert COMMANDS[name].usage.startswith(f"/{name}")


class _FilesServer:
    """Stands in for the connection's writer: answers ``files`` with one listing."""

    def __init__(self, listing: list[FileInfo]) -> None:
        self.reader = asyncio.StreamReader()
        self.listing = listing

    def write(self, data: bytes) -> None:
        request = decode_request(data.rstrip(b"\n"))
        assert isinstance(request, ListFiles)
        self.reader.feed_data(encode(FileList(id=request.id, files=self.listing)))

    def close(self) -> None:
        self.reader.feed_eof()

    async def wait_closed(self) -> None:
        return None


async def test_files_prints_what_the_server_sent_inertly() -> None:
    hostile = FileInfo(
        file_id="\x1b]0;pwn\x07\x1b[2J",
        name="a\x1b[31mb.txt",
        size=5,
        sha256="0" * 64,
        sender="Bob\x1b[8m",
        to="#general",
        ts=0,
        expires=0,
    )
    server = _FilesServer([hostile])
    identity = ServerIdentity("scripted:1", "", False, None)
    client = ChatClient(server.reader, cast(Any, server), identity)
    printed: list[str] = []

    async def no_secret(prompt: str) -> str | None:
        return None

    try:
        assert await execute(Chat(client, printed.append, no_secret), "/files")
    finally:
        await client.close()
    assert len(printed) == 2
    assert not any(char in line for line in printed for char in "\x1b\x07")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("hello", None),
        ("/me waves", None),  # a command: checked where it is run
        ("//not a command", None),
        ("x" * 4_001, "A message is at most 4,000 characters, and this one has 4,001."),
        ("//" + "x" * 4_000, "A message is at most 4,000 characters, and this one has 4,001."),
        ("bell\x07", "Messages must be 1-4000 characters on one line, without control characters."),
        ("\u200b\u200b", "The message shows nothing"),
    ],
)
def test_a_line_that_would_be_refused_is_named_before_it_leaves_the_input(
    line: str, problem: str | None
) -> None:
    found = unsendable(line)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)
