"""How much each caller may do: the named limits, and the check made before an action does any work.

Every limit is a token bucket (`storage.token_bucket`) kept in MongoDB (`storage.rate_limits`), so all
API processes share it. A subject is who is counted: "user:<uid>" for a signed-in caller, "ip:<addr>"
for an anonymous one and for the per-IP request limit. An action may have several limits, all of which
must grant: a vote takes one from the vote bucket and one from the day's cap.

"Open tickets" bound how many duels a player holds unanswered: `nextDuel` takes one, an accepted vote
gives it back (`give_back`), and an unanswered ticket frees itself at the refill rate (the capacity per
ticket lifetime). So a player who answers never meets it, and one who redraws `nextDuel` until a
chosen photo comes up is slowed to one draw per refill.

Claims: a process takes tokens from a shared bucket a few at a time (`claim_size`: a tenth of the
capacity, at most 25) and spends them locally. A bucket write per request would double the database
work of a duel (measured: 86 -> 34 votes/s on the 2-core box, BENCHMARKS.md "Concurrent play"); with
claims it is one write per claim. The price: across N processes a limit holds to within N claims, and
tokens claimed but not spent within `CLAIM_SECONDS` lapse (they count as spent). Small limits (a
capacity under 20) claim one token at a time, so they stay exact.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from storage.clock import utcnow
from storage.rate_limits import RateLimitRepository
from storage.token_bucket import Rate, retry_after, whole_seconds, window

log = structlog.get_logger(__name__)


class Action(enum.StrEnum):
    REQUEST = "requests"  # any HTTP request, per IP
    VOTE = "votes"
    DUEL = "duels"  # nextDuel
    OPEN_TICKET = "open_tickets"
    SKIP = "skips"
    UPLOAD = "uploads"
    SEARCH = "searches"
    ENROLMENT = "enrolments"
    TAG_EDIT = "tag_edits"
    EDIT = "edits"  # a photo's title or category, a display name


@dataclass(frozen=True)
class Limit:
    """One limit: a bucket refilled continuously, or (`fixed_window`) `capacity` per aligned window."""

    name: str
    rate: Rate
    fixed_window: bool = False


class RateLimitExceeded(Exception):
    """Refused before any work was done: retry after `retry_after` whole seconds."""

    def __init__(self, action: Action, limit: str, retry_after: int) -> None:
        super().__init__(f"too many {action.value.replace('_', ' ')}: retry in {retry_after} s")
        self.action = action
        self.limit = limit
        self.retry_after = retry_after


def user_subject(uid: str) -> str:
    return f"user:{uid}"


def ip_subject(address: str) -> str:
    return f"ip:{address}"


CLAIM_MAX = 25
# How long claimed tokens stay spendable in the process that claimed them.
CLAIM_SECONDS = 10.0
# Buckets with claims held per process; beyond it, lapsed claims are dropped (and then all, if need be).
MAX_CLAIMS = 100_000


def claim_size(capacity: int) -> int:
    """Tokens taken from the shared bucket at once: a tenth of the capacity, at least 1, at most 25."""
    return max(1, min(CLAIM_MAX, capacity // 10))


@dataclass
class _Claim:
    tokens: float
    until: float  # time.monotonic()


class RateLimiter:
    def __init__(self, repository: RateLimitRepository, limits: Mapping[Action, Sequence[Limit]], *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._repository = repository
        self._limits = {action: tuple(found) for action, found in limits.items() if found}
        self._clock = clock
        self._claims: dict[str, _Claim] = {}
        # One claim in flight per bucket: the requests that come meanwhile wait for it (single flight).
        self._claiming: dict[str, asyncio.Future[None]] = {}

    def limits(self, action: Action) -> tuple[Limit, ...]:
        return self._limits.get(action, ())

    async def take(self, action: Action, subject: str, *, deadline_seconds: float | None = None) -> None:
        """One `action` for `subject`, or `RateLimitExceeded`. `deadline_seconds`: each database call's,
        when shorter than the client's."""
        await self.take_all((action,), subject, deadline_seconds=deadline_seconds)

    async def take_all(self, actions: Sequence[Action], subject: str, *,
                       deadline_seconds: float | None = None) -> None:
        """One of each action (a request that is several at once), all or none: a refused request costs
        nothing, as the limit that refused took nothing and those that had granted get their token back."""
        granted: list[Limit] = []
        for action in actions:
            for limit in self.limits(action):
                wait = await self._take(limit, subject, cost=1.0, deadline_seconds=deadline_seconds)
                if wait is not None:
                    for earlier in granted:
                        await self._take(earlier, subject, cost=-1.0)
                    seconds = whole_seconds(wait)
                    log.info("rate_limited", action=action.value, limit=limit.name, subject=subject,
                             retry_after=seconds)
                    raise RateLimitExceeded(action, limit.name, seconds)
                granted.append(limit)

    def claimed(self, action: Action, subject: str) -> float:
        """Tokens of `action`'s (first) limit this process holds in a live claim: with the shared bucket's,
        what the subject has left."""
        for limit in self.limits(action):
            claim = self._claims.get(f"{limit.name}:{subject}")
            return claim.tokens if claim is not None and claim.until > time.monotonic() else 0.0
        return 0.0

    async def give_back(self, action: Action, subject: str) -> None:
        """Return one token (an open ticket answered); never above the capacity."""
        for limit in self.limits(action):
            await self._take(limit, subject, cost=-1.0)

    async def _take(self, limit: Limit, subject: str, *, cost: float,
                    deadline_seconds: float | None = None) -> float | None:
        """Take `cost` (1, or -1 to give one back) from one limit: None when granted, else the seconds until
        it would be. Served from this process's claim when it holds one (see the module docstring)."""
        now = self._clock()
        key = f"{limit.name}:{subject}"
        if limit.fixed_window:
            number, _ = window(now.timestamp(), limit.rate.period_seconds)
            key = f"{key}:{number}"
        if self._from_claim(key, limit, cost):
            return None
        if cost < 0:
            await self._shared_take(limit, key, now, cost, deadline_seconds)
            return None
        while (pending := self._claiming.get(key)) is not None:
            # Another request of this process is claiming this bucket: wait for it and spend its claim.
            # If its database call failed, so does this request, at once rather than a deadline later.
            await asyncio.shield(pending)
            if self._from_claim(key, limit, cost):
                return None
        claiming = self._claiming[key] = asyncio.get_running_loop().create_future()
        try:
            wait = await self._claim(limit, key, now, cost, deadline_seconds)
        except asyncio.CancelledError:  # this request went away: the others claim for themselves
            claiming.set_result(None)
            raise
        except Exception as exc:
            claiming.set_exception(exc)
            claiming.exception()  # retrieved: nobody may be waiting
            raise
        else:
            claiming.set_result(None)
        finally:
            del self._claiming[key]
        return wait

    async def _claim(self, limit: Limit, key: str, now: datetime, cost: float,
                     deadline_seconds: float | None) -> float | None:
        """Take a claim from the shared bucket (just `cost` when less than a claim is left) and spend `cost`
        of it: None when granted, else the seconds until it would be."""
        size = claim_size(limit.rate.capacity)
        wait = await self._shared_take(limit, key, now, float(size), deadline_seconds)
        if wait is not None and size > 1:  # fewer than a claim left: take just this one
            size = 1
            wait = await self._shared_take(limit, key, now, cost, deadline_seconds)
        if wait is None:
            self._remember(key, _Claim(tokens=float(size) - cost, until=time.monotonic() + CLAIM_SECONDS))
        return wait

    def _from_claim(self, key: str, limit: Limit, cost: float) -> bool:
        """Take (or give back) `cost` from this process's live claim on `key`, if it can."""
        claim = self._claims.get(key)
        if claim is None or claim.until <= time.monotonic():
            return False
        if cost < 0 and claim.tokens - cost <= claim_size(limit.rate.capacity):
            claim.tokens -= cost  # kept here; beyond a claim's size it goes back to the shared bucket
            return True
        if cost > 0 and claim.tokens >= cost:
            claim.tokens -= cost
            return True
        return False

    async def _shared_take(self, limit: Limit, key: str, now: datetime, cost: float,
                           deadline_seconds: float | None) -> float | None:
        rate = limit.rate
        if limit.fixed_window:
            _, left = window(now.timestamp(), rate.period_seconds)
            taken = await self._repository.take(key, capacity=rate.capacity, per_second=0.0, now=now, cost=cost,
                                                keep_until=now + timedelta(seconds=left),
                                                deadline_seconds=deadline_seconds)
            return None if taken.granted else left
        taken = await self._repository.take(key, capacity=rate.capacity, per_second=rate.per_second, now=now,
                                            cost=cost, deadline_seconds=deadline_seconds)
        return None if taken.granted else retry_after(taken.tokens, per_second=rate.per_second, cost=1.0)

    async def forget(self, subject: str) -> int:
        """Every bucket of a subject (an erased account's), this process's claims and the shared ones; how
        many shared ones. Buckets of a limit no longer configured go by their TTL, as idle ones do."""
        names = sorted({limit.name for found in self._limits.values() for limit in found})
        if not names:
            return 0
        pattern = f"^({'|'.join(re.escape(name) for name in names)}):{re.escape(subject)}(:[0-9]+)?$"
        for key in [key for key in self._claims if re.match(pattern, key)]:
            del self._claims[key]
        return await self._repository.delete_matching(pattern)

    def _remember(self, key: str, claim: _Claim) -> None:
        if len(self._claims) >= MAX_CLAIMS:
            moment = time.monotonic()
            self._claims = {k: c for k, c in self._claims.items() if c.until > moment}
            if len(self._claims) >= MAX_CLAIMS:
                self._claims.clear()  # claimed tokens lapse early: the limits only get stricter
        self._claims[key] = claim
