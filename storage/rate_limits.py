"""The `rate_limits` collection: one token bucket per key ("votes:user:<uid>", "requests:ip:<addr>"),
shared by every API process.

Refill and take happen in ONE `find_one_and_update` whose update is an aggregation pipeline: the server
computes the refilled tokens from the stored ones and the time since they were stored, decides, and
writes, atomically on the one document. Concurrent processes therefore agree without a transaction
(which the embedded server could deadlock) and without a read-then-write race. The formulas are those
of `storage.token_bucket.take`, the pure reference the tests compare this against.

A new bucket is inserted full, separately, and then taken from as above (an upsert would merge the two,
but the embedded server can answer a racing upsert with no document after applying it, and the retry
would then take twice). A bucket is kept only until it would be full again (`expires_at`, a TTL index):
an idle client's bucket vanishes, and a missing bucket is a full one, so deleting it changes nothing.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from storage.base import Repository
from storage.token_bucket import Taken


def _take_pipeline(*, now: datetime, capacity: float, per_second: float, cost: float,
                   expires_at: datetime) -> list[dict[str, Any]]:
    last = {"$ifNull": ["$updated_at", now]}
    elapsed = {"$max": [0, {"$divide": [{"$subtract": [now, last]}, 1000]}]}
    # a new bucket: no tokens stored (full) and no time elapsed
    refilled = {"$min": [capacity, {"$add": [{"$ifNull": ["$tokens", capacity]},
                                             {"$multiply": [elapsed, per_second]}]}]}
    return [
        {"$set": {"_refilled": refilled}},
        {"$set": {"granted": {"$gte": ["$_refilled", cost]}}},
        {"$set": {
            "tokens": {"$cond": ["$granted", {"$min": [capacity, {"$subtract": ["$_refilled", cost]}]},
                                 "$_refilled"]},
            "updated_at": {"$max": [now, last]},  # a process whose clock lags does not move it back
            "expires_at": expires_at,
        }},
        {"$unset": "_refilled"},
    ]


# A take is one call; a bucket's first is three: the update finds no document, a full bucket is inserted
# (or another process's insert wins, which is the same), and the update runs again.
TAKE_ATTEMPTS = 2


class RateLimitRaceError(RuntimeError):
    """The bucket vanished twice between its insert and its update (never expected)."""


class RateLimitRepository(Repository):
    collection_name = "rate_limits"

    async def take(self, key: str, *, capacity: float, per_second: float, now: datetime, cost: float = 1.0,
                   keep_until: datetime | None = None, deadline_seconds: float | None = None) -> Taken:
        """Refill the bucket `key` to `now` and take `cost` tokens if they are there (a negative cost
        gives tokens back). `keep_until`: when the document may go (default: when it would be full again
        from empty; a fixed window passes its end). `deadline_seconds`: shorter than the client's."""
        with pymongo.timeout(deadline_seconds):
            return await self._take(key, capacity=capacity, per_second=per_second, now=now, cost=cost,
                                    keep_until=keep_until)

    async def _take(self, key: str, *, capacity: float, per_second: float, now: datetime, cost: float,
                    keep_until: datetime | None) -> Taken:
        if keep_until is None:
            keep_until = now + timedelta(seconds=capacity / per_second)
        update = _take_pipeline(now=now, capacity=capacity, per_second=per_second, cost=cost,
                                expires_at=keep_until)
        for _ in range(TAKE_ATTEMPTS):
            doc = await self.collection.find_one_and_update(
                {"_id": key}, update, return_document=ReturnDocument.AFTER, projection={"granted": 1, "tokens": 1})
            if doc is not None:
                return Taken(granted=bool(doc["granted"]), tokens=float(doc["tokens"]))
            # Not an upsert: the embedded server can apply a racing upsert and still answer no document,
            # which a retry would then take twice. Inserting the full bucket takes nothing.
            with contextlib.suppress(DuplicateKeyError):
                await self.collection.insert_one({"_id": key, "tokens": float(capacity), "updated_at": now,
                                                  "expires_at": keep_until})
        raise RateLimitRaceError(f"rate limit {key!r}: the bucket vanished between its insert and its update")

    async def delete_matching(self, pattern: str) -> int:
        """Drop every bucket whose key matches the regular expression (an erased account's); a missing
        bucket is a full one, so this only forgets."""
        result = await self.collection.delete_many({"_id": {"$regex": pattern}})
        return result.deleted_count

