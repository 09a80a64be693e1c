"""Token buckets and fixed windows: the arithmetic of the rate limits, pure and without a database.

A bucket holds at most `capacity` tokens and gains `capacity` every `period_seconds`, continuously; an
action takes one token (its `cost`) or is refused while fewer are left. So a client may burst up to the
capacity and then go on at the refill rate, and a refused client learns exactly when the next token is
there (`retry_after`). A bucket never written (or idle long enough to be full again) is full, which is
why a stored bucket may vanish once it would be full: nothing is lost (`full_after`).

A fixed window (the daily vote cap) is a bucket that does not refill: `capacity` per window, the window
named in the key, and the wait is until the window ends.

`storage.rate_limits` evaluates the same formulas inside one MongoDB update so that concurrent
processes agree; `take` here is the reference that its tests compare against.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_UNITS = {"s": 1.0, "second": 1.0, "m": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0,
          "d": 86400.0, "day": 86400.0}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """`capacity` at once, refilled at `capacity` per `period_seconds` (0 per second for a window)."""

    capacity: int
    period_seconds: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.period_seconds <= 0:
            raise ValueError(f"a rate needs a capacity >= 1 and a period > 0, got {self}")

    @property
    def per_second(self) -> float:
        return self.capacity / self.period_seconds

    @classmethod
    def parse(cls, spec: str) -> Rate | None:
        """'60/minute', '1000/day', '30/10s', '5/2h'; 'off' (or empty): no limit."""
        if spec.strip().lower() in ("", "off", "none"):
            return None
        match = _SPEC.match(spec.lower())
        if match is None or match.group(3) not in _UNITS:
            raise ValueError(f"expected 'N/unit' (unit: second, minute, hour, day or s, m, h, d; e.g. "
                             f"'60/minute', '30/10s') or 'off', got {spec!r}")
        count, multiple, unit = match.groups()
        return cls(int(count), float(multiple or 1) * _UNITS[unit])


@dataclass(frozen=True)
class Taken:
    """The outcome of one take: granted or not, and the tokens left after it."""

    granted: bool
    tokens: float


def refilled(tokens: float, elapsed_seconds: float, *, capacity: float, per_second: float) -> float:
    """The tokens after `elapsed_seconds` of refill (a clock that went back refills nothing)."""
    return min(capacity, tokens + max(0.0, elapsed_seconds) * per_second)


def take(tokens: float | None, elapsed_seconds: float, *, capacity: float, per_second: float,
         cost: float = 1.0) -> Taken:
    """Refill, then take `cost` if that many are there. `tokens` None: a bucket never used (full).
    A negative cost gives tokens back (never above the capacity) and is always granted."""
    now_tokens = capacity if tokens is None else refilled(tokens, elapsed_seconds, capacity=capacity,
                                                          per_second=per_second)
    if now_tokens >= cost:
        return Taken(granted=True, tokens=min(capacity, now_tokens - cost))
    return Taken(granted=False, tokens=now_tokens)


def retry_after(tokens: float, *, per_second: float, cost: float = 1.0) -> float:
    """Seconds until `cost` tokens are there again (infinite for a bucket that does not refill)."""
    missing = cost - tokens
    if missing <= 0:
        return 0.0
    return math.inf if per_second <= 0 else missing / per_second


def full_after(tokens: float, *, capacity: float, per_second: float) -> float:
    """Seconds until the bucket is full again: after that its stored state says nothing a new one would
    not, so it may be deleted (the TTL of the stored bucket)."""
    return 0.0 if tokens >= capacity else (capacity - tokens) / per_second if per_second > 0 else math.inf


def window(now_epoch_seconds: float, period_seconds: float) -> tuple[int, float]:
    """The fixed window `now` falls in, aligned on the epoch (a UTC day for 86400 s): its number and
    the seconds left until it ends."""
    number = math.floor(now_epoch_seconds / period_seconds)
    return number, (number + 1) * period_seconds - now_epoch_seconds


def whole_seconds(seconds: float) -> int:
    """A wait as clients get it (Retry-After is whole seconds): rounded up, at least 1."""
    return max(1, math.ceil(seconds - 1e-9))
