"""The wire messages: one frozen msgspec Struct per kind, two unions, one encode/decode pair.

Every frame is a JSON object with a ``type`` field naming its kind. Requests come from the client
and carry an ``id``; the server answers each with exactly one reply carrying the same ``id``
(``welcome``, ``ok``, ``sent``, ``users``, ``pong`` or ``error``). Events are pushed by the server
and carry no ``id``. Field-level limits here are checked by the decoder, before a handler sees
the message; docs/protocol.md describes each field.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec

from parley.protocol import limits
from parley.protocol.errors import InvalidMessage, MalformedFrame

T = TypeVar("T")

# A request id is a JSON number the client picks; 2**53 keeps it exact in JavaScript clients.
RequestId = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
# Text, nicknames and targets are bounded by the frame size here; their own rules (length,
# characters) are checked by parley.protocol.text and .names, which answer with specific codes.
MsgId = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.MAX_MSG_ID_CHARS)]


class _Frame(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    """Common base: frozen, tagged by ``type``, unknown fields ignored (forward compatible)."""


# --- requests (client to server) -----------------------------------------------------------


class Hello(_Frame, tag="hello", frozen=True):
    """First request on a connection: the protocol versions the client speaks."""

    id: RequestId
    versions: Annotated[list[int], msgspec.Meta(min_length=1, max_length=16)]
    client: Annotated[str, msgspec.Meta(max_length=limits.MAX_CLIENT_NAME_CHARS)] = ""


Password = Annotated[str, msgspec.Meta(max_length=limits.MAX_PASSWORD_CHARS)]
Token = Annotated[str, msgspec.Meta(max_length=limits.MAX_TOKEN_CHARS)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class Nick(_Frame, tag="nick", frozen=True):
    """Choose the nickname to chat under. A registered nickname needs its account's
    ``password``, or a ``token`` from an earlier login (resuming without the password).
    """

    id: RequestId
    nick: str
    password: Password = ""
    token: Token = ""


class Send(_Frame, tag="send", frozen=True):
    """Send ``text`` to a room (``#general``) or privately to a user (a nickname)."""

    id: RequestId
    to: str
    text: str
    msg_id: MsgId


# The ``after`` of a page of names: the last name of the page before.
PageAfterNick = Annotated[str, msgspec.Meta(max_length=limits.MAX_NICK_CHARS)]
UsersLimit = Annotated[int, msgspec.Meta(ge=1, le=limits.MAX_LISTED_USERS)]
# The ``after`` of a page of files or unread conversations: the ``next`` of the page before,
# which the client does not read.
Cursor = Annotated[str, msgspec.Meta(max_length=limits.MAX_CURSOR_CHARS)]


class ListUsers(_Frame, tag="list", frozen=True):
    """One page of who is online, in name order: those after the user named ``after`` (""
    from the first), at most ``limit``.
    """

    id: RequestId
    after: PageAfterNick = ""
    limit: UsersLimit = limits.MAX_LISTED_USERS


class Ping(_Frame, tag="ping", frozen=True):
    """Liveness check; answered with ``pong``."""

    id: RequestId


class Bye(_Frame, tag="bye", frozen=True):
    """Leave the chat; answered with ``ok``, then the server closes the connection."""

    id: RequestId


class Register(_Frame, tag="register", frozen=True):
    """Register the nickname in use as an account with this password."""

    id: RequestId
    password: Password


class Passwd(_Frame, tag="passwd", frozen=True):
    """Change the account's password; every other session of the account is revoked."""

    id: RequestId
    old: Password
    new: Password


class Logout(_Frame, tag="logout", frozen=True):
    """Revoke this connection's session token, then close like ``bye``."""

    id: RequestId


class Join(_Frame, tag="join", frozen=True):
    """Join a room, creating it if it does not exist."""

    id: RequestId
    room: str


class Part(_Frame, tag="part", frozen=True):
    id: RequestId
    room: str


class ListRooms(_Frame, tag="rooms", frozen=True):
    """One page of the rooms, in name order: those after the room named ``after`` ("" from
    the first), at most ``limit``.
    """

    id: RequestId
    after: Annotated[str, msgspec.Meta(max_length=limits.MAX_ROOM_CHARS)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=limits.MAX_LISTED_ROOMS)] = limits.ROOMS_PAGE


class Topic(_Frame, tag="topic", frozen=True):
    """Read a room's topic (``text`` absent), or set it."""

    id: RequestId
    room: str
    text: str | None = None


class Who(_Frame, tag="who", frozen=True):
    """One page of who is in a room, like ``list``; answered with ``users``."""

    id: RequestId
    room: str
    after: PageAfterNick = ""
    limit: UsersLimit = limits.MAX_LISTED_USERS


class History(_Frame, tag="history", frozen=True):
    """Messages of a conversation (a room, or the private one with user ``to``): the first
    ``limit`` after ``after`` (resuming), else the last ``limit`` before ``before`` (paging back),
    else the latest ``limit``.
    """

    id: RequestId
    to: str
    after: Seq | None = None
    before: Seq | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=limits.MAX_HISTORY_MESSAGES)] = 50


class Read(_Frame, tag="read", frozen=True):
    """Everything up to ``seq`` in conversation ``to`` has been read (accounts only)."""

    id: RequestId
    to: str
    seq: Seq


class GetUnread(_Frame, tag="unread", frozen=True):
    """One page of the conversations with unread messages: from the first, or after the
    ``next`` of the page before.
    """

    id: RequestId
    after: Cursor = ""


Seconds = Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 86400)]
Reason = Annotated[str, msgspec.Meta(max_length=limits.MAX_REASON_CHARS)]


class Kick(_Frame, tag="kick", frozen=True):
    id: RequestId
    room: str
    nick: str
    reason: Reason = ""


class Ban(_Frame, tag="ban", frozen=True):
    """Ban a nickname from a room for ``seconds`` (absent: until unbanned); also kicks it."""

    id: RequestId
    room: str
    nick: str
    seconds: Seconds | None = None
    reason: Reason = ""


class Unban(_Frame, tag="unban", frozen=True):
    id: RequestId
    room: str
    nick: str


class Mute(_Frame, tag="mute", frozen=True):
    """Stop a nickname from sending to a room for ``seconds`` (absent: until unmuted)."""

    id: RequestId
    room: str
    nick: str
    seconds: Seconds | None = None
    reason: Reason = ""


class Unmute(_Frame, tag="unmute", frozen=True):
    id: RequestId
    room: str
    nick: str


class Op(_Frame, tag="op", frozen=True):
    """Make an account an operator of a room, for good (server moderators and admins)."""

    id: RequestId
    room: str
    nick: str


class Away(_Frame, tag="away", frozen=True):
    """Mark the user away with ``text``, shown to whoever messages it; empty ``text``: back."""

    id: RequestId
    text: str = ""


class Whois(_Frame, tag="whois", frozen=True):
    """Ask about a user, online or a registered account; answered with ``whois``."""

    id: RequestId
    nick: str


FileId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
# What a client may claim for a name; the server cleans it and may shorten it further.
RawFileName = Annotated[str, msgspec.Meta(max_length=16 * 1024)]


class ShareFile(_Frame, tag="share", frozen=True):
    """Offer a file to a room or a user. Answered with ``upload``: where and how to send the
    bytes (a second connection, see docs/protocol.md, "Files").
    """

    id: RequestId
    to: str
    name: RawFileName
    size: Annotated[int, msgspec.Meta(ge=0, le=2**53)]
    sha256: Sha256


class GetFile(_Frame, tag="get", frozen=True):
    """Ask to download a file; answered with ``download``."""

    id: RequestId
    file_id: FileId


class ListFiles(_Frame, tag="files", frozen=True):
    """One page of the files this user may download, all or those of one conversation
    (``to``), newest first: from the first, or after the ``next`` of the page before; at most
    ``limit``.
    """

    id: RequestId
    to: str = ""
    after: Cursor = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=limits.MAX_LISTED_FILES)] = limits.MAX_LISTED_FILES


class DeleteFile(_Frame, tag="rmfile", frozen=True):
    """Delete a file this user shared."""

    id: RequestId
    file_id: FileId


Request = (
    Hello
    | Nick
    | Send
    | ListUsers
    | Ping
    | Bye
    | Register
    | Passwd
    | Logout
    | Join
    | Part
    | ListRooms
    | Topic
    | Who
    | History
    | Read
    | GetUnread
    | Kick
    | Ban
    | Unban
    | Mute
    | Unmute
    | Op
    | Away
    | Whois
    | ShareFile
    | GetFile
    | ListFiles
    | DeleteFile
)


# --- replies (server to client, one per request) -------------------------------------------


class Welcome(_Frame, tag="welcome", frozen=True):
    """Reply to ``hello``: the version chosen and the limits the server enforces.

    ``history_epoch`` (left out while 0) changes when the server may have lost its last stored
    messages in a crash: seqs seen under another epoch may since name other messages.
    """

    id: int
    version: int
    server: str
    max_frame_bytes: int
    max_text_chars: int
    history_epoch: int = 0


class Ok(_Frame, tag="ok", frozen=True):
    """The request succeeded.

    To ``nick``: ``nick`` as the server stored it; for an account, its ``role``, the ``rooms`` it
    is in and, after a password login, a session ``token`` to log in with next time. To
    ``register`` and ``passwd``: a new ``token``.
    """

    id: int
    nick: str = ""
    role: str = ""
    token: str = ""
    rooms: list[str] = msgspec.field(default_factory=list)


class Sent(_Frame, tag="sent", frozen=True):
    """A ``send`` was accepted and stored as ``seq`` in its conversation at ``ts``.

    ``duplicate`` is true when this ``msg_id`` had been stored before (a retry): nothing new was
    stored or delivered. ``away`` is the recipient's away text when a private message went to
    someone who is away; ``offline`` is true when it went to an account that is not online (it
    gets it at its next login).
    """

    id: int
    seq: int
    ts: int
    duplicate: bool = False
    away: str = ""
    offline: bool = False


class Users(_Frame, tag="users", frozen=True):
    """Reply to ``list`` and ``who``: one page of nicknames (at most MAX_LISTED_USERS), how
    many there are in all, and the ``after`` of the next page ("" when this is the last).
    """

    id: int
    users: list[str]
    total: int
    next: str = ""


class Pong(_Frame, tag="pong", frozen=True):
    id: int


class RoomInfo(_Frame, tag="room", frozen=True):
    """Reply to ``join`` and ``topic``: the room as it is now. After the reply to a ``join``,
    the room's latest messages follow as ``message`` events marked ``history``.
    """

    id: int
    room: str
    topic: str
    topic_by: str
    members: int
    # The room is past the server's room_announce_limit: joins and parts come as ``members``
    # summaries, not one by one.
    quiet: bool = False


class RoomSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    room: str
    members: int
    topic: str = ""


class Rooms(_Frame, tag="rooms", frozen=True):
    """Reply to ``rooms``: one page, how many rooms there are in all, and the ``after`` of the
    next page ("" when this is the last). The server may send fewer than asked, to keep the
    reply small; only ``next`` says whether more follow.
    """

    id: int
    rooms: list[RoomSummary]
    total: int
    next: str = ""


class Error(_Frame, tag="error", frozen=True):
    """The request failed. ``id`` is absent when the request could not be read far enough."""

    code: str
    message: str
    id: int | None = None


# --- events (server to client, unsolicited) ------------------------------------------------


class Message(_Frame, tag="message", frozen=True):
    """A chat message. ``to`` is a room name (``#general``) or, for a private message, the
    recipient's nickname. ``seq`` numbers messages 1, 2, 3... within one conversation (a room,
    or the pair of users of a private conversation); ``ts`` is server time in milliseconds
    since the Unix epoch. The sender receives its own messages too, matched by ``msg_id``.
    ``history`` marks a message sent again from the record (after a ``join``, or delivered at
    login), not as it happens.
    """

    to: str
    sender: str
    text: str
    seq: int
    ts: int
    msg_id: str
    history: bool = False


class Joined(_Frame, tag="joined", frozen=True):
    room: str
    nick: str


class Left(_Frame, tag="left", frozen=True):
    """``nick`` left ``room``: by itself (``reason`` empty), or ``kicked`` or ``banned`` ``by``
    a moderator, whose words are in ``message``.
    """

    room: str
    nick: str
    reason: str = ""
    by: str = ""
    message: str = ""


class MembersChanged(_Frame, tag="members", frozen=True):
    """In a room too big to announce each join and part (``quiet`` in its ``room`` reply):
    how many joined and left since the last such event, and how many are in it now.
    """

    room: str
    members: int
    joined: int
    left: int


class TopicChanged(_Frame, tag="topic", frozen=True):
    room: str
    text: str
    by: str


class Notice(_Frame, tag="notice", frozen=True):
    """A line of text from the server itself, for people to read."""

    text: str


class Closing(_Frame, tag="closing", frozen=True):
    """The server is about to close this connection, and why."""

    code: str
    message: str


class GoingAway(_Frame, tag="going-away", frozen=True):
    """This server is stopping and the chat goes on elsewhere (another node behind the same
    address): finish what is in flight, leave with ``bye``, connect again and resume. The
    server closes the connection itself after ``seconds``.
    """

    seconds: float
    message: str


class HistoryPage(_Frame, tag="history", frozen=True):
    """Reply to ``history``, in ``seq`` order. ``more`` is true when the page was cut short
    (by ``limit`` or the frame size) and asking again would give more.
    """

    id: int
    to: str
    messages: list[Message]
    more: bool = False


class UnreadCount(msgspec.Struct, frozen=True):
    to: str
    count: int
    last_seq: int


class Unread(_Frame, tag="unread", frozen=True):
    """Reply to ``unread``: one page of the conversations with messages after the account's
    read marker, at most MAX_LISTED_UNREAD; ``more`` when more follow, and ``next`` the
    ``after`` to ask for them with ("" on the last page).
    """

    id: int
    conversations: list[UnreadCount]
    more: bool = False
    next: str = ""


class UserInfo(_Frame, tag="whois", frozen=True):
    """Reply to ``whois``. ``nick`` as the user spells it; ``account`` is true for a registered
    nickname, whose ``role`` is then set. The rest describes the login, if ``online``: its
    ``away`` text, the ``rooms`` it is in (at most MAX_LISTED_ROOMS), when it began
    (``connected_ms``, ms since the epoch) and ``idle_seconds`` since its last chat message.
    """

    id: int
    nick: str
    online: bool
    account: bool
    role: str = ""
    away: str = ""
    rooms: list[str] = msgspec.field(default_factory=list)
    connected_ms: int = 0
    idle_seconds: int = 0


class UploadSlot(_Frame, tag="upload", frozen=True):
    """Reply to ``share``: send the file's bytes from ``offset`` on a connection to ``port``
    (same host), presenting ``token``. ``offset`` is above 0 when an interrupted upload of the
    same file resumes, and equals the size when the server already holds the content.
    """

    id: int
    file_id: str
    token: str
    port: int
    offset: int
    name: str


class DownloadTicket(_Frame, tag="download", frozen=True):
    """Reply to ``get``: fetch the bytes on a connection to ``port`` with ``token``."""

    id: int
    file_id: str
    token: str
    port: int
    name: str
    size: int
    sha256: str
    sender: str


class FileInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    file_id: str
    name: str
    size: int
    sha256: str
    sender: str
    to: str
    ts: int
    expires: int


class FileList(_Frame, tag="files", frozen=True):
    """Reply to ``files``: one page, newest first, at most MAX_LISTED_FILES, and the ``after``
    of the next page ("" when this is the last).
    """

    id: int
    files: list[FileInfo]
    next: str = ""


Reply = (
    Welcome
    | Ok
    | Sent
    | Users
    | Pong
    | RoomInfo
    | Rooms
    | HistoryPage
    | Unread
    | UserInfo
    | UploadSlot
    | DownloadTicket
    | FileList
    | Error
)
Event = Message | Joined | Left | MembersChanged | TopicChanged | Notice | GoingAway | Closing
ServerFrame = Reply | Event

_encoder = msgspec.json.Encoder()
_request_decoder: msgspec.json.Decoder[Request] = msgspec.json.Decoder(Request)
_server_frame_decoder: msgspec.json.Decoder[ServerFrame] = msgspec.json.Decoder(ServerFrame)


class _IdOnly(msgspec.Struct):
    id: RequestId | None = None


_id_decoder = msgspec.json.Decoder(_IdOnly)


def encode(frame: Request | ServerFrame) -> bytes:
    """One frame as bytes ready for the wire, newline included. Costs one JSON encode."""
    return _encoder.encode(frame) + b"\n"


def decode_request(line: bytes) -> Request:
    """Decode one client frame (without its newline).

    Raises MalformedFrame when the bytes are not UTF-8 JSON, InvalidMessage when they are JSON but
    not a valid request; nothing else.
    """
    return _decode(_request_decoder, line)


def decode_server_frame(line: bytes) -> ServerFrame:
    """Decode one server frame (without its newline); raises like :func:`decode_request`."""
    return _decode(_server_frame_decoder, line)


_json_decoder = msgspec.json.Decoder()

# Deeply nested arrays or objects exhaust msgspec's recursion limit: not a frame we can read.
_NOT_JSON = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _decode(decoder: msgspec.json.Decoder[T], line: bytes) -> T:
    try:
        return decoder.decode(line)
    except msgspec.ValidationError as exc:
        detail = str(exc)
    except _NOT_JSON as exc:
        raise MalformedFrame(f"Not valid UTF-8 JSON: {exc}") from None
    # Validation stops at the first wrong value, perhaps before the end of the frame: only call
    # the frame an invalid message if it is JSON all through. Costs a second parse, on errors only.
    try:
        _json_decoder.decode(line)
    except _NOT_JSON as exc:
        raise MalformedFrame(f"Not valid UTF-8 JSON: {exc}") from None
    raise InvalidMessage(detail, _request_id_of(line))


def _request_id_of(line: bytes) -> int | None:
    """Best effort: the ``id`` of a frame that failed validation, to address the error reply."""
    try:
        return _id_decoder.decode(line).id
    except (msgspec.ValidationError, *_NOT_JSON):
        return None
