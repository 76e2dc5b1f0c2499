"""What every front end with windows does with the server, whatever draws it: follow the
events into windows (members, topics, ignores, removals), refresh a room's members and topic,
and reconnect when the connection is lost. The full-screen terminal client and the desktop app
both build on it and only draw.

A front end subclasses :class:`WindowedFront` and overrides the drawing hooks: :meth:`added`
(a line went into a window), :meth:`state_changed` (connected, reconnecting, offline),
:meth:`refreshed` (a window's members or topic changed) and :meth:`reconnected`. Each does
nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Coroutine
from typing import Any

from parley.client import windows as model
from parley.client.commands import Chat
from parley.client.core import (
    HISTORY_RELOADED_TEXT,
    ChatClient,
    ClientEvent,
    ConnectionLost,
    Disconnected,
    HistoryReloaded,
)
from parley.client.pins import CertificateChanged
from parley.client.reconnect import Attempt, Connect, GaveUp, reconnect
from parley.client.timeline import place
from parley.protocol.errors import RequestRefused
from parley.protocol.messages import (
    GoingAway,
    Joined,
    Left,
    MembersChanged,
    Message,
    TopicChanged,
)
from parley.protocol.names import nick_key, room_key
from parley.protocol.text import for_terminal

CONNECTED = "connected"
# Names listed for a quiet room (one the server summarises): one page, not all of them.
QUIET_ROOM_NAMES = 200


class WindowedFront:
    """A plain class, not an ABC: Qt widgets, with a metaclass of their own, mix it in."""

    def __init__(self, chat: Chat, connect: Connect, scrollback: int) -> None:
        self.chat = chat
        self.windows = model.Windows(scrollback)
        # "connected", "reconnecting in 2s (try 3)", "offline: why".
        self.state = CONNECTED
        # Reconnecting stopped for good (a refused login, a changed certificate).
        self.gave_up = False
        self._connect = connect
        self._background: set[asyncio.Task[None]] = set()

    # --- what the front end draws ------------------------------------------------------

    def added(self, window: model.Window, line: model.Line, event: ClientEvent | None) -> None:
        """``line`` went into ``window`` (``event`` is what it came from, if anything)."""

    def state_changed(self, alert: bool) -> None:
        """:attr:`state` changed; ``alert`` when it is bad news (lost, offline)."""

    def note(self, text: str) -> None:
        """Something about the connection: a line in the status window."""
        self.add(self.windows.status, model.Line(time.time(), text, model.Style.NOTICE))

    def refreshed(self, window: model.Window) -> None:
        """A window's members or topic changed."""

    def reconnected(self, client: ChatClient) -> None:
        """A new connection took over from the lost one."""

    def cleared(self, window: model.Window) -> None:
        """Every line of ``window`` went (its history is being shown anew)."""

    # --- events ------------------------------------------------------------------------

    def add(self, window: model.Window, line: model.Line, event: ClientEvent | None = None) -> None:
        self.windows.add(window, line)
        self.added(window, line, event)

    async def follow_events(self) -> None:
        """Show the server's events until the user leaves (/exit, /logout). When reconnecting
        is given up, this waits until cancelled, so what was shown stays open for reading.
        The rooms the user was put in at login show their recent history first.
        """
        await self.load_recent_history()
        while True:
            event = await self.chat.client.next_event()
            if isinstance(event, Disconnected):
                if event.expected:
                    return
                if not await self._reconnect(event.reason):
                    self.gave_up = True
                    await asyncio.get_running_loop().create_future()
                continue
            if isinstance(event, GoingAway):
                # Leave now, with nothing in flight: the Disconnected that follows reconnects.
                self.note(for_terminal(event.message))
                await self.chat.client.move_on(event)
                continue
            self.show_event(event)

    async def load_recent_history(self) -> None:
        """The latest messages of the rooms not seen yet, as events (see recent_history)."""
        with contextlib.suppress(RequestRefused, ConnectionLost):
            await self.chat.client.recent_history()

    async def load_earlier(self, window: model.Window, count: int) -> int:
        """Read back up to ``count`` messages before the first one shown in ``window`` and put
        them above it: in order, as history lines, each once. Returns how many were put there;
        0 when what is shown is the beginning. One history request. Raises RequestRefused,
        ConnectionLost.
        """
        conversations = self.chat.client.conversations
        first = conversations.first_seq(window.key)
        if first == 1:
            return 0
        page = await self.chat.client.history(window.name, before=first or None, limit=count)
        me = self.chat.client.nick
        older = []
        for message in page.messages:
            if not conversations.accept(window.key, window.name, message.seq):
                continue  # on screen already
            if self.chat.hides(message.sender):
                continue
            placed = place(message, me)
            if placed is not None:
                older.append(placed[1])
        return window.prepend(older)

    def show_event(self, event: ClientEvent) -> None:
        match event:
            case HistoryReloaded(to=to):
                # What the window showed may be gone from the server, or be other messages
                # now: it makes way for the history that follows.
                window = self.windows.find(to)
                if window is not None:
                    window.clear()
                    self.cleared(window)
                    self.add(
                        window, model.Line(time.time(), HISTORY_RELOADED_TEXT, model.Style.NOTICE)
                    )
                return
            case Message(sender=sender) if self.chat.hides(sender):
                return
            case Joined(room=room, nick=nick):
                self._count(room, nick, +1)
                self._members(room)[nick_key(nick)] = nick
                if self.chat.hides(nick):
                    return
            case Left(room=room, nick=nick):
                self._count(room, nick, -1)
                self._members(room).pop(nick_key(nick), None)
                self.chat.follow(event)
                if self.chat.hides(nick) and not event.reason:
                    return
            case MembersChanged(room=room, members=count):
                window = self.windows.find(room)
                if window is not None:
                    window.quiet, window.total = True, count
                    self.refreshed(window)
            case TopicChanged(room=room, text=text):
                window = self.windows.find(room)
                if window is not None:
                    window.topic = for_terminal(text)
                    self.refreshed(window)
        placed = place(event, self.chat.client.nick)
        if placed is None:
            return
        target, line = placed
        if isinstance(event, Message) and self.chat.client.is_context(event):
            line = dataclasses.replace(line, context=True)
        window = self.windows.current if target is None else self.windows.open(target)
        if isinstance(event, Message) and self.chat.client.starts_unread(event):
            window.divider_at = window.added  # at the account's read marker
        self.add(window, line, event)

    def _count(self, room: str, nick: str, change: int) -> None:
        """Someone else's join or part in a quiet room: a kick, or the room announcing again
        since it shrank. The count follows it until the next summary.
        """
        window = self.windows.find(room)
        if window is None or not window.quiet or nick_key(nick) == nick_key(self.chat.client.nick):
            return
        if change > 0 and nick_key(nick) in window.members:
            return
        window.total = max(0, window.total + change)

    def _members(self, room: str) -> dict[str, str]:
        window = self.windows.find(room)
        return window.members if window is not None else {}

    async def refresh_room(self, room: str) -> None:
        """Who is in ``room`` and its topic, asked of the server: every name, or in a quiet
        room (too big to announce each join) the first page and the count.
        """
        with contextlib.suppress(RequestRefused, ConnectionLost):
            info = await self.chat.client.topic(room)
            if info.quiet:
                users = await self.chat.client.who_page(room, limit=QUIET_ROOM_NAMES)
            else:
                users = await self.chat.client.who(room)
            window = self.windows.find(room)
            if window is not None:
                # Merged, not replaced: a join the events task showed meanwhile is newer.
                window.members.update({nick_key(nick): nick for nick in users.users})
                window.quiet, window.total = info.quiet, users.total
                window.topic = for_terminal(info.topic)
                self.refreshed(window)

    # --- the connection ----------------------------------------------------------------

    async def _reconnect(self, reason: str) -> bool:
        """Connect again and carry on; False when that cannot be."""
        self._set_state(f"reconnecting: {for_terminal(reason)}", alert=True)
        self.note(f"Disconnected: {for_terminal(reason)}")
        try:
            client, refused = await reconnect(
                self.chat.client, self._connect, reason, self._attempting
            )
        except GaveUp as stop:
            self._offline(f"offline: {for_terminal(stop.reason)}")
            return False
        except CertificateChanged as changed:
            for text in changed.explain().splitlines():
                self.note(text)
            self._offline("offline: the server's certificate changed (see the status window)")
            return False
        self.chat.client = client
        self.reconnected(client)
        self._set_state(CONNECTED, alert=False)
        self.note(f"Reconnected to {client.identity.server}.")
        for room, refusal in refused:
            self.note(f"Could not rejoin {for_terminal(room)}: {for_terminal(refusal.message)}")
        for window in self.windows:
            if window.kind is model.Kind.ROOM and room_key(window.name) in client.rooms:
                self.spawn(self.refresh_room(window.name))
        await self.load_recent_history()
        return True

    def _attempting(self, attempt: Attempt) -> None:
        self._set_state(
            f"reconnecting in {attempt.delay_seconds:.0f}s (try {attempt.number})", alert=True
        )
        if attempt.number > 1:
            self.note(f"Reconnecting: {for_terminal(attempt.reason)}")

    def _offline(self, state: str) -> None:
        self._set_state(state, alert=True)
        self.note(state[0].upper() + state[1:])

    def _set_state(self, state: str, alert: bool) -> None:
        self.state = state
        self.state_changed(alert)

    # --- tasks -------------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def cancel_background(self) -> list[asyncio.Task[None]]:
        """Cancel the tasks spawned; returns them, for a caller on the loop to await."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        return tasks


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel ``tasks`` and wait until each has ended; a failure other than the connection
    being lost is logged (none is left unretrieved).
    """
    for task in tasks:
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception) and not isinstance(outcome, ConnectionLost):
            logging.getLogger("parley.client").error("A task failed: %r", outcome, exc_info=outcome)
