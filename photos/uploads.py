"""Accepting an upload: store the original and the renditions, queue the ingest job.

Everything that can reject the file (`photos.upload_rules`) runs before anything is written, so bad
input loses nothing and leaves nothing behind. Same bytes from the same owner return the existing
photo (checked before decoding, and again by the unique index when two identical uploads race). The
request returns as soon as the job is queued; the heavy work is the worker's.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from bson import ObjectId

from ml.images import DecodedImage, Rendition, render_variants
from photos.upload_rules import UploadRules
from storage.blobs import BlobStore
from storage.clock import utcnow
from storage.job_kinds import INGEST, ingest_job_key
from storage.jobs import JobQueue
from storage.photos import PROCESSING, PhotoRepository

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RenditionSizes:
    display_max_side: int
    thumbnail_max_side: int


@dataclass(frozen=True)
class UploadResult:
    photo: dict[str, Any]
    created: bool


def photo_document(photo_id: ObjectId, owner: str, title: str | None, data: bytes, filename: str | None,
                   decoded: DecodedImage, renditions: dict[str, Rendition], blobs: dict[str, ObjectId]
                   ) -> dict[str, Any]:
    created_at = utcnow()
    return {
        "_id": photo_id, "owner": owner, "title": title, "sha256": decoded.sha256, "status": PROCESSING,
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


class UploadService:
    """Owns the decode pool: `decode_threads` threads decode uploads and encode their renditions.

    Decoding a 50 MP photo holds a thread for seconds. On the event loop's default pool a burst of large
    uploads would take every thread that token verification and the other blocking calls need, stalling
    sign-in for everyone; on a pool of its own a burst only queues behind itself.
    """

    def __init__(
        self,
        photos: PhotoRepository,
        blobs: BlobStore,
        jobs: JobQueue,
        rules: UploadRules,
        sizes: RenditionSizes,
        *,
        decode_threads: int = 2,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.photos = photos
        self.blobs = blobs
        self.jobs = jobs
        self.rules = rules
        self.sizes = sizes
        self.on_enqueued = on_enqueued
        self._decoder = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="upload-decode")

    def close(self) -> None:
        """Stop the decode pool (decodes already running finish; their requests are being shut down)."""
        self._decoder.shutdown(wait=False, cancel_futures=True)

    def _prepare(self, data: bytes, declared_type: str | None) -> tuple[DecodedImage, dict[str, Rendition]]:
        decoded = self.rules.decode(data, declared_type)
        renditions = render_variants(decoded.image, display_max_side=self.sizes.display_max_side,
                                     thumbnail_max_side=self.sizes.thumbnail_max_side)
        return decoded, renditions

    async def _store_blobs(self, photo_id: ObjectId, owner: str, data: bytes, filename: str | None,
                           decoded: DecodedImage, renditions: dict[str, Rendition]) -> dict[str, ObjectId]:
        meta = {"photo": str(photo_id), "owner": owner}
        blobs = {"raw": await self.blobs.put(data, filename=filename or "upload", content_type=decoded.mime,
                                             metadata={**meta, "variant": "raw"})}
        for variant, rendition in renditions.items():
            blobs[variant] = await self.blobs.put(rendition.data, filename=f"{photo_id}-{variant}.jpg",
                                                  content_type=rendition.mime, metadata={**meta, "variant": variant})
        return blobs

    async def upload(
        self, owner: str, data: bytes, *, declared_type: str | None, filename: str | None, title: str | None
    ) -> UploadResult:
        """`title` as `UploadRules.title` returned it. Raises `ml.images.ImageRejected` (nothing stored)."""
        sha256 = hashlib.sha256(data).hexdigest()
        existing = await self.photos.find_by_owner_sha(owner, sha256)
        if existing is not None:
            return UploadResult(existing, created=False)

        decoded, renditions = await asyncio.get_running_loop().run_in_executor(
            self._decoder, self._prepare, data, declared_type)
        photo_id = ObjectId()
        blobs = await self._store_blobs(photo_id, owner, data, filename, decoded, renditions)
        doc = photo_document(photo_id, owner, title, data, filename, decoded, renditions, blobs)
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
        """Queue ingest for PROCESSING photos whose job was never written (a crash between the two).

        Only photos older than a running upload could be, so an upload between its two writes is left alone.
        """
        orphans = await self.photos.processing_created_before(utcnow() - timedelta(seconds=older_than_seconds))
        for photo_id in orphans:
            await self.jobs.enqueue(INGEST, {"photo_id": str(photo_id)}, key=ingest_job_key(photo_id))
        return len(orphans)
