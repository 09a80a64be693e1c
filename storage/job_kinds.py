"""Job kinds whose producer and handler live in packages that must not import each other.

An upload (`photos.uploads`) queues the ingest job that `ml.pipelines.ingest` handles; the kind and the
per-photo key are the contract between the two, so they sit below both.
"""

from __future__ import annotations

from bson import ObjectId

INGEST = "ingest"


def ingest_job_key(photo_id: ObjectId) -> str:
    """One ingest job per photo: a repeated enqueue (a retried upload, the orphan scan) is a no-op."""
    return f"ingest:{photo_id}"
