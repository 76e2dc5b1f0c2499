"""The web port's refusals: an HTTP status, one of the protocol's error codes (docs/protocol.md,
section 9) and the words to show, answered as JSON, ``{"type":"error","code":…,"message":…}``,
so that the page says what the chat connection would.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from parley.protocol.errors import ErrorCode

STATUS = {
    ErrorCode.NO_SUCH_FILE: 404,
    ErrorCode.FILE_TOO_LARGE: 413,
    ErrorCode.TOO_MANY_UPLOADS: 409,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_ATTEMPTS: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.AUTH_FAILED: 401,
    ErrorCode.SESSION_EXPIRED: 401,
    ErrorCode.NOT_PERMITTED: 403,
    ErrorCode.SERVER_SHUTDOWN: 503,
    ErrorCode.ALREADY_REGISTERED: 409,
    ErrorCode.NICK_TAKEN: 409,
}


class HttpError(Exception):
    """A request refused: its HTTP status, the protocol's error code and what to tell."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.fields = fields

    @classmethod
    def of(cls, code: ErrorCode, message: str) -> HttpError:
        return cls(STATUS.get(code, 400), code, message)

    def response(self, extra_headers: dict[str, str] | None = None) -> web.Response:
        body = {"type": "error", "code": self.code.value, "message": self.message, **self.fields}
        return web.json_response(
            body, status=self.status, headers={**(extra_headers or {}), **self.headers}
        )
