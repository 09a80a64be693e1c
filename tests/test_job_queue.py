"""The durable job queue against the real MongoDB-wire server, and the retry backoff its workers use."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from photoduel.worker import Done, Outcome, Retry, Worker
from storage.backoff import backoff_seconds
from storage.jobs import DONE, LEASED, PARKED, QUEUED, Job, JobQueue
from storage.mongo import create_client, ensure_indexes


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Any]:
    client = create_client(mongo_uri)
    database = client[f"jobs_{uuid.uuid4().hex[:10]}"]
    await ensure_indexes(database)
    yield database
    await client.drop_database(database.name)
    await client.close()


class RecordingHandler:
    """A test job kind: records each completion in MongoDB, optionally blocking or failing first."""

    def __init__(self, db: Any, *, block: asyncio.Event | None = None, fail_times: int = 0) -> None:
        self.batch_size = 4
        self.db = db
        self.block = block
        self.fail_times = fail_times
        self.started = asyncio.Event()

    async def handle(self, jobs: Sequence[Job]) -> Mapping[Any, Outcome]:
        self.started.set()
        if self.block is not None:
            await self.block.wait()
        if self.fail_times > 0:
            self.fail_times -= 1
            return {job.id: Retry("transient failure") for job in jobs}
        for job in jobs:
            await self.db.effects.insert_one({"job": job.id, "n": job.payload["n"]})
        return {job.id: Done({"ok": True}) for job in jobs}


def make_worker(queue: JobQueue, handler: Any, *, lease: float = 1.0, attempts: int = 5) -> Worker:
    return Worker(queue, {"test": handler}, lease_seconds=lease, max_attempts=attempts,
                  retry_base_seconds=0.05, poll_seconds=0.05)


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def test_enqueue_with_a_key_is_idempotent(db: Any) -> None:
    queue = JobQueue(db.jobs)
    first = await queue.enqueue("test", {"n": 1}, key="photo:1")
    again = await queue.enqueue("test", {"n": 1}, key="photo:1")
    assert first == again
    assert await db.jobs.count_documents({}) == 1


async def test_a_killed_worker_loses_no_job_and_nothing_runs_twice(db: Any) -> None:
    queue = JobQueue(db.jobs)
    ids = [await queue.enqueue("test", {"n": i}) for i in range(3)]

    never = asyncio.Event()  # the first worker hangs mid-batch, then "dies" without releasing
    dying = make_worker(queue, RecordingHandler(db, block=never), lease=1.0)
    dying_handler = dying.handlers["test"]
    dying.start()
    await asyncio.wait_for(dying_handler.started.wait(), 10)  # type: ignore[attr-defined]
    leased = await db.jobs.count_documents({"state": LEASED, "lease_owner": dying.worker_id})
    assert leased == 3
    assert dying._task.running
    await dying._task.stop()  # a crash: cancelled, no release, no completion, the heartbeat stops with it

    # The dead lease is short, so the wait for it is; the survivor's own is long, so a busy box cannot
    # make it lapse mid-batch and hand the survivor its own jobs again (a third attempt).
    survivor = make_worker(queue, RecordingHandler(db), lease=30.0)
    survivor.start()
    try:
        async def all_done() -> bool:
            return await db.jobs.count_documents({"state": DONE}) == 3

        await wait_for(all_done, timeout=60.0)
    finally:
        await survivor.stop()

    effects = await db.effects.find({}).to_list(None)
    assert sorted(e["job"] for e in effects) == sorted(ids)  # each job's effect exactly once
    for job_id in ids:
        doc = await db.jobs.find_one({"_id": job_id})
        assert doc is not None
        assert doc["lease_owner"] == survivor.worker_id
        assert doc["attempts"] == 2  # the crashed lease counted as an attempt

    # The dead worker's late completion is refused: the lease is no longer its own.
    stale = Job(id=ids[0], kind="test", payload={}, attempts=1, lease_token="stale")
    assert await queue.complete(stale, dying.worker_id) is False
    assert await queue.complete_many([(stale, {"late": True})], dying.worker_id) == 0
    assert (await db.jobs.find_one({"_id": ids[0]}))["result"] == {"ok": True}


async def test_racing_leases_never_share_a_job(db: Any) -> None:
    """A batch lease is read-then-claim; the claim's condition keeps two racing workers apart."""
    queue = JobQueue(db.jobs)
    ids = {await queue.enqueue("test", {"n": i}) for i in range(20)}
    batches = await asyncio.gather(*(queue.lease(f"w{w}", ["test"], limit=6, lease_seconds=30) for w in range(4)))
    leased = [job.id for batch in batches for job in batch]
    assert len(leased) == len(set(leased))  # no job in two batches
    assert len(leased) >= 6  # racing claims may leave a worker short (it leases again next loop), never empty-handed all
    for w, batch in enumerate(batches):
        for job in batch:
            doc = await db.jobs.find_one({"_id": job.id})
            assert doc["lease_owner"] == f"w{w}" and doc["lease_token"] == job.lease_token and doc["attempts"] == 1
    rest = await queue.lease("late", ["test"], limit=20, lease_seconds=30)
    assert {job.id for job in rest} == ids - set(leased)


async def test_failures_retry_with_backoff_then_park(db: Any) -> None:
    queue = JobQueue(db.jobs)
    job_id = await queue.enqueue("test", {"n": 7})
    worker = make_worker(queue, RecordingHandler(db, fail_times=10), attempts=3)
    worker.start()
    try:
        async def parked() -> bool:
            doc = await db.jobs.find_one({"_id": job_id})
            return doc is not None and doc["state"] == PARKED

        await wait_for(parked)
    finally:
        await worker.stop()
    doc = await db.jobs.find_one({"_id": job_id})
    assert doc is not None
    assert doc["attempts"] == 3
    assert doc["last_error"] == "transient failure"
    assert len(doc["errors"]) == 3
    assert [j["_id"] for j in await queue.parked()] == [job_id]
    assert await db.effects.count_documents({}) == 0


async def test_a_retried_job_succeeds_once(db: Any) -> None:
    queue = JobQueue(db.jobs)
    job_id = await queue.enqueue("test", {"n": 1})
    worker = make_worker(queue, RecordingHandler(db, fail_times=1), attempts=3)
    worker.start()
    try:
        async def done() -> bool:
            doc = await db.jobs.find_one({"_id": job_id})
            return doc is not None and doc["state"] == DONE

        await wait_for(done)
    finally:
        await worker.stop()
    assert await db.effects.count_documents({}) == 1


async def test_graceful_stop_releases_in_flight_jobs(db: Any) -> None:
    queue = JobQueue(db.jobs)
    job_id = await queue.enqueue("test", {"n": 1})
    handler = RecordingHandler(db, block=asyncio.Event())
    worker = make_worker(queue, handler, lease=30.0)
    worker.start()
    await asyncio.wait_for(handler.started.wait(), 10)
    await worker.stop(grace_seconds=0.2)
    doc = await db.jobs.find_one({"_id": job_id})
    assert doc is not None
    assert doc["state"] == QUEUED
    assert doc["attempts"] == 0  # released, not failed: the next worker starts it at once


def test_backoff_stays_within_the_jittered_exponential_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(1, 15):
        ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))
        samples = [backoff_seconds(attempt, rng=rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # Full jitter: spread over the whole range, not clustered at the ceiling.
        assert min(samples) < 0.1 * ceiling and max(samples) > 0.9 * ceiling
    assert backoff_seconds(10_000, rng=rng) <= 300.0
    assert backoff_seconds(3, base=0.5, cap=1.0, rng=rng) <= 1.0


def test_backoff_grows_until_the_cap_and_is_reproducible() -> None:
    rng = random.Random(1)
    means = [statistics.fmean(backoff_seconds(a, rng=rng) for _ in range(2000)) for a in range(1, 12)]
    for earlier, later in itertools.pairwise(means[:8]):  # ceilings 2, 4, ... 256, then 300 (capped)
        assert later > 1.5 * earlier
    assert means[-1] == pytest.approx(150.0, rel=0.1)  # capped: uniform(0, 300)

    first = [backoff_seconds(4, rng=random.Random(42)) for _ in range(3)]
    assert first == [backoff_seconds(4, rng=random.Random(42))] * 3
    with pytest.raises(ValueError):
        backoff_seconds(0, rng=random.Random(0))
