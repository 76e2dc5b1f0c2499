"""The commands a user types, one handler each: adding a command means adding one function here
(and its test). Lines that are not commands are chat text for #general.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from parley.client.core import ChatClient
from parley.client.render import describe_users
from parley.protocol.errors import RequestRefused
from parley.protocol.names import GENERAL_ROOM
from parley.protocol.text import for_terminal

Output = Callable[[str], None]
# A command returns False when the user is leaving.
Handler = Callable[[ChatClient, str, Output], Awaitable[bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    summary: str
    run: Handler
    aliases: tuple[str, ...] = ()


COMMANDS: dict[str, Command] = {}


def command(
    name: str, usage: str, summary: str, aliases: tuple[str, ...] = ()
) -> Callable[[Handler], Handler]:
    def register(run: Handler) -> Handler:
        entry = Command(name, usage, summary, run, aliases)
        for key in (name, *aliases):
            COMMANDS[key] = entry
        return run

    return register


@command("list", "/list", "show who is online")
async def list_users(client: ChatClient, args: str, out: Output) -> bool:
    out(describe_users(await client.list_users()))
    return True


@command("pm", "/pm USER MESSAGE", "send a private message that only USER sees")
async def private_message(client: ChatClient, args: str, out: Output) -> bool:
    user, _, text = args.partition(" ")
    if not user or not text.strip():
        out("Usage: /pm USER MESSAGE")
        return True
    await client.send(user, text)
    return True


@command("help", "/help", "show this list of commands")
async def show_help(client: ChatClient, args: str, out: Output) -> bool:
    out("Commands:")
    for name, entry in COMMANDS.items():
        if name == entry.name:
            also = f" (or /{', /'.join(entry.aliases)})" if entry.aliases else ""
            out(f"  {entry.usage:<20} {entry.summary}{also}")
    out("Anything else is sent to everyone; start a line with // to send one beginning with /.")
    return True


@command("exit", "/exit", "leave the chat", aliases=("quit",))
async def leave(client: ChatClient, args: str, out: Output) -> bool:
    return False


async def execute(client: ChatClient, line: str, out: Output) -> bool:
    """Act on one line the user typed. Returns False when the user is leaving.

    A refusal from the server is shown as a line, never raised: a typo must not end the chat.
    """
    try:
        if line.startswith("/") and not line.startswith("//"):
            name, _, args = line[1:].partition(" ")
            entry = COMMANDS.get(name.lower())
            if entry is None:
                out(f"Unknown command /{for_terminal(name)}. Type /help for the list of commands.")
                return True
            return await entry.run(client, args.strip(), out)
        text = line[1:] if line.startswith("//") else line
        if text.strip():
            await client.send(GENERAL_ROOM, text)
    except RequestRefused as refusal:
        out(f"*** {for_terminal(refusal.message)}")
    return True
