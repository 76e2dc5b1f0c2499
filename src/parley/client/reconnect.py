"""Getting back after the connection is lost, for every front end that stays open (the
full-screen terminal client, the desktop app): wait, connect again, resume, and say so.

Waits grow exponentially with "equal jitter" (half the delay fixed, half random), so a server
that restarts is not met by all its clients in the same instant, and no client ever retries in
a tight loop. A changed certificate is never retried: nothing is sent to an impostor. A login
the server refuses for good (an expired session, a nickname now registered) stops the retries
with the reason; a taken nickname does not, because the server may not yet have noticed that
the old connection is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import ssl
from collections.abc import Awaitable, Callable

from parley.client.conversations import Conversations
from parley.client.core import ChatClient, ConnectionLost
from parley.protocol.errors import ErrorCode, RequestRefused

# Refusals that say "not now" rather than "no".
_TRY_AGAIN = frozenset(
    {
        ErrorCode.NICK_TAKEN,
        ErrorCode.RATE_LIMITED,
        ErrorCode.UNAVAILABLE,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.FLOOD_PENALTY,
        ErrorCode.SERVER_SHUTDOWN,
        ErrorCode.TOO_MANY_ATTEMPTS,
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    first_seconds: float = 0.5
    most_seconds: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt ``attempt`` (1, 2, ...): between half and all of
        first * factor**(attempt-1), capped at ``most_seconds``. ``draw`` gives [0, 1).
        """
        exponent = min(attempt - 1, 64)  # beyond this the cap has long applied
        ceiling = min(self.most_seconds, self.first_seconds * self.factor**exponent)
        return ceiling / 2 + draw() * ceiling / 2


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """About to try again: shown in a status bar."""

    number: int
    delay_seconds: float
    # Why the connection was lost, or why the last attempt failed.
    reason: str


class GaveUp(Exception):
    """The server refused the login for good; ``reason`` says why in the user's words."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


Connect = Callable[[Conversations], Awaitable[ChatClient]]


async def reconnect(
    previous: ChatClient,
    connect: Connect,
    reason: str,
    report: Callable[[Attempt], None],
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[ChatClient, list[tuple[str, RequestRefused]]]:
    """Connect again until a connection is resumed where ``previous`` stopped (see
    :meth:`ChatClient.resume`). ``connect`` opens a new connection carrying the given
    conversations. Returns the new client and the rooms it could not rejoin. Raises GaveUp,
    CertificateChanged; runs until cancelled otherwise.
    """
    attempt = 0
    while True:
        attempt += 1
        delay = backoff.delay(attempt)
        report(Attempt(attempt, delay, reason))
        await sleep(delay)
        try:
            client = await connect(previous.conversations)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionLost) as exc:
            reason = _why(exc)
            continue
        except RequestRefused as refusal:
            reason = refusal.message
            continue
        try:
            refused = await client.resume(previous)
        except RequestRefused as refusal:
            await client.close()
            if refusal.code not in _TRY_AGAIN:
                raise GaveUp(refusal.message) from None
            reason = refusal.message
            continue
        except (ConnectionLost, OSError, TimeoutError) as exc:
            await client.close()
            reason = _why(exc)
            continue
        return client, refused


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionLost):
        return exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "the server is not accepting connections"
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, RequestRefused):
        return exc.message  # in words, without the wire code
    return str(exc) or type(exc).__name__
