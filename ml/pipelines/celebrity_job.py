"""The faces job: who, if anyone famous, is in a photo.

Why a job of its own (kind "faces", queued when a photo becomes READY): face detection and
descriptors cost 30-150 ms per face on a CPU, work the tag suggestions do not need; keeping them out of
the ingest batch keeps "suggestions within seconds" fast, and the same job re-checks photos when the
gallery changes. Detected faces (boxes and 128-d descriptors) are stored on the photo, so a re-check
after an enrolment only compares descriptors: no image is decoded again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import structlog
from bson import ObjectId

from ml.celebrity import CelebrityMatch
from ml.faces import Face
from ml.pipelines.celebrity_recognition import CelebrityRecognizer
from ml.pipelines.display_image import load_display_image
from ml.pipelines.face_model import FaceModelRegistry
from storage.base import Doc, parse_object_id
from storage.blobs import BlobNotFound, BlobStore
from storage.clock import utcnow
from storage.job_kinds import FACES, faces_job_key
from storage.jobs import Defer, Done, Job, JobQueue, Outcome, Retry
from storage.photos import READY, PhotoRepository
from storage.vectors import VectorIndex

log = structlog.get_logger(__name__)

__all__ = ["FACES", "FacesHandler", "enqueue_faces", "faces_job_key", "recheck_photos_with_faces"]


def faces_field(found: Sequence[Face]) -> list[dict[str, Any]]:
    return [{"box": [f.box.left, f.box.top, f.box.right, f.box.bottom], "score": round(f.box.score, 3),
             "descriptor": [float(x) for x in f.descriptor]} for f in found]


def people_field(matches: Sequence[CelebrityMatch]) -> dict[str, Any]:
    return {"people": [{"name": m.name, "confidence": round(m.confidence, 4), "distance": round(m.distance, 4)}
                       for m in matches], "checked_at": utcnow()}


class FacesHandler:
    """Job handler for kind "faces": detect (first time only), then match against the gallery."""

    kind = FACES

    def __init__(self, photos: PhotoRepository, blobs: BlobStore, vectors: VectorIndex, faces: FaceModelRegistry,
                 recognizer: CelebrityRecognizer, *, batch_size: int = 8) -> None:
        self.photos = photos
        self.blobs = blobs
        self.vectors = vectors
        self.faces = faces
        self.recognizer = recognizer
        self.batch_size = batch_size

    async def handle(self, jobs: Sequence[Job]) -> Mapping[Any, Outcome]:
        results: dict[Any, Outcome] = {}
        for job in jobs:
            try:
                results[job.id] = await self._check(job)
            except (BlobNotFound, OSError) as exc:
                results[job.id] = Retry(f"image unreadable: {exc}")
        return results

    async def _check(self, job: Job) -> Outcome:
        oid = parse_object_id(str(job.payload.get("photo_id", "")))
        doc = await self.photos.get(oid) if oid else None
        if doc is None or doc["status"] != READY:
            return Done({"skipped": "not ready"})
        faces = doc.get("faces")
        if faces is None:
            faces = faces_field(await self.faces.faces(await load_display_image(self.blobs, doc)))
        descriptors = [np.asarray(f["descriptor"], dtype=np.float32) for f in faces]
        if descriptors and not self.recognizer.ready:
            return Defer(delay=5.0, reason="model not ready for the CLIP confirmation")
        matches = await self.recognizer.identify(descriptors, await self._image_vector(doc)) if descriptors else []
        await self.photos.update(doc["_id"], {"faces": faces, "faces_count": len(faces),
                                              "celebrity": people_field(matches)})
        if matches:
            log.info("photo.celebrity", photo=str(doc["_id"]), people=[m.name for m in matches])
        return Done({"faces": len(faces), "people": [m.name for m in matches]})

    async def _image_vector(self, doc: Doc) -> np.ndarray | None:
        if not doc.get("vector_collection"):
            return None
        vectors = await self.vectors.get_vectors(doc["vector_collection"], [str(doc["_id"])])
        return vectors.get(str(doc["_id"]))


async def enqueue_faces(jobs: JobQueue, photo_ids: Sequence[ObjectId], *, again: bool = False) -> None:
    """`again` replaces a finished job of the same photo: the gallery changed, so its answer may too."""
    for photo_id in photo_ids:
        if again:
            await jobs.requeue_key(FACES, {"photo_id": str(photo_id)}, key=faces_job_key(photo_id))
        else:
            await jobs.enqueue(FACES, {"photo_id": str(photo_id)}, key=faces_job_key(photo_id))


async def recheck_photos_with_faces(photos: PhotoRepository, jobs: JobQueue) -> int:
    """After the gallery changed: match every photo with faces again (descriptors are stored)."""
    ids = await photos.ids_with_faces()
    await enqueue_faces(jobs, ids, again=True)
    return len(ids)
