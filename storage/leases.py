"""Leases in MongoDB: who may work on a document now, for how long, and proof of it afterwards.

Every lease in the service is fields of a document, taken and renewed with single conditional writes
(no transaction, so none can meet the embedded server's transaction deadlock): a job of the job queue,
an outbox record being pushed, and the named singleton that elects the rating projector. A holder that
dies stops renewing, and once the expiry passes anyone may take the lease over. A lease alone does not
fence a holder that was paused past its expiry: each write after the work is conditional on the grant
still being held (`LeaseFields.held`: owner and the token of this grant), or, for the projector, on
its batch numbers.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from storage.base import Doc
from storage.clock import utcnow


def process_id() -> str:
    """Who holds a lease (a worker, a dispatcher, the projector): host, pid and a random part, since a pid
    is reused across restarts and a restarted process must not pass for its predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Grant:
    """One taking of a lease: a fresh token per grant, so a later grant to the same owner is told apart."""

    owner: str
    token: str
    expires: datetime

    @classmethod
    def new(cls, owner: str, *, seconds: float, now: datetime) -> Grant:
        return cls(owner=owner, token=secrets.token_hex(8), expires=now + timedelta(seconds=seconds))


@dataclass(frozen=True)
class LeaseFields:
    """Where a document keeps its lease; `under("push")` nests them in a sub-document."""

    owner: str = "lease_owner"
    token: str = "lease_token"  # noqa: S105 - the name of a field, not a secret
    expires: str = "lease_expires"

    @classmethod
    def under(cls, prefix: str) -> LeaseFields:
        plain = cls()
        return cls(f"{prefix}.{plain.owner}", f"{prefix}.{plain.token}", f"{prefix}.{plain.expires}")

    def grant(self, grant: Grant) -> dict[str, Any]:
        """The `$set` that hands the lease over."""
        return {self.owner: grant.owner, self.token: grant.token, self.expires: grant.expires}

    def held(self, owner: str, token: str) -> dict[str, Any]:
        """The filter that matches only while this grant is still held."""
        return {self.owner: owner, self.token: token}

    def expired(self, now: datetime) -> dict[str, Any]:
        return {self.expires: {"$lt": now}}

    def extended(self, *, seconds: float, now: datetime) -> dict[str, Any]:
        return {self.expires: now + timedelta(seconds=seconds)}

    def cleared(self) -> dict[str, str]:
        """The `$unset` that ends the lease and leaves no trace of it."""
        return {self.owner: "", self.token: "", self.expires: ""}


class Lease:
    """One holder at a time for a deployment-wide singleton (the rating projector): one document
    {_id: name, holder, expires_at, renewed_at}, without a token, since one holder renews one grant for
    as long as it lives."""

    def __init__(self, collection: AsyncCollection[Doc], name: str, *, holder: str, seconds: float) -> None:
        self.collection = collection
        self.name = name
        self.holder = holder
        self.seconds = seconds

    async def acquire(self) -> bool:
        """Take the lease if free or expired, or renew it if ours; False if someone else holds it."""
        now = utcnow()
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
        await self.collection.update_one({"_id": self.name, "holder": self.holder}, {"$set": {"expires_at": utcnow()}})

    async def holder_now(self) -> str | None:
        doc = await self.collection.find_one({"_id": self.name})
        if doc is None or doc["expires_at"] <= utcnow():
            return None
        return str(doc["holder"])
