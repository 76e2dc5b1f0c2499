"""Error codes of the wire protocol, the words users see for them, and the exception tree.

Two families, as in h11:

* :class:`PeerError` and its subclasses: the *peer* broke the protocol or asked for something
  not allowed. Each carries an :class:`ErrorCode` that is sent on the wire, and whether the
  connection must close after it.
* :class:`LocalProtocolError`: *we* used the protocol object wrongly (a bug). Logged, never sent.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Every error code that can appear in an ``error`` reply or a ``closing`` event."""

    BAD_FRAME = "bad-frame"
    FRAME_TOO_LARGE = "frame-too-large"
    INVALID_MESSAGE = "invalid-message"
    UNSUPPORTED_VERSION = "unsupported-version"
    NOT_ALLOWED_NOW = "not-allowed-now"
    INVALID_NICK = "invalid-nick"
    NICK_TAKEN = "nick-taken"
    INVALID_TEXT = "invalid-text"
    NO_SUCH_USER = "no-such-user"
    NO_SUCH_ROOM = "no-such-room"
    RATE_LIMITED = "rate-limited"
    FLOODING = "flooding"
    FLOOD_PENALTY = "flood-penalty"
    NOT_READING = "not-reading"
    TOO_MANY_ERRORS = "too-many-errors"
    TOO_MANY_CONNECTIONS = "too-many-connections"
    LOGIN_TIMEOUT = "login-timeout"
    SERVER_SHUTDOWN = "server-shutdown"
    INTERNAL_ERROR = "internal-error"
    PASSWORD_REQUIRED = "password-required"  # noqa: S105 (an error code, not a password)
    AUTH_FAILED = "auth-failed"
    SESSION_EXPIRED = "session-expired"
    ACCOUNT_REQUIRED = "account-required"
    TOO_MANY_ATTEMPTS = "too-many-attempts"
    INVALID_PASSWORD = "invalid-password"  # noqa: S105
    ALREADY_REGISTERED = "already-registered"
    INVALID_ROOM = "invalid-room"
    ROOM_TAKEN = "room-taken"
    INVALID_TOPIC = "invalid-topic"
    NOT_IN_ROOM = "not-in-room"
    NOT_PERMITTED = "not-permitted"
    BANNED = "banned"
    MUTED = "muted"
    UNAVAILABLE = "unavailable"
    NO_SUCH_FILE = "no-such-file"
    INVALID_FILE = "invalid-file"
    FILE_TOO_LARGE = "file-too-large"
    QUOTA_EXCEEDED = "quota-exceeded"
    TOO_MANY_UPLOADS = "too-many-uploads"
    TOO_MANY_TOKENS = "too-many-tokens"
    REVOKED = "revoked"

    @property
    def text(self) -> str:
        """The sentence a user sees for this code when the server gives no detail."""
        return ERROR_TEXT[self]

    @property
    def closes_connection(self) -> bool:
        """True when the server closes the connection right after sending this code."""
        return self in CLOSING_CODES


# User-facing wording, shared by every client (terminal, desktop, web).
ERROR_TEXT: dict[ErrorCode, str] = {
    ErrorCode.BAD_FRAME: "The data sent is not a valid Parley frame.",
    ErrorCode.FRAME_TOO_LARGE: "A frame was larger than the protocol allows.",
    ErrorCode.INVALID_MESSAGE: "The message is not one the server understands.",
    ErrorCode.UNSUPPORTED_VERSION: "This client speaks a protocol version the server does not.",
    ErrorCode.NOT_ALLOWED_NOW: "That request is not allowed at this point.",
    ErrorCode.INVALID_NICK: "Nicknames are 1-32 letters, digits, '_' or '-'.",
    ErrorCode.NICK_TAKEN: "That nickname, or one that looks the same, is already taken.",
    ErrorCode.INVALID_TEXT: "Messages must be 1-4000 characters on one line, without control "
    "characters.",
    ErrorCode.NO_SUCH_USER: "No user by that name is online.",
    ErrorCode.NO_SUCH_ROOM: "There is no such room.",
    ErrorCode.RATE_LIMITED: "You are sending too fast; slow down.",
    ErrorCode.FLOODING: "Disconnected for sending too fast.",
    ErrorCode.FLOOD_PENALTY: "Disconnected for sending too fast not long ago; connect again later.",
    ErrorCode.NOT_READING: "Disconnected: the client did not read what the server sent.",
    ErrorCode.TOO_MANY_ERRORS: "Disconnected after too many invalid requests.",
    ErrorCode.TOO_MANY_CONNECTIONS: "The server has too many connections; try again later.",
    ErrorCode.LOGIN_TIMEOUT: "Disconnected: no login in time.",
    ErrorCode.SERVER_SHUTDOWN: "The server is shutting down.",
    ErrorCode.INTERNAL_ERROR: "The server hit an internal error.",
    ErrorCode.PASSWORD_REQUIRED: "That nickname is registered: give its password.",
    # The same words whether the account exists or not: no probing for account names.
    ErrorCode.AUTH_FAILED: "Wrong nickname or password.",
    ErrorCode.SESSION_EXPIRED: "The saved login has expired or was revoked; give the password.",
    ErrorCode.ACCOUNT_REQUIRED: "This server requires an account: log in with a registered "
    "nickname.",
    ErrorCode.TOO_MANY_ATTEMPTS: "Too many failed attempts; wait before trying again.",
    ErrorCode.INVALID_PASSWORD: "Passwords are 8-256 characters.",
    ErrorCode.ALREADY_REGISTERED: "That nickname is already registered.",
    ErrorCode.INVALID_ROOM: "Room names are '#' and 1-49 letters, digits, '_', '-' or '.'.",
    ErrorCode.ROOM_TAKEN: "A room whose name looks the same already exists.",
    ErrorCode.INVALID_TOPIC: "Topics are at most 500 characters on one line, without control "
    "characters.",
    ErrorCode.NOT_IN_ROOM: "You are not in that room.",
    ErrorCode.NOT_PERMITTED: "You are not allowed to do that.",
    ErrorCode.BANNED: "You are banned from that room.",
    ErrorCode.MUTED: "You are muted in that room.",
    ErrorCode.UNAVAILABLE: "The server cannot do that right now; try again shortly.",
    # Not "forbidden": someone else's file is indistinguishable from one that does not exist.
    ErrorCode.NO_SUCH_FILE: "There is no such file, or it is not shared with you.",
    ErrorCode.INVALID_FILE: "The file's name, size or hash is not valid.",
    ErrorCode.FILE_TOO_LARGE: "The file is larger than the server accepts.",
    ErrorCode.QUOTA_EXCEEDED: "Your files would take more space than your quota allows.",
    ErrorCode.TOO_MANY_UPLOADS: "You have too many uploads in progress; finish one first.",
    ErrorCode.TOO_MANY_TOKENS: "You hold too many unused file tokens; use them or wait a few "
    "minutes.",
    ErrorCode.REVOKED: "This login was revoked (account deleted, or its password changed); "
    "log in again.",
}

CLOSING_CODES = frozenset(
    {
        ErrorCode.BAD_FRAME,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.FLOODING,
        ErrorCode.FLOOD_PENALTY,
        ErrorCode.NOT_READING,
        ErrorCode.TOO_MANY_ERRORS,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.LOGIN_TIMEOUT,
        ErrorCode.SERVER_SHUTDOWN,
        ErrorCode.REVOKED,
    }
)


class ParleyError(Exception):
    """Base of every exception Parley raises on purpose."""


class PeerError(ParleyError):
    """The peer sent something the protocol or the server's rules do not allow.

    ``request_id`` is the id of the offending request when it could be read, so the error reply
    can be matched by the client.
    """

    def __init__(self, code: ErrorCode, detail: str = "", request_id: int | None = None) -> None:
        self.code = code
        self.detail = detail or code.text
        self.request_id = request_id
        super().__init__(f"{code}: {self.detail}")

    @property
    def closes_connection(self) -> bool:
        return self.code.closes_connection


class FrameTooLarge(PeerError):
    """A frame grew past the size limit before its newline arrived. Raised by the framer."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(ErrorCode.FRAME_TOO_LARGE, f"Frames are limited to {limit_bytes} bytes.")


class MalformedFrame(PeerError):
    """A frame is not UTF-8 JSON. The peer is not speaking Parley: the connection closes."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorCode.BAD_FRAME, detail)


class InvalidMessage(PeerError):
    """A frame is valid JSON but not a known message with the right field types."""

    def __init__(self, detail: str, request_id: int | None) -> None:
        super().__init__(ErrorCode.INVALID_MESSAGE, detail, request_id)


class RequestRefused(ParleyError):
    """Raised on the client when the server answers a request with an ``error`` reply."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class LocalProtocolError(ParleyError):
    """We used a protocol object in a way its state does not allow: a bug in Parley itself."""
