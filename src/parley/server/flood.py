"""Flood control: a token bucket per connection, with a debt that ends in disconnection."""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # answer "slow down", keep the connection
    DROP = "drop"  # sustained abuse: disconnect


class TokenBucket:
    """``burst`` requests at once, then ``rate_per_second`` steadily.

    Refused requests still cost their tokens, so a client that keeps sending while refused goes into
    debt; past ``debt_limit`` tokens of debt it is dropped. A client that pauses recovers at the
    steady rate. O(1) per request, no timers.
    """

    __slots__ = ("_burst", "_debt_limit", "_rate", "_stamp", "_tokens")

    def __init__(self, burst: int, rate_per_second: float, debt_limit: int, now: float) -> None:
        self._burst = float(burst)
        self._rate = rate_per_second
        self._debt_limit = float(debt_limit)
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float, cost: float = 1.0) -> Verdict:
        """Charge one request of ``cost`` tokens (a listing costs more than a ``ping``)."""
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate) - cost
        self._stamp = now
        self._tokens = max(tokens, -self._debt_limit - 1.0)
        if tokens >= 0.0:
            return Verdict.ALLOW
        if tokens < -self._debt_limit:
            return Verdict.DROP
        return Verdict.REFUSE
