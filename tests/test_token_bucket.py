"""The rate limits' arithmetic (pure), and the stored bucket agreeing with it (one MongoDB update)."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from accounts.rate_limits import Action, Limit, RateLimiter, RateLimitExceeded, claim_size
from storage.rate_limits import RateLimitRepository
from storage.token_bucket import Rate, full_after, refilled, retry_after, take, whole_seconds, window


def test_a_new_bucket_is_full_and_takes_until_empty() -> None:
    tokens: float | None = None
    granted = []
    for _ in range(4):
        taken = take(tokens, 0.0, capacity=3, per_second=1.0)
        granted.append(taken.granted)
        tokens = taken.tokens
    assert granted == [True, True, True, False]
    assert tokens == 0.0


def test_refill_is_continuous_and_capped() -> None:
    assert refilled(0.0, 1.5, capacity=10, per_second=2.0) == 3.0
    assert refilled(9.0, 100.0, capacity=10, per_second=2.0) == 10.0
    assert refilled(4.0, -30.0, capacity=10, per_second=2.0) == 4.0  # a clock that went back refills nothing


def test_a_refused_take_keeps_its_tokens_and_says_when_to_retry() -> None:
    refused = take(0.25, 0.0, capacity=5, per_second=0.5)
    assert not refused.granted and refused.tokens == 0.25
    assert retry_after(refused.tokens, per_second=0.5) == pytest.approx(1.5)
    assert whole_seconds(1.5) == 2 and whole_seconds(0.01) == 1 and whole_seconds(3.0) == 3
    assert retry_after(1.0, per_second=0.5) == 0.0
    assert retry_after(0.0, per_second=0.0) == math.inf  # a window does not refill


def test_giving_back_never_exceeds_the_capacity() -> None:
    assert take(2.0, 0.0, capacity=3, per_second=1.0, cost=-1.0).tokens == 3.0
    assert take(3.0, 0.0, capacity=3, per_second=1.0, cost=-1.0).tokens == 3.0
    assert take(0.0, 0.0, capacity=3, per_second=1.0, cost=-1.0).granted


def test_full_after_and_windows() -> None:
    assert full_after(1.0, capacity=5, per_second=2.0) == 2.0
    assert full_after(5.0, capacity=5, per_second=2.0) == 0.0
    number, left = window(86400 * 3 + 3600, 86400)
    assert number == 3 and left == 86400 - 3600


@pytest.mark.parametrize(("spec", "rate"), [
    ("60/minute", Rate(60, 60)), ("1000/day", Rate(1000, 86400)), ("30/10s", Rate(30, 10)),
    ("5 / 2h", Rate(5, 7200)), ("1/second", Rate(1, 1)), ("off", None), ("", None),
])
def test_rate_specs(spec: str, rate: Rate | None) -> None:
    assert Rate.parse(spec) == rate


@pytest.mark.parametrize("spec", ["lots", "10", "10/fortnight", "0/minute", "-1/minute", "1/0s"])
def test_bad_rate_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        Rate.parse(spec)


async def test_the_stored_bucket_agrees_with_the_pure_one(mongo_uri: str) -> None:
    """The same random sequence of takes, gives and pauses, through MongoDB and through `take`."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        repo = RateLimitRepository(client[f"t_bucket_{random.randrange(10**9)}"])
        rng = random.Random(7)
        capacity, per_second = 4.0, 0.5
        now = datetime(2030, 1, 1, tzinfo=UTC)
        expected: float | None = None
        last = now
        outcomes = []
        for _ in range(60):
            now += timedelta(milliseconds=rng.choice([0, 0, 100, 700, 2500, 9000]))
            cost = rng.choice([1.0, 1.0, 1.0, -1.0])
            stored = await repo.take("k", capacity=capacity, per_second=per_second, now=now, cost=cost)
            reference = take(expected, (now - last).total_seconds(), capacity=capacity, per_second=per_second,
                             cost=cost)
            assert stored.granted == reference.granted
            assert stored.tokens == pytest.approx(reference.tokens, abs=1e-6)
            expected, last = reference.tokens, now
            outcomes.append(stored.granted)
        assert not all(outcomes) and any(outcomes)  # the sequence both ran the bucket dry and refilled it
        doc = await repo.collection.find_one({"_id": "k"})
        assert doc is not None and doc["expires_at"] == now + timedelta(seconds=capacity / per_second)
    finally:
        await client.close()


async def test_concurrent_takes_grant_exactly_the_capacity(mongo_uri: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        repo = RateLimitRepository(client[f"t_bucket_{random.randrange(10**9)}"])
        now = datetime(2030, 1, 1, tzinfo=UTC)
        for key in ("new-a", "new-b", "new-c"):  # the first takes of a bucket race its creation too
            results = await asyncio.gather(*(repo.take(key, capacity=5, per_second=0.001, now=now)
                                             for _ in range(20)))
            assert sum(r.granted for r in results) == 5
            assert sorted(r.tokens for r in results if r.granted) == [0.0, 1.0, 2.0, 3.0, 4.0]
    finally:
        await client.close()


async def test_concurrent_requests_in_one_process_lose_no_claimed_token(mongo_uri: str) -> None:
    """Many requests of one process find no claim at once and each claims a tenth of the bucket: the
    claims add up, so the bucket grants exactly its capacity, never less (claims overwritten) or more."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        repo = RateLimitRepository(client[f"t_bucket_{random.randrange(10**9)}"])
        now = datetime(2030, 1, 1, tzinfo=UTC)
        limiter = RateLimiter(repo, {Action.REQUEST: [Limit("requests", Rate(200, 3600.0))]}, clock=lambda: now)
        assert claim_size(200) == 20

        async def request() -> bool:
            try:
                await limiter.take(Action.REQUEST, "ip:10.0.0.1")
                return True
            except RateLimitExceeded:
                return False

        first = await asyncio.gather(*(request() for _ in range(64)))
        rest = await asyncio.gather(*(request() for _ in range(200)))
        assert sum(first) == 64 and sum(first) + sum(rest) == 200
    finally:
        await client.close()
