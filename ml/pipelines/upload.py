"""Accepting an upload: validate fully, store the original and the renditions, queue the ingest job.

Everything that can reject the file (size, format, type, pixel count, a full decode) runs before
anything is written, so bad input loses nothing and leaves nothing behind. Same bytes from the same
owner return the existing photo (checked before decoding, and again by the unique index when two
identical uploads race). The request returns as soon as the job is queued; the heavy work is the
worker's.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from bson import ObjectId

from ml.images import DecodedImage, Rendition, decode_upload, render_variants
from storage.blobs import BlobStore
from storage.jobs import JobQueue
from storage.photos import PROCESSING, PhotoRepository, now

log = structlog.get_logger(__name__)

INGEST = "ingest"
MAX_TITLE = 200


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    display_max_side: int
    thumbnail_max_side: int


@dataclass(frozen=True)
class UploadResult:
    photo: dict[str, Any]
    created: bool


def ingest_job_key(photo_id: ObjectId) -> str:
    return f"ingest:{photo_id}"


def _prepare(data: bytes, declared_type: str | None, limits: UploadLimits) -> tuple[DecodedImage, dict[str, Rendition]]:
    decoded = decode_upload(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                            declared_type=declared_type)
    renditions = render_variants(decoded.image, display_max_side=limits.display_max_side,
                                 thumbnail_max_side=limits.thumbnail_max_side)
    return decoded, renditions


class UploadService:
    def __init__(
        self,
        photos: PhotoRepository,
        blobs: BlobStore,
        jobs: JobQueue,
        limits: UploadLimits,
        *,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.photos = photos
        self.blobs = blobs
        self.jobs = jobs
        self.limits = limits
        self.on_enqueued = on_enqueued

    async def upload(
        self, owner: str, data: bytes, *, declared_type: str | None, filename: str | None, title: str | None
    ) -> UploadResult:
        """Raises `ml.images.ImageRejected` (nothing stored) or ValueError for a bad title."""
        if title is not None:
            title = title.strip() or None
            if title is not None and len(title) > MAX_TITLE:
                raise ValueError(f"title is longer than {MAX_TITLE} characters")
        sha256 = hashlib.sha256(data).hexdigest()
        existing = await self.photos.find_by_owner_sha(owner, sha256)
        if existing is not None:
            return UploadResult(existing, created=False)

        decoded, renditions = await asyncio.to_thread(_prepare, data, declared_type, self.limits)
        photo_id = ObjectId()
        meta = {"photo": str(photo_id), "owner": owner}
        blobs: dict[str, ObjectId] = {
            "raw": await self.blobs.put(data, filename=filename or "upload", content_type=decoded.mime,
                                        metadata={**meta, "variant": "raw"}),
        }
        for variant, rendition in renditions.items():
            blobs[variant] = await self.blobs.put(rendition.data, filename=f"{photo_id}-{variant}.jpg",
                                                  content_type=rendition.mime,
                                                  metadata={**meta, "variant": variant})
        created_at = now()
        doc: dict[str, Any] = {
            "_id": photo_id, "owner": owner, "title": title, "sha256": sha256, "status": PROCESSING,
            "format": decoded.format, "mime": decoded.mime, "width": decoded.width, "height": decoded.height,
            "bytes": len(data), "filename": filename, "blobs": blobs,
            "renditions": {
                variant: {"width": r.width, "height": r.height, "mime": r.mime,
                          "etag": hashlib.sha256(r.data).hexdigest()[:20]}
                for variant, r in renditions.items()
            },
            "tags": [], "rejected_tags": [], "suggestions": [], "neighbours": [], "duels": 0,
            "created_at": created_at, "updated_at": created_at,
        }
        stored, created = await self.photos.create_or_get(doc)
        if not created:  # an identical upload won the race: drop our copies
            for blob_id in blobs.values():
                await self.blobs.delete(blob_id)
            return UploadResult(stored, created=False)
        # The acknowledgement: durable, and with it the blobs and the photo written before it.
        await self.jobs.enqueue(INGEST, {"photo_id": str(photo_id)}, key=ingest_job_key(photo_id), durable=True)
        if self.on_enqueued is not None:
            self.on_enqueued()
        log.info("photo.uploaded", photo=str(photo_id), owner=owner, bytes=len(data), format=decoded.format,
                 width=decoded.width, height=decoded.height)
        return UploadResult(stored, created=True)

    async def requeue_orphans(self, *, older_than_seconds: float = 60.0) -> int:
        """Queue ingest for PROCESSING photos whose job was never written (a crash between the two)."""
        cutoff = now().timestamp() - older_than_seconds
        count = 0
        async for doc in self.photos.collection.find({"status": PROCESSING}, {"_id": 1, "created_at": 1}):
            if doc["created_at"].timestamp() < cutoff:
                await self.jobs.enqueue(INGEST, {"photo_id": str(doc["_id"])}, key=ingest_job_key(doc["_id"]))
                count += 1
        return count
