"""Leases in MongoDB: one holder at a time for a deployment-wide singleton (the rating projector).

A lease is one document, taken and renewed with a single conditional write (no transaction), so it
cannot meet the embedded server's transaction deadlock. A holder that dies stops renewing and another
process takes the lease once it expires. A lease alone does not fence a holder that was paused past
its expiry: the work it guards must also refuse stale writers (the projector's batch numbers do).
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from storage.base import Doc


def process_id() -> str:
    """Who holds a lease: host, pid and a random part (a pid is reused across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    def __init__(self, collection: AsyncCollection[Doc], name: str, *, holder: str, seconds: float) -> None:
        self.collection = collection
        self.name = name
        self.holder = holder
        self.seconds = seconds

    async def acquire(self) -> bool:
        """Take the lease if free or expired, or renew it if ours; False if someone else holds it."""
        now = datetime.now(UTC)
        try:
            result = await self.collection.update_one(
                {"_id": self.name, "$or": [{"holder": self.holder}, {"expires_at": {"$lte": now}}]},
                {"$set": {"holder": self.holder, "expires_at": now + timedelta(seconds=self.seconds),
                          "renewed_at": now}},
                upsert=True,
            )
        except DuplicateKeyError:  # someone else holds it: our filter missed, the upsert collided
            return False
        return result.matched_count == 1 or result.upserted_id is not None

    async def release(self) -> None:
        await self.collection.update_one({"_id": self.name, "holder": self.holder},
                                         {"$set": {"expires_at": datetime.now(UTC)}})

    async def holder_now(self) -> str | None:
        doc = await self.collection.find_one({"_id": self.name})
        if doc is None or doc["expires_at"] <= datetime.now(UTC):
            return None
        return str(doc["holder"])
