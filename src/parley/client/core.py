"""The client core every front end shares: connect over TLS, verify the server, make requests,
receive events. No printing, no input: front ends (terminal, desktop, web) decide how to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar, overload

from parley import __version__
from parley.client.conversations import Conversations, conversation_of
from parley.client.pins import PinStatus, PinStore, server_name
from parley.protocol import limits
from parley.protocol.errors import ErrorCode, ParleyError, PeerError, RequestRefused
from parley.protocol.messages import (
    Away,
    Ban,
    Bye,
    Closing,
    DeleteFile,
    DownloadTicket,
    Error,
    Event,
    FileInfo,
    FileList,
    GetFile,
    GetUnread,
    GoingAway,
    Hello,
    History,
    HistoryPage,
    Join,
    Kick,
    Left,
    ListFiles,
    ListRooms,
    ListUsers,
    Logout,
    Message,
    Mute,
    Nick,
    Notice,
    Ok,
    Op,
    Part,
    Passwd,
    Ping,
    Pong,
    Read,
    Register,
    Reply,
    Request,
    RoomInfo,
    Rooms,
    Send,
    Sent,
    ShareFile,
    Topic,
    Unban,
    Unmute,
    Unread,
    UnreadCount,
    UploadSlot,
    UserInfo,
    Users,
    Welcome,
    Who,
    Whois,
    encode,
)
from parley.protocol.names import GENERAL_ROOM, is_room, nick_key, room_key
from parley.protocol.session import ClientSession
from parley.tls import client_context, fingerprint

ReplyT = TypeVar("ReplyT", bound=Reply)
ItemT = TypeVar("ItemT")

# A script piping many lines can outrun the server's flood control; the client then paces itself.
# A request refused as rate-limited was not carried out, so sending it again is always safe.
_RATE_LIMIT_RETRIES = 8
# A whole list (who is online, a room's members, files, unread) is read page by page; a server
# whose pages never end is believed this far (a million users in pages of 1,000).
_MOST_PAGES = 1000
_RATE_LIMIT_PAUSE_SECONDS = 0.25
# A send the server could not store (`unavailable`) is sent again with the same msg_id after
# these pauses: stored at most once, and a message stored after all comes back `duplicate`.
_UNAVAILABLE_PAUSES_SECONDS = (1.0, 2.0, 4.0)

# Bytes read per call: a few frames at a time, bounded.
_READ_CHUNK_BYTES = 64 * 1024


# What a room shows of its past when the user comes into it, as a join does.
RECENT_HISTORY_MESSAGES = 50


class ConnectionLost(ParleyError):
    """The connection ended; ``reason`` says why in words a user can read."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnected:
    """The last event of a connection: the server closed it or it broke. ``expected`` is true
    when the user asked to leave (``bye``, ``logout``): nothing to tell them.
    """

    reason: str
    code: str | None = None
    expected: bool = False


# What a front end tells the user, once in each conversation whose history is reloaded.
HISTORY_RELOADED_TEXT = "The server restarted after losing its last messages; history was reloaded."


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryReloaded:
    """The server may have lost its last messages since the previous connection (its history
    epoch changed), so what was shown of the conversation with ``to`` may name messages it no
    longer has, or other messages under the same seqs. Its recent history follows, as history
    messages: show those instead of what was shown, and say why (HISTORY_RELOADED_TEXT).
    """

    to: str


# An error reply with no request id (the server could not read the request) is an event too.
ClientEvent = Event | Error | Disconnected | HistoryReloaded
_REPLY_TYPES = (
    Welcome,
    Ok,
    Sent,
    Users,
    Pong,
    RoomInfo,
    Rooms,
    HistoryPage,
    Unread,
    UnreadCount,
    UserInfo,
    UploadSlot,
    DownloadTicket,
    FileInfo,
    FileList,
    Error,
)


@dataclasses.dataclass(frozen=True, slots=True)
class ServerIdentity:
    """Who we are talking to. ``pin_status`` is None when a CA verified the server, or when
    verification was switched off (``verified`` False).
    """

    server: str
    fingerprint: str
    verified: bool
    pin_status: PinStatus | None


class ChatClient:
    """One connection to a Parley server. Create with :meth:`connect`.

    Replies are matched to requests by id; events arrive in order through :meth:`next_event`,
    ending with one :class:`Disconnected`. A ``message`` whose ``seq`` was already seen in its
    conversation is dropped here (see :mod:`parley.client.conversations`), so every front end
    shows each message once.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        identity: ServerIdentity,
        conversations: Conversations | None = None,
    ) -> None:
        self.identity = identity
        self.nick = ""
        # "" for a guest; the account's role ("user", "moderator", "admin") once logged in.
        self.role = ""
        # The session token of this login, when there is one: save it to log in without the
        # password next time.
        self.token = ""
        self.welcome: Welcome | None = None
        self.conversations = conversations if conversations is not None else Conversations()
        # Rooms this connection is in, key -> name as the server spells it, last joined last.
        self.rooms: dict[str, str] = {}
        # For an account, room key -> the seq of the first message it has not read, as learnt
        # by :meth:`recent_history`: where a front end puts its "new messages" divider.
        self.first_unread: dict[str, int] = {}
        # Room key -> the seq from which the messages :meth:`recent_history` queued are unread:
        # those before it were shown for context (read already, or from before the user came).
        self._context_before: dict[str, int] = {}
        self._reader = reader
        self._writer = writer
        self._session = ClientSession()
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._events: asyncio.Queue[ClientEvent] = asyncio.Queue()
        # Conversation key -> live messages kept back while its missed messages are fetched,
        # so that they are shown after them, in order.
        self._holding: dict[str, list[Message]] = {}
        self._leaving = False
        # Why this connection is being left for another, once the server said it goes away.
        self._moving = ""
        self._lost: ConnectionLost | None = None
        # Where this connection went, for the file connections beside it.
        self.host = ""
        self.cafile: Path | None = None
        self._read_task = asyncio.create_task(self._read_loop(), name="parley-client-reader")

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        pins: PinStore | None,
        cafile: Path | None = None,
        timeout_seconds: float = 15.0,
        conversations: Conversations | None = None,
    ) -> ChatClient:
        """Open TLS, verify the server, and say hello.

        Verification: with ``cafile``, the CA chain and host name; else, with ``pins``, the
        certificate's fingerprint (trust on first use); with neither, none at all. Pass the
        ``conversations`` of an earlier connection to resume where it stopped (see
        :meth:`catch_up`). Raises CertificateChanged (nothing was sent), OSError /
        ssl.SSLError / TimeoutError when the server cannot be reached, RequestRefused or
        ConnectionLost when it refuses the hello.
        """
        context: ssl.SSLContext = client_context(cafile)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if cafile is not None else None
            ),
            timeout_seconds,
        )
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        name = server_name(host, port)
        presented = fingerprint(der) if der else ""
        status: PinStatus | None = None
        try:
            if cafile is None and pins is not None:
                status = pins.check(name, presented)
        except BaseException:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            raise
        identity = ServerIdentity(name, presented, cafile is not None or pins is not None, status)
        client = cls(reader, writer, identity, conversations)
        client.host, client.cafile = host, cafile
        try:
            client.welcome = await asyncio.wait_for(client._hello(), timeout_seconds)
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def history_epoch(self) -> int:
        """The server's history epoch, told at hello (0 from a server that tells none)."""
        return self.welcome.history_epoch if self.welcome is not None else 0

    @property
    def is_account(self) -> bool:
        """Logged in to a registered account (not as a guest)."""
        return bool(self.role)

    # --- login and account ---------------------------------------------------------------

    async def _hello(self) -> Welcome:
        return await self._request(
            lambda id: Hello(
                id=id, versions=[limits.PROTOCOL_VERSION], client=f"parley/{__version__}"
            ),
            Welcome,
        )

    async def login(self, nick: str, password: str | None = None, token: str | None = None) -> Ok:
        """Take ``nick``: as a guest, or for a registered nickname with its ``password`` or the
        ``token`` of an earlier login.

        Returns the ``ok``: the nickname as the server stored it and, for an account, its
        role, the rooms it is back in and, after a password, a new session token (also kept in
        :attr:`token`). Raises RequestRefused: PASSWORD_REQUIRED, SESSION_EXPIRED, AUTH_FAILED,
        TOO_MANY_ATTEMPTS, ACCOUNT_REQUIRED, NICK_TAKEN, INVALID_NICK.
        """
        ok = await self._request(
            lambda id: Nick(id=id, nick=nick, password=password or "", token=token or ""), Ok
        )
        self.token = ok.token or token or ""
        return ok

    async def register(self, password: str) -> Ok:
        """Make the nickname in use an account; the ``ok`` carries a session token. Raises
        RequestRefused: INVALID_PASSWORD, ALREADY_REGISTERED, RATE_LIMITED.
        """
        ok = await self._request(lambda id: Register(id=id, password=password), Ok)
        self.role, self.token = ok.role or "user", ok.token
        return ok

    async def change_password(self, old: str, new: str) -> Ok:
        """Change the account's password. The server logs out every other session of the
        account; the ``ok`` carries this one's new token. Raises RequestRefused: AUTH_FAILED,
        TOO_MANY_ATTEMPTS, INVALID_PASSWORD, ACCOUNT_REQUIRED.
        """
        ok = await self._request(lambda id: Passwd(id=id, old=old, new=new), Ok)
        self.token = ok.token
        return ok

    async def logout(self) -> None:
        """Revoke this login's session token on the server, then close the connection."""
        self._leaving = True
        try:
            await self._request(lambda id: Logout(id=id), Ok)
        except BaseException:
            self._leaving = False
            raise
        self.token = ""
        await self.close()

    # --- chat ----------------------------------------------------------------------------

    async def send(self, to: str, text: str, msg_id: str | None = None) -> Sent:
        """Send ``text`` to a room or a user; returns once the server has stored it.

        ``msg_id`` identifies the message across retries; a new one is made when omitted.
        While the server answers ``unavailable`` it is sent again, a few times, each retry
        told to the user as a ``notice`` event. Raises RequestRefused.
        """
        if len(text) > limits.MAX_TEXT_CHARS:
            # Refused here: past the frame limit the server would have to drop the connection.
            raise RequestRefused(
                ErrorCode.INVALID_TEXT,
                f"Not sent: a message is at most {limits.MAX_TEXT_CHARS:,} characters, and "
                f"this one has {len(text):,}.",
            )
        message_id = msg_id or uuid.uuid4().hex
        for attempt, pause in enumerate((*_UNAVAILABLE_PAUSES_SECONDS, None), start=1):
            try:
                return await self._request(
                    lambda id: Send(id=id, to=to, text=text, msg_id=message_id), Sent
                )
            except RequestRefused as refusal:
                if refusal.code != ErrorCode.UNAVAILABLE or pause is None:
                    raise
            self._events.put_nowait(
                Notice(
                    text=f"The server could not store your message to {to} just now; sending "
                    f"it again in {pause:g} s (try {attempt + 1} of "
                    f"{len(_UNAVAILABLE_PAUSES_SECONDS) + 1})."
                )
            )
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def list_users(self, page_size: int = limits.MAX_LISTED_USERS) -> Users:
        """Everyone online, in name order, and how many the server counts: all pages, one
        request per ``page_size`` users.
        """

        async def page(after: str) -> tuple[Users, list[str], str]:
            users = await self._request(
                lambda id: ListUsers(id=id, after=after, limit=page_size), Users
            )
            return users, users.users, users.next

        first, users = await self._every_page(page)
        return Users(id=first.id, users=users, total=first.total)

    async def ping(self) -> None:
        await self._request(lambda id: Ping(id=id), Pong)

    async def bye(self) -> None:
        """Leave the chat politely, then close."""
        self._leaving = True
        with contextlib.suppress(ConnectionLost, RequestRefused):
            await asyncio.wait_for(self._request(lambda id: Bye(id=id), Ok), 5.0)
        await self.close()

    async def move_on(self, notice: GoingAway) -> None:
        """The server is going away (``going-away``): let the requests already sent be
        answered (for up to half the time the server gives), then leave with ``bye``. The
        Disconnected event that follows is not ``expected``: reconnect (the address leads to
        another server) and :meth:`resume`. Requests made meanwhile raise ConnectionLost.
        """
        self._moving = notice.message
        pending = [future for future in self._pending.values() if not future.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, notice.seconds / 2))
        with contextlib.suppress(ConnectionLost, RequestRefused, TimeoutError):
            async with asyncio.timeout(max(1.0, notice.seconds / 2)):
                await self._request_once(lambda id: Bye(id=id), Ok, leaving=True)
        self._writer.close()

    async def away(self, text: str = "") -> None:
        """Mark this user away with ``text``, which a private message's sender is shown; empty
        ``text`` marks it back. Raises RequestRefused: INVALID_TEXT.
        """
        await self._request(lambda id: Away(id=id, text=text), Ok)

    async def whois(self, nick: str) -> UserInfo:
        """What the server knows of ``nick``: whether it is online (then its away text, rooms,
        login time and idle time) and whether it is an account (then its role). Raises
        RequestRefused: INVALID_NICK, NO_SUCH_USER, UNAVAILABLE.
        """
        return await self._request(lambda id: Whois(id=id, nick=nick), UserInfo)

    # --- rooms ---------------------------------------------------------------------------

    async def join(self, room: str) -> RoomInfo:
        """Join ``room``, creating it if the server allows; it becomes the last joined room.

        Returns once the room's messages are queued as events: the latest ones the server sends
        after the reply and, for a room seen before (on this connection or on the one whose
        conversations were handed over), every message since the last one seen. Each once, in
        order, before the live ones. Costs one extra round trip (two or more when catching up).
        Raises RequestRefused: INVALID_ROOM, BANNED, NOT_PERMITTED.
        """
        key = room_key(room)
        with self._hold(key):
            info = await self._request(lambda id: Join(id=id, room=room), RoomInfo)
            self.rooms.pop(key, None)
            self.rooms[key] = info.room
            if self.conversations.last_seq(key):
                await self._fetch_missed(key, info.room)
            else:
                # The server sends the join's history before answering the next request.
                await self.ping()
        return info

    async def part(self, room: str) -> None:
        """Leave ``room``. Raises RequestRefused: NOT_IN_ROOM, NO_SUCH_ROOM."""
        await self._request(lambda id: Part(id=id, room=room), Ok)
        self.rooms.pop(room_key(room), None)

    async def list_rooms(self, after: str = "") -> Rooms:
        """One page of the rooms, in name order, after the room named ``after`` (""
        from the first); its ``next`` is the ``after`` of the next page ("" on the last).
        """
        return await self._request(lambda id: ListRooms(id=id, after=after), Rooms)

    @overload
    async def topic(self, room: str) -> RoomInfo: ...
    @overload
    async def topic(self, room: str, text: str) -> None: ...
    async def topic(self, room: str, text: str | None = None) -> RoomInfo | None:
        """With no ``text``, the room as it is (topic, who set it, members). With ``text``,
        set the topic; the room then sees a ``topic`` event. Raises RequestRefused:
        NOT_IN_ROOM, NOT_PERMITTED, INVALID_TOPIC, NO_SUCH_ROOM.
        """
        if text is None:
            return await self._request(lambda id: Topic(id=id, room=room), RoomInfo)
        await self._request(lambda id: Topic(id=id, room=room, text=text), Ok)
        return None

    async def who_page(self, room: str, after: str = "", limit: int = 100) -> Users:
        """One page of who is in ``room``, in name order, after the name ``after``. Raises
        RequestRefused: NO_SUCH_ROOM (nobody is in it).
        """
        return await self._request(
            lambda id: Who(id=id, room=room, after=after, limit=limit), Users
        )

    async def who(self, room: str, page_size: int = limits.MAX_LISTED_USERS) -> Users:
        """Who is in ``room``, in name order: all pages, one request per ``page_size``
        members. Raises RequestRefused: NO_SUCH_ROOM (nobody is in it).
        """

        async def page(after: str) -> tuple[Users, list[str], str]:
            users = await self._request(
                lambda id: Who(id=id, room=room, after=after, limit=page_size), Users
            )
            return users, users.users, users.next

        first, members = await self._every_page(page)
        return Users(id=first.id, users=members, total=first.total)

    # --- history -------------------------------------------------------------------------

    async def history(
        self, to: str, after: int | None = None, before: int | None = None, limit: int = 50
    ) -> HistoryPage:
        """A page of the conversation with ``to`` (a room this user is in, or a nickname): the
        first ``limit`` after seq ``after``, else the last ``limit`` before ``before``, else the
        latest. The messages come in the reply, not as events. Raises RequestRefused.
        """
        return await self._request(
            lambda id: History(id=id, to=to, after=after, before=before, limit=limit),
            HistoryPage,
        )

    async def mark_read(self, to: str, seq: int) -> None:
        """Everything up to ``seq`` with ``to`` has been read (accounts only)."""
        await self._request(lambda id: Read(id=id, to=to, seq=seq), Ok)

    async def unread(self) -> Unread:
        """Conversations with messages after the account's read marker (accounts only): all
        pages, one request per MAX_LISTED_UNREAD conversations.
        """

        async def page(after: str) -> tuple[Unread, list[UnreadCount], str]:
            unread = await self._request(lambda id: GetUnread(id=id, after=after), Unread)
            return unread, unread.conversations, unread.next

        first, conversations = await self._every_page(page)
        return Unread(id=first.id, conversations=conversations)

    async def recent_history(self, limit: int = RECENT_HISTORY_MESSAGES) -> int:
        """Queue the latest ``limit`` messages of every room this connection is in but has not
        seen yet (those it was put in at login: #general, an account's rooms), as history
        events, before any live message of that room, as a join does. For an account, first
        learn where each room's unread messages start (:attr:`first_unread`). Returns how many
        messages were queued. Costs one request per room, and one more for an account.
        """
        if self.is_account:
            with contextlib.suppress(RequestRefused):
                unread = await self.unread()
                self.first_unread.update(
                    (room_key(entry.to), entry.last_seq - entry.count + 1)
                    for entry in unread.conversations
                    if entry.to.startswith("#") and entry.count > 0
                )
        queued = 0
        for key, name in list(self.rooms.items()):
            if self.conversations.last_seq(key):
                continue  # seen on this or the previous connection: catch_up's business
            with self._hold(key):
                try:
                    page = await self.history(name, limit=limit)
                except RequestRefused:
                    continue  # left or removed meanwhile
                if page.messages:
                    self._context_before[key] = self.first_unread.get(
                        key, page.messages[-1].seq + 1
                    )
                # A message that also arrived live meanwhile is shown as live, not as history.
                live = {message.seq for message in self._holding.get(key, [])}
                for message in page.messages:
                    if message.seq not in live:
                        queued += self._accept(message)
        return queued

    def is_context(self, message: Message) -> bool:
        """True for a message :meth:`recent_history` queued that is not news: the account had
        read it, or (a guest) it was said before the user came. Unread counts leave it out.
        """
        if not message.history or not is_room(message.to):
            return False
        return message.seq < self._context_before.get(room_key(message.to), 0)

    def starts_unread(self, message: Message) -> bool:
        """True for the first message of a room shown after :meth:`recent_history` that the
        account had not read (once per room): the "new messages" divider goes above it.
        """
        if not message.history or not message.to.startswith("#"):
            return False
        key = room_key(message.to)
        first = self.first_unread.get(key)
        if first is None or message.seq < first:
            return False
        del self.first_unread[key]
        return True

    async def catch_up(self) -> int:
        """Fetch what was missed in every conversation seen so far, and queue it as events.

        For each conversation in :attr:`conversations` that this connection may read (rooms
        it is in, private conversations), asks for the messages after the last seq seen,
        paging while the server has more. Live messages of that conversation arriving
        meanwhile are held back and queued after, so a reconnecting front end shows no gap,
        no duplicate, and no message out of order. Returns how many messages were queued.
        Costs one history request per conversation and page.
        """
        queued = 0
        for key, target, _ in self.conversations.known():
            if key.startswith("#") and key not in self.rooms:
                continue  # the server only shows a room's history to its members
            with self._hold(key):
                try:
                    queued += await self._fetch_missed(key, target)
                except RequestRefused:
                    continue  # gone meanwhile (parted, kicked): nothing to catch up on
        return queued

    async def resume(self, previous: ChatClient) -> list[tuple[str, RequestRefused]]:
        """Carry on where ``previous`` (a connection that was lost) stopped: log in as it did
        (its session token, or the same guest nickname), be back in its rooms, and queue what
        was missed in every conversation seen, each message once and in order.

        Every known conversation is held from before the login, so live messages that arrive
        while the missed ones are fetched are queued after them. Returns the rooms that could
        not be joined again, with why (a ban meanwhile). Raises RequestRefused when the login
        is refused (NICK_TAKEN while the server has not yet noticed the old connection is
        gone, SESSION_EXPIRED...), ConnectionLost.

        When the server's history epoch differs from the one ``previous`` was told, the seqs
        seen before may since have been given to other messages: none is trusted. Each known
        conversation that can still be read is announced with a :class:`HistoryReloaded`,
        followed by its latest RECENT_HISTORY_MESSAGES, as a first look at it would show them.
        """
        known = self.conversations.known()
        reload = self.history_epoch != previous.history_epoch
        with contextlib.ExitStack() as holding:
            for key, _, _ in known:
                holding.enter_context(self._hold(key))
            if reload:
                self.conversations.forget_seqs()
            await self.login(previous.nick, token=previous.token or None)
            refused: list[tuple[str, RequestRefused]] = []
            rejoined: set[str] = set()
            for key, name in previous.rooms.items():
                if key in self.rooms:
                    continue  # an account is put back in its rooms at login
                try:
                    await self.join(name)  # fetches what was missed there
                    rejoined.add(key)
                except RequestRefused as refusal:
                    refused.append((name, refusal))
            for key, target, last in known:
                if key.startswith("#") and key not in self.rooms:
                    continue
                with contextlib.suppress(RequestRefused):
                    if reload:
                        await self._reload(key, target, last)
                    elif key not in rejoined:
                        await self._fetch_missed(key, target)
        return refused

    async def _reload(self, key: str, target: str, last: int) -> None:
        """Queue a HistoryReloaded for ``target``, then its latest messages. A conversation
        that cannot be read any more (a guest's, gone) keeps what it showed.
        """
        page = await self.history(target, limit=RECENT_HISTORY_MESSAGES)
        self._events.put_nowait(HistoryReloaded(target))
        # Unread counts leave out what was probably shown already.
        self._context_before[key] = last + 1
        for message in page.messages:
            self._accept(message)

    async def _fetch_missed(self, key: str, target: str) -> int:
        queued = 0
        after = self.conversations.last_seq(key)
        while True:
            page = await self.history(target, after=after, limit=limits.MAX_HISTORY_MESSAGES)
            for message in page.messages:
                queued += self._accept(message)
            if not page.more or not page.messages:
                return queued
            after = page.messages[-1].seq

    # --- files (the bytes travel on connections of their own: parley.client.transfer) ----

    async def share(self, to: str, name: str, size: int, sha256: str) -> UploadSlot:
        """Offer a file to a room or a user; the reply says where to send its bytes. Raises
        RequestRefused: INVALID_FILE, FILE_TOO_LARGE, QUOTA_EXCEEDED, TOO_MANY_UPLOADS,
        NOT_IN_ROOM, NO_SUCH_USER.
        """
        return await self._request(
            lambda id: ShareFile(id=id, to=to, name=name, size=size, sha256=sha256), UploadSlot
        )

    async def get_file(self, file_id: str) -> DownloadTicket:
        """Ask to download a file. Raises RequestRefused: NO_SUCH_FILE."""
        return await self._request(lambda id: GetFile(id=id, file_id=file_id), DownloadTicket)

    async def files(self, to: str = "", page_size: int = limits.MAX_LISTED_FILES) -> FileList:
        """The files this user may download, newest first (only those of ``to`` if given):
        all pages, one request per ``page_size`` files (or fewer, for long names).
        """

        async def page(after: str) -> tuple[FileList, list[FileInfo], str]:
            listing = await self._request(
                lambda id: ListFiles(id=id, to=to, after=after, limit=page_size), FileList
            )
            return listing, listing.files, listing.next

        first, files = await self._every_page(page)
        return FileList(id=first.id, files=files)

    async def delete_file(self, file_id: str) -> None:
        """Delete a file this user shared. Raises RequestRefused: NO_SUCH_FILE."""
        await self._request(lambda id: DeleteFile(id=id, file_id=file_id), Ok)

    # --- moderation ----------------------------------------------------------------------

    async def kick(self, room: str, nick: str, reason: str = "") -> None:
        """Put ``nick`` out of ``room``. Raises RequestRefused: NOT_PERMITTED, NOT_IN_ROOM."""
        await self._request(lambda id: Kick(id=id, room=room, nick=nick, reason=reason), Ok)

    async def ban(self, room: str, nick: str, seconds: int | None = None, reason: str = "") -> None:
        """Ban ``nick`` from ``room`` for ``seconds`` (None: until unbanned); kicks it too."""
        await self._request(
            lambda id: Ban(id=id, room=room, nick=nick, seconds=seconds, reason=reason), Ok
        )

    async def unban(self, room: str, nick: str) -> None:
        await self._request(lambda id: Unban(id=id, room=room, nick=nick), Ok)

    async def mute(
        self, room: str, nick: str, seconds: int | None = None, reason: str = ""
    ) -> None:
        """Stop ``nick`` sending to ``room`` for ``seconds`` (None: until unmuted)."""
        await self._request(
            lambda id: Mute(id=id, room=room, nick=nick, seconds=seconds, reason=reason), Ok
        )

    async def unmute(self, room: str, nick: str) -> None:
        await self._request(lambda id: Unmute(id=id, room=room, nick=nick), Ok)

    async def op(self, room: str, nick: str) -> None:
        """Make the account ``nick`` an operator of ``room`` (server moderators only)."""
        await self._request(lambda id: Op(id=id, room=room, nick=nick), Ok)

    # --- requests ------------------------------------------------------------------------

    async def _every_page(
        self, page: Callable[[str], Awaitable[tuple[ReplyT, list[ItemT], str]]]
    ) -> tuple[ReplyT, list[ItemT]]:
        """Ask ``page`` for the first page, then after each page's ``next`` until it is ""
        (or does not move on, or _MOST_PAGES were read); the first reply and every item.
        """
        first, items, following = await page("")
        for _ in range(_MOST_PAGES - 1):
            if not following:
                break
            _, more, after = await page(following)
            items += more
            following = "" if after == following else after
        return first, items

    async def _request(self, make: Callable[[int], Request], expect: type[ReplyT]) -> ReplyT:
        for attempt in range(1, _RATE_LIMIT_RETRIES + 1):
            try:
                return await self._request_once(make, expect)
            except RequestRefused as refusal:
                if refusal.code != ErrorCode.RATE_LIMITED or attempt == _RATE_LIMIT_RETRIES:
                    raise
            # Told to slow down: wait and ask again (a send keeps its msg_id, so it is stored
            # once even if an earlier try got through).
            await asyncio.sleep(_RATE_LIMIT_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")

    async def _request_once(
        self, make: Callable[[int], Request], expect: type[ReplyT], *, leaving: bool = False
    ) -> ReplyT:
        if self._lost is not None:
            raise self._lost
        if self._moving and not leaving:
            raise ConnectionLost(self._moving)
        request_id = self._session.next_request_id()
        frame = encode(make(request_id))
        if len(frame) > limits.MAX_CLIENT_FRAME_BYTES:
            raise RequestRefused(
                ErrorCode.FRAME_TOO_LARGE,
                f"Not sent: that is too long ({len(frame):,} bytes; the most is "
                f"{limits.MAX_CLIENT_FRAME_BYTES // 1024} KiB).",
            )
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(frame)
            reply = await future
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, Error):
            raise RequestRefused(reply.code, reply.message)
        if not isinstance(reply, expect):
            raise ConnectionLost(
                f"The server answered with an unexpected '{type(reply).__name__}'."
            )
        return reply

    # --- events --------------------------------------------------------------------------

    async def next_event(self) -> ClientEvent:
        """The next event; after a Disconnected, Disconnected again forever."""
        if self._lost is not None and self._events.empty():
            return Disconnected(self._lost.reason, self._lost.code, self._leaving)
        return await self._events.get()

    def _is_me(self, nick: str) -> bool:
        return bool(self.nick) and nick_key(nick) == nick_key(self.nick)

    def _accept(self, message: Message) -> bool:
        """Queue ``message`` unless its seq was seen; True if it was queued."""
        key, target = conversation_of(message, self.nick)
        if not self.conversations.accept(key, target, message.seq, message.msg_id):
            return False
        self._events.put_nowait(message)
        return True

    @contextlib.contextmanager
    def _hold(self, key: str) -> Iterator[None]:
        """Hold back live messages of conversation ``key`` until the block ends, then queue
        those not seen meanwhile, in seq order.
        """
        if key in self._holding:
            yield  # already held by an outer caller, which releases it
            return
        self._holding[key] = []
        try:
            yield
        finally:
            for message in sorted(self._holding.pop(key), key=lambda held: held.seq):
                self._accept(message)

    def _on_event(self, frame: Event | Error) -> None:
        match frame:
            case Message():
                held = self._holding.get(conversation_of(frame, self.nick)[0])
                if held is not None:
                    held.append(frame)
                else:
                    self._accept(frame)
                return
            case Left(room=room, nick=nick, reason=reason) if self._is_me(nick) and reason:
                # Put out (kicked, banned). A plain ``left`` for us comes as the server logs
                # us out: those rooms are the ones to be back in after a reconnect.
                self.rooms.pop(room_key(room), None)
        self._events.put_nowait(frame)

    def _on_reply(self, frame: Reply) -> None:
        if isinstance(frame, Ok) and frame.nick:
            # Logged in. Set here, not when login() resumes: the frames after this one (the
            # user's rooms, private messages kept while away) are read before it does.
            self.nick, self.role = frame.nick, frame.role
            self.rooms = {room_key(name): name for name in frame.rooms or [GENERAL_ROOM]}
        future = self._pending.get(frame.id) if frame.id is not None else None
        if future is not None and not future.done():
            future.set_result(frame)

    async def _read_loop(self) -> None:
        reason, code = "The connection to the server was lost.", None
        first = True
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK_BYTES)
                if not data:
                    break
                if first and data.startswith(b"HTTP/"):
                    reason, code = self._web_port_reason(), None
                    break
                first = False
                for frame in self._session.receive_data(data):
                    if isinstance(frame, Closing):
                        reason, code = frame.message, frame.code
                    if isinstance(frame, _REPLY_TYPES) and frame.id is not None:
                        self._on_reply(frame)
                    else:
                        self._on_event(frame)
        except PeerError as exc:
            reason, code = f"The server broke the protocol: {exc.detail}", str(exc.code)
        except (OSError, ssl.SSLError) as exc:
            reason = f"The connection to the server was lost: {exc}"
        finally:
            if self._moving and code is None:
                # Left for another server on purpose: say so, not "lost".
                reason = self._moving
            self._lost = ConnectionLost(reason, code)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self._lost)
            self._events.put_nowait(Disconnected(reason, code, self._leaving))
            self._writer.close()

    def _web_port_reason(self) -> str:
        """The server answered in HTTP: this is a web port (Parley's, or any HTTPS server's),
        not a chat port. Say which is which, not "broke the protocol".
        """
        return (
            "This port speaks HTTPS (web pages for a browser, such as Parley's web client), "
            "not Parley's chat protocol: connect to the server's chat port instead "
            f"({limits.DEFAULT_PORT} unless the server's settings name another port)."
        )

    async def close(self) -> None:
        """Close the connection and stop reading. Idempotent."""
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
            await self._writer.wait_closed()
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
