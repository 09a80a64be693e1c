"""A worker process killed with SIGKILL in the middle of a batch: nothing lost, nothing done twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bson import ObjectId
from pymongo import MongoClient

from photoduel.settings import Settings
from tests.servers import LiveServer, settings_env
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_ok

PHOTOS = 15


def ready_logged(log: Path) -> list[str]:
    """The photos a worker's JSON log says it made READY, in order (repeats kept)."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if '"photo.ready"' in line]
    return [line["photo"] for line in lines if line.get("event") == "photo.ready"]


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "photoduel.cli", "worker"], env=settings_env(settings),
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def test_a_worker_killed_mid_batch_loses_no_photo_and_processes_none_twice(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(worker_batch_size=3, job_lease_seconds=3, log_json=True)
    headers = auth_header("pat")
    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        ids = [upload_ok(http, jpeg_bytes(generated_photo(900 + i)), headers)["id"] for i in range(PHOTOS)]

    db = MongoClient(settings.mongodb_uri)[settings.mongodb_database]
    victim = start_worker(settings, tmp_path / "victim.log")
    killed_batch: list[ObjectId] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = db.jobs.count_documents({"kind": "ingest", "state": "done"})
            # A lease taken (or extended by the heartbeat) in the last 100 ms: the batch is being
            # computed, not settled, so the kill lands mid-batch rather than after the last write.
            fresh = datetime.now(UTC) + timedelta(seconds=settings.job_lease_seconds - 0.1)
            leased = list(db.jobs.find({"kind": "ingest", "state": "leased", "lease_expires": {"$gt": fresh}}))
            if done >= 1 and leased:
                victim.send_signal(signal.SIGKILL)  # mid-batch: its leases die with it
                victim.wait(30)
                killed_batch = list(db.jobs.find({"kind": "ingest", "state": "leased"}, {"_id": 1, "payload": 1}))
                break
            time.sleep(0.005)
        assert killed_batch, (tmp_path / "victim.log").read_text()[-2000:]
    finally:
        victim.kill()
        victim.wait(30)
    ready_at_kill = {str(d["_id"]) for d in db.photos.find({"status": "READY"}, {"_id": 1})}
    assert len(ready_at_kill) < PHOTOS

    survivor = start_worker(settings, tmp_path / "survivor.log")
    try:
        deadline = time.monotonic() + 120
        # every photo READY and every job closed: a job of the killed batch whose photo was READY at the
        # kill is taken up (and closed) only once the dead worker's lease has expired
        while (db.photos.count_documents({"status": "READY"}) < PHOTOS
               or db.jobs.count_documents({"kind": "ingest", "state": "done"}) < PHOTOS) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(60)

    assert db.photos.count_documents({"_id": {"$in": [ObjectId(i) for i in ids]}, "status": "READY"}) == PHOTOS
    assert db.jobs.count_documents({"kind": "ingest", "state": "done"}) == PHOTOS
    for job in killed_batch:  # the killed lease expired and counted as an attempt
        assert db.jobs.find_one({"_id": job["_id"]})["attempts"] >= 2
    for photo_id in ids:  # each photo announced exactly once
        assert db.outbox.count_documents({"key": f"suggestions:{photo_id}"}) == 1

    # PROCESSING -> READY once per photo across both workers: each worker logs the photos it made READY.
    by_victim, by_survivor = ready_logged(tmp_path / "victim.log"), ready_logged(tmp_path / "survivor.log")
    assert len(by_victim) == len(set(by_victim)) and len(by_survivor) == len(set(by_survivor))
    assert set(by_victim) <= ready_at_kill
    assert set(by_survivor) == set(ids) - ready_at_kill  # the rest, and not one the victim had finished
    # The victim may die between a READY write and its log line; such a photo's job was still leased by
    # it (so the survivor found the photo READY and only finished what follows READY), never another's.
    unlogged = ready_at_kill - set(by_victim)
    assert unlogged <= {job["payload"]["photo_id"] for job in killed_batch}, unlogged

    with LiveServer(settings, run_worker=False) as api:  # the vector index holds each photo once
        api.wait_model()
        collection = api.run(api.services.photos.get(ObjectId(ids[0])))["vector_collection"]
        assert api.run(api.services.vectors.count(collection)) == PHOTOS
