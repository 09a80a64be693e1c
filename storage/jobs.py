"""A durable job queue in MongoDB.

Why not an in-memory queue: a job must survive the process that enqueued it and the worker that took
it. Each job is one document whose `state` moves queued -> leased -> done, or back to queued with a
later `run_at` after a failure, or to parked after `max_attempts`. A lease is an expiry time owned by
one worker: a worker that dies stops heart-beating, its lease runs out and any other worker may take
the job. Such a job is taken alone, and the take counts as an attempt: a job that kills its worker
takes no batch down with it the next time, and once it has used its attempts it is parked when next
leased (`park_exhausted`), not retried forever. Completing or failing requires still owning the lease
(`lease_owner` plus the `lease_token` handed out with it), so a worker that lost its lease can never
overwrite the result of the worker that took over: each job completes exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from storage.base import journaled
from storage.clock import utcnow
from storage.leases import Grant, LeaseFields

QUEUED, LEASED, DONE, PARKED = "queued", "leased", "done", "parked"
LEASE = LeaseFields()
LEASE_RAN_OUT = "the worker running it stopped before finishing it (a crash, a kill or out of memory)"


@dataclass(frozen=True)
class Job:
    id: ObjectId
    kind: str
    payload: Mapping[str, Any]
    attempts: int
    lease_token: str
    key: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Job:
        return cls(
            id=doc["_id"], kind=doc["kind"], payload=doc.get("payload", {}), attempts=doc.get("attempts", 0),
            lease_token=doc.get("lease_token", ""), key=doc.get("key"),
        )


@dataclass(frozen=True)
class Done:
    result: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Retry:
    """A failure that counts as an attempt; parked after max attempts."""

    error: str


@dataclass(frozen=True)
class Defer:
    """Not the job's fault (a model still loading): try again later without counting an attempt."""

    delay: float
    reason: str


Outcome = Done | Retry | Defer


@dataclass(frozen=True)
class Backlog:
    kind: str
    state: str
    count: int
    oldest: datetime | None


class JobQueue:
    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._jobs = collection

    async def enqueue(
        self, kind: str, payload: Mapping[str, Any], *, key: str | None = None, delay: float = 0.0,
        durable: bool = False,
    ) -> ObjectId:
        """Add a job; with `key`, enqueueing the same key again returns the existing job (idempotent).

        `durable`: acknowledged only once the server's journal holds it (write concern `j: true`). The
        journal is one sequential log, so the writes this caller made before it are durable with it: an
        upload that ends with a durable enqueue survives a database crash right after it is acknowledged
        (with `j: false` a killed server loses its last ~100 ms of acknowledged writes, MongoDB's and the
        embedded server's alike)."""
        now = utcnow()
        doc: dict[str, Any] = {
            "kind": kind, "payload": dict(payload), "state": QUEUED, "attempts": 0,
            "run_at": now + timedelta(seconds=delay), "created_at": now, "updated_at": now, "errors": [],
        }
        if key is not None:
            doc["key"] = key
        jobs = self._jobs
        if durable:
            jobs = journaled(jobs)
        try:
            result = await jobs.insert_one(doc)
            return ObjectId(result.inserted_id)
        except DuplicateKeyError:
            existing = await self._jobs.find_one({"key": key}, {"_id": 1})
            if existing is None:  # pragma: no cover - deleted between the two calls
                raise
            return ObjectId(existing["_id"])

    async def requeue_key(self, kind: str, payload: Mapping[str, Any], *, key: str) -> ObjectId:
        """Run a keyed job again (e.g. re-check after a gallery change), whatever state it ended in."""
        now = utcnow()
        doc = await self._jobs.find_one_and_update(
            {"key": key, "state": {"$ne": LEASED}},
            {"$set": {"kind": kind, "payload": dict(payload), "state": QUEUED, "attempts": 0, "run_at": now,
                      "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return ObjectId(doc["_id"])
        return await self.enqueue(kind, payload, key=key)

    async def lease(
        self, worker_id: str, kinds: Sequence[str], *, limit: int, lease_seconds: float,
        max_attempts: int | None = None,
    ) -> list[Job]:
        """Take up to `limit` runnable jobs: queued and due, or one leased by a worker whose lease ran out.

        A job whose lease ran out comes alone: its worker died holding it, and if the job is what killed
        it, the next crash takes no other job with it (the rest of its old batch comes back one at a
        time too, and finishes). With `max_attempts`, a job that used them all is left to
        `park_exhausted`, never leased again.

        A few round trips for any batch size, not one per job: read the oldest due ids, claim them with
        a conditional update (a job another worker claimed in between no longer matches, so no job is
        ever leased twice), read back what this lease token got. Jobs lost to a racing worker are
        replaced from the next candidates, a couple of times at most.
        """
        kinds_in = {"$in": list(kinds)}
        survivor = await self._lease_survivor(worker_id, kinds_in, lease_seconds, max_attempts)
        if survivor is not None:
            return [survivor]
        jobs: list[Job] = []
        for _ in range(3):
            now = utcnow()
            due = {"kind": kinds_in, "state": QUEUED, "run_at": {"$lte": now}}
            found = await self._jobs.find(due, {"_id": 1}).sort("run_at", 1).limit(limit - len(jobs)).to_list(None)
            if not found:
                break
            candidates = [doc["_id"] for doc in found]
            grant = Grant.new(worker_id, seconds=lease_seconds, now=now)
            await self._jobs.update_many(
                {**due, "_id": {"$in": candidates}},
                {"$set": {"state": LEASED, **LEASE.grant(grant), "updated_at": now}, "$inc": {"attempts": 1}},
            )
            claimed = await self._jobs.find(
                {"_id": {"$in": candidates}, **LEASE.held(worker_id, grant.token)}
            ).sort("run_at", 1).to_list(None)
            jobs.extend(Job.from_doc(doc) for doc in claimed)
            if len(claimed) == len(candidates) or len(jobs) >= limit:
                break
        return jobs

    def _ran_out(self, kinds_in: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """Leased jobs whose lease expired: their worker stopped (a crash or a kill) while holding them."""
        return {"kind": kinds_in, "state": LEASED, **LEASE.expired(now)}

    async def _lease_survivor(self, worker_id: str, kinds_in: Mapping[str, Any], lease_seconds: float,
                              max_attempts: int | None) -> Job | None:
        """The oldest job whose lease ran out, claimed alone; None if there is none (or another took it)."""
        now = utcnow()
        query = {**self._ran_out(kinds_in, now),
                 **({} if max_attempts is None else {"attempts": {"$lt": max_attempts}})}
        found = await self._jobs.find(query, {"_id": 1}).sort("run_at", 1).limit(1).to_list(None)
        if not found:
            return None
        grant = Grant.new(worker_id, seconds=lease_seconds, now=now)
        doc = await self._jobs.find_one_and_update(
            {**query, "_id": found[0]["_id"]},
            {"$set": {"state": LEASED, **LEASE.grant(grant), "updated_at": now, "last_error": LEASE_RAN_OUT},
             "$inc": {"attempts": 1},
             "$push": {"errors": {"$each": [{"at": now, "error": LEASE_RAN_OUT}], "$slice": -20}}},
            return_document=ReturnDocument.AFTER,
        )
        return Job.from_doc(doc) if doc is not None else None

    async def park_exhausted(self, kinds: Sequence[str], *, max_attempts: int, limit: int = 20
                             ) -> list[tuple[Job, str]]:
        """Park the jobs whose last allowed attempt ran out its lease (so `lease` no longer takes them).

        Returns the jobs this call parked, each with the reason, so the caller runs the kind's
        `on_parked` exactly once per job: of several workers racing, only the one whose conditional
        write landed gets it.
        """
        now = utcnow()
        query = {**self._ran_out({"$in": list(kinds)}, now), "attempts": {"$gte": max_attempts}}
        found = await self._jobs.find(query, {"_id": 1}).sort("run_at", 1).limit(limit).to_list(None)
        reason = f"gave up after {max_attempts} attempts: {LEASE_RAN_OUT}"
        parked: list[tuple[Job, str]] = []
        for candidate in found:
            doc = await self._jobs.find_one_and_update(
                {**query, "_id": candidate["_id"]},
                {"$set": {"state": PARKED, "updated_at": now, "last_error": reason},
                 "$push": {"errors": {"$each": [{"at": now, "error": reason}], "$slice": -20}},
                 "$unset": {LEASE.expires: ""}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                parked.append((Job.from_doc(doc), reason))
        return parked

    def _owned(self, job: Job, worker_id: str) -> dict[str, Any]:
        return {"_id": job.id, "state": LEASED, **LEASE.held(worker_id, job.lease_token)}

    async def heartbeat(self, jobs: Sequence[Job], worker_id: str, *, lease_seconds: float) -> int:
        """Extend the leases this worker still owns; returns how many it still owns."""
        if not jobs:
            return 0
        now = utcnow()
        result = await self._jobs.update_many(
            {"_id": {"$in": [j.id for j in jobs]}, "state": LEASED, LEASE.owner: worker_id,
             LEASE.token: {"$in": [j.lease_token for j in jobs]}},
            {"$set": {**LEASE.extended(seconds=lease_seconds, now=now), "updated_at": now}},
        )
        return result.modified_count

    async def complete(self, job: Job, worker_id: str, *, result: Mapping[str, Any] | None = None) -> bool:
        """Mark done; False when this worker no longer owns the lease (another worker took it over)."""
        return await self.complete_many([(job, result or {})], worker_id) == 1

    async def complete_many(self, done: Sequence[tuple[Job, Mapping[str, Any]]], worker_id: str) -> int:
        """`complete` for a whole batch in one round trip; returns how many this worker still owned."""
        if not done:
            return 0
        now = utcnow()
        result = await self._jobs.bulk_write([
            UpdateOne(self._owned(job, worker_id),
                      {"$set": {"state": DONE, "completed_at": now, "updated_at": now, "result": dict(outcome)},
                       "$unset": {LEASE.expires: ""}})
            for job, outcome in done
        ], ordered=False)
        return result.modified_count

    async def fail(
        self, job: Job, worker_id: str, error: str, *, max_attempts: int, retry_in: float
    ) -> str | None:
        """Record a failure; retry later, or park after `max_attempts`. Returns the new state."""
        now = utcnow()
        park = job.attempts >= max_attempts
        update: dict[str, Any] = {
            "$set": {"state": PARKED if park else QUEUED, "last_error": error[:2000], "updated_at": now,
                     "run_at": now + timedelta(seconds=0 if park else retry_in)},
            "$push": {"errors": {"$each": [{"at": now, "attempt": job.attempts, "error": error[:2000]}],
                                 "$slice": -20}},
            "$unset": {LEASE.expires: ""},
        }
        res = await self._jobs.update_one(self._owned(job, worker_id), update)
        if res.modified_count != 1:
            return None
        return PARKED if park else QUEUED

    async def defer(self, job: Job, worker_id: str, *, delay: float, reason: str) -> bool:
        """Put a job back without counting an attempt: the cause is ours (e.g. the model is still loading)."""
        now = utcnow()
        res = await self._jobs.update_one(
            self._owned(job, worker_id),
            {"$set": {"state": QUEUED, "run_at": now + timedelta(seconds=delay), "updated_at": now,
                      "deferred_reason": reason},
             "$inc": {"attempts": -1}, "$unset": {LEASE.expires: ""}},
        )
        return res.modified_count == 1

    async def release(self, jobs: Sequence[Job], worker_id: str) -> int:
        """Hand leased jobs back at shutdown so another worker starts them at once, attempt not counted."""
        released = 0
        for job in jobs:
            if await self.defer(job, worker_id, delay=0.0, reason="released at shutdown"):
                released += 1
        return released

    async def forget_payload(self, job: Job, names: Sequence[str]) -> None:
        """Drop fields of a job's payload that must not outlive its run, whatever state the job is in (an
        account erasure's random id: kept, it would tie the erased uid in the job's key to its votes)."""
        await self._jobs.update_one({"_id": job.id}, {"$unset": {f"payload.{name}": "" for name in names}})

    async def running(self, keys: Sequence[str]) -> set[str]:
        """Which of these keyed jobs a live worker holds now (leased, the lease not run out): work that may
        still write what it is about. A job whose lease ran out has no live worker; whoever leases it
        next starts it from the beginning."""
        if not keys:
            return set()
        cursor = self._jobs.find({"key": {"$in": list(keys)}, "state": LEASED, LEASE.expires: {"$gt": utcnow()}},
                                 {"key": 1})
        return {doc["key"] async for doc in cursor}

    async def parked(self, *, limit: int = 100) -> list[dict[str, Any]]:
        return await self._jobs.find({"state": PARKED}).sort("updated_at", -1).to_list(limit)

    async def pending(self, kind: str) -> int:
        return await self._jobs.count_documents({"kind": kind, "state": {"$in": [QUEUED, LEASED]}})

    async def backlog(self) -> list[Backlog]:
        """Jobs not done, per kind and state (queued, leased, parked), with the oldest one's creation time:
        what the metrics report (the `runnable` index serves the match; done jobs are not read)."""
        cursor = await self._jobs.aggregate([
            {"$match": {"state": {"$in": [QUEUED, LEASED, PARKED]}}},
            {"$group": {"_id": {"kind": "$kind", "state": "$state"}, "count": {"$sum": 1},
                        "oldest": {"$min": "$created_at"}}},
        ])
        return [Backlog(kind=str(d["_id"]["kind"]), state=str(d["_id"]["state"]), count=int(d["count"]),
                        oldest=d["oldest"]) async for d in cursor]
