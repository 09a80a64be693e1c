"""Retry delays for leased work that failed transiently: a job of the job queue, a push to FCM.

Exponential backoff with "full jitter" (Brooker, "Exponential Backoff And Jitter", AWS Architecture
Blog, 2015): after the n-th failed attempt wait a uniformly random time in [0, min(cap, base * 2**(n-1))].
The exponential ceiling backs off from a struggling dependency (FCM, the model, the database); the
jitter spreads out the retries of the many items that failed together in the same outage, so they do
not come back as one synchronized wave. Full jitter (rather than "equal" or "decorrelated") is the
variant with the least total work for the dependency and the simplest formula. The function is pure:
the caller passes the random generator, so tests (and replays) are deterministic.
"""

from __future__ import annotations

import random

# Beyond this many doublings any sane `base` has long passed any sane `cap`; stopping here keeps the
# arithmetic in range for absurd attempt counts instead of raising OverflowError.
_MAX_DOUBLINGS = 64


def backoff_seconds(attempt: int, *, base: float = 2.0, cap: float = 300.0, rng: random.Random) -> float:
    """Seconds to wait before retrying after `attempt` failed attempts (1 = the first failure).

    Returns a float uniformly drawn from [0, min(cap, base * 2**(attempt - 1))]: with the defaults the
    ceiling is 2, 4, 8, ... seconds and reaches the 300 s cap at the 9th attempt. The expected delay is
    half the ceiling. A delay near zero is possible and intended (that is what makes the jitter "full").
    """
    if attempt < 1:
        raise ValueError(f"attempt counts failed attempts and starts at 1, got {attempt}")
    if base <= 0 or cap <= 0:
        raise ValueError(f"base and cap must be positive, got base={base} cap={cap}")
    doublings = min(attempt - 1, _MAX_DOUBLINGS)
    ceiling = min(cap, base * (2**doublings))
    return rng.uniform(0.0, ceiling)
