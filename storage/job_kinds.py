"""Job kinds whose producer, handler or watcher live in packages that must not import each other.

An upload (`photos.uploads`) queues the ingest job that `ml.pipelines.ingest` handles; the kind and the
per-photo key are the contract between the two, so they sit below both. A photo's deletion
(`photos.deletion`) waits while its ingest or face job (`ml.pipelines.celebrity_job`) runs, which it finds
by these keys.
"""

from __future__ import annotations

from bson import ObjectId

INGEST = "ingest"


def ingest_job_key(photo_id: ObjectId) -> str:
    """One ingest job per photo: a repeated enqueue (a retried upload, the orphan scan) is a no-op."""
    return f"ingest:{photo_id}"


FACES = "faces"


def faces_job_key(photo_id: ObjectId) -> str:
    """One face check per photo; a gallery change queues it again (`JobQueue.requeue_key`)."""
    return f"faces:{photo_id}"

