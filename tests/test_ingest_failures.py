"""A photo the ingest cannot process ends FAILED with a reason after the configured attempts, and the
other photos of its batch are not held up by it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from bson import ObjectId

from photoduel.settings import Settings
from tests.servers import LiveServer
from tests.tokens import auth_header
from tests.uploads import fetch_photo, generated_photo, jpeg_bytes, upload_ok, wait_ready

OWNER = auth_header("fay")


def test_a_photo_whose_image_is_gone_fails_with_a_reason_and_its_batch_mates_get_ready(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(job_max_attempts=2, job_retry_base_seconds=0.05, worker_batch_size=4)
    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        broken, *fine = [upload_ok(http, jpeg_bytes(generated_photo(500 + i)), OWNER)["id"] for i in range(3)]

        async def lose_display_rendition() -> None:
            doc = await api.services.db.photos.find_one({"_id": ObjectId(broken)})
            await api.services.blobs.delete(doc["blobs"]["display"])

        api.run(lose_display_rendition())

    with LiveServer(settings, run_worker=True) as worker, httpx.Client(base_url=worker.url, timeout=60) as http:
        worker.wait_model()
        for photo_id in fine:
            assert wait_ready(http, photo_id, OWNER)["status"] == "READY"
        failed = wait_ready(http, broken, OWNER)
        assert failed["status"] == "FAILED"
        assert "image unreadable" in failed["failureReason"]
        assert fetch_photo(http, broken, OWNER)["status"] == "FAILED"

        async def state() -> tuple[dict, list[str]]:
            job = await worker.services.db.jobs.find_one({"kind": "ingest", "payload.photo_id": broken})
            ready = await worker.services.db.photos.find_one({"_id": ObjectId(fine[0])})
            rows = await worker.services.vectors.get_vectors(ready["vector_collection"], [broken, *fine])
            return job, sorted(rows)

        job, rows = worker.run(state())
        assert job["state"] == "parked" and job["attempts"] == 2
        assert rows == sorted(fine)  # the failed photo left no row in the vector index
