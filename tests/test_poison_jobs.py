"""A job that kills its worker: parked after its attempts, and the rest of its batch finishes.

The worker is a real child process (tests/crashing_worker.py: the real `Worker` and `JobQueue`) and
the job's handler calls `os._exit`, so nothing in the process gets to record a failure: only the
lease running out says what happened. The test plays the supervisor, restarting the worker whenever it
dies. Also: an ingest job parked that way leaves its photo FAILED with the reason.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bson import ObjectId
from pymongo import MongoClient

from photoduel.settings import Settings
from storage.job_kinds import INGEST, ingest_job_key
from storage.jobs import JobQueue
from storage.mongo import create_client, ensure_indexes
from tests.crashing_worker import CRASH_EXIT_CODE, KIND
from tests.servers import LiveServer
from tests.tokens import auth_header
from tests.uploads import fetch_photo

LEASE_SECONDS = 1.0
MAX_ATTEMPTS = 3
JOBS = 8
POISON = 2  # in the first batch of four


async def enqueue_jobs(uri: str, database: str) -> list[ObjectId]:
    client = create_client(uri)
    try:
        await ensure_indexes(client[database])
        queue = JobQueue(client[database]["jobs"])
        return [await queue.enqueue(KIND, {"n": n, "crash": n == POISON}) for n in range(JOBS)]
    finally:
        await client.close()


def start_worker(uri: str, database: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crashing_worker", uri, database, str(LEASE_SECONDS), str(MAX_ATTEMPTS)],
        cwd=Path(__file__).resolve().parent.parent, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def test_a_job_that_kills_its_worker_is_parked_and_the_rest_of_its_batch_finishes(
    mongo_uri: str, tmp_path: Path
) -> None:
    database = f"poison_{uuid.uuid4().hex[:10]}"
    ids = asyncio.run(enqueue_jobs(mongo_uri, database))
    db = MongoClient(mongo_uri)[database]
    log = tmp_path / "workers.log"
    exits: list[int] = []
    worker = start_worker(mongo_uri, database, log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if worker.poll() is not None:  # the supervisor's part: a dead worker is started again
                exits.append(worker.returncode)
                worker = start_worker(mongo_uri, database, log)
            settled = db.jobs.count_documents({"state": {"$in": ["done", "parked"]}})
            if settled == JOBS and db.parked_reports.count_documents({}) == 1:
                break
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(30)

    jobs = {doc["payload"]["n"]: doc for doc in db.jobs.find()}
    poison = jobs[POISON]
    assert poison["state"] == "parked", (poison, log.read_text()[-3000:])
    assert poison["attempts"] == MAX_ATTEMPTS  # leased that often, never once more
    assert "stopped before finishing" in poison["last_error"]
    assert exits == [CRASH_EXIT_CODE] * MAX_ATTEMPTS  # each attempt killed a worker, and nothing else did
    assert all(jobs[n]["state"] == "done" for n in jobs if n != POISON), {n: j["state"] for n, j in jobs.items()}
    effects = sorted(doc["n"] for doc in db.effects.find())
    assert effects == [n for n in range(JOBS) if n != POISON]  # each of the others exactly once
    for n in range(4):  # the poison's first batch: retried one job at a time after the crash
        if n != POISON:
            assert jobs[n]["attempts"] == 2, jobs[n]
    report = db.parked_reports.find_one()
    assert report is not None and report["job"] == ids[POISON]
    assert report["error"] == poison["last_error"]
    MongoClient(mongo_uri).drop_database(database)


def test_an_ingest_job_parked_at_lease_time_leaves_its_photo_failed_with_the_reason(
    make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(job_max_attempts=2)
    db = MongoClient(settings.mongodb_uri)[settings.mongodb_database]
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        # What a photo looks like after its ingest killed the worker on each of its attempts: PROCESSING,
        # its job leased by a worker that is gone, the lease run out.
        photo_id, now = ObjectId(), datetime.now(UTC)
        server.run(server.services.photos.collection.insert_one({
            "_id": photo_id, "owner": "petra", "status": "PROCESSING", "title": "Cursed", "sha256": uuid.uuid4().hex,
            "created_at": now, "updated_at": now, "tags": [], "suggestions": [],
        }))
        db.jobs.insert_one({
            "kind": INGEST, "payload": {"photo_id": str(photo_id)}, "key": ingest_job_key(photo_id),
            "state": "leased", "attempts": 2, "run_at": now - timedelta(minutes=5), "created_at": now,
            "updated_at": now, "errors": [], "lease_owner": "gone:1", "lease_token": "t",
            "lease_expires": now - timedelta(seconds=1),
        })
        deadline = time.monotonic() + 30
        photo = fetch_photo(http, str(photo_id), auth_header("petra"))
        while photo is not None and photo["status"] != "FAILED" and time.monotonic() < deadline:
            time.sleep(0.1)
            photo = fetch_photo(http, str(photo_id), auth_header("petra"))
        assert photo is not None and photo["status"] == "FAILED", photo
        assert "stopped before finishing" in photo["failureReason"]
        job = db.jobs.find_one({"key": ingest_job_key(photo_id)})
        assert job is not None and job["state"] == "parked" and job["attempts"] == 2
