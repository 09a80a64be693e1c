"""The celebrity gallery and the faces job: who, if anyone famous, is in a photo.

Why a job of its own (kind "faces", queued when a photo becomes READY): face detection and
descriptors cost 30-150 ms per face on a CPU, work the tag suggestions do not need; keeping them out of
the ingest batch keeps "suggestions within seconds" fast, and the same job re-checks photos when the
gallery changes. Detected faces (boxes and 128-d descriptors) are stored on the photo, so a re-check
after an enrolment only compares descriptors: no image is decoded again.

Recognition rules (ml/celebrity.py): a face matches an enrolled person only within
`max_distance` of one of their enrolment descriptors; CLIP zero-shot over the enrolled names can
raise the confidence of such a match, never create one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import structlog
from bson import ObjectId
from PIL import Image

from ml.celebrity import CelebrityMatch, EnrolmentError, confirm_with_clip, enrolment_descriptor, match_face
from ml.faces import DESCRIPTOR_SIZE, Face, FaceModel
from ml.pipelines.display_image import load_display_image
from ml.pipelines.models import ModelRegistry
from storage.base import parse_object_id
from storage.blobs import BlobNotFound, BlobStore
from storage.jobs import Defer, Done, Job, JobQueue, Outcome, Retry
from storage.photos import READY, PhotoRepository
from storage.vectors import ScalarField, VectorIndex, milvus_filter_eq

log = structlog.get_logger(__name__)

FACES = "faces"
GALLERY_COLLECTION = f"celebrity_faces__dlib_resnet_v1_{DESCRIPTOR_SIZE}"
CLIP_CONFIRM_MIN_SCORE = 0.5


def faces_job_key(photo_id: ObjectId) -> str:
    return f"faces:{photo_id}"


class Faces:
    """The face model, loaded once per process on first use, used by one thread at a time."""

    def __init__(self, model: FaceModel | None = None) -> None:
        self._model = model or FaceModel()
        self._lock = threading.Lock()

    def find(self, image: Image.Image) -> list[Face]:
        with self._lock:
            if not self._model.loaded:
                self._model.load()
            return self._model.faces(image)

    async def find_async(self, image: Image.Image) -> list[Face]:
        return await asyncio.to_thread(self.find, image)


@dataclass(frozen=True)
class Celebrity:
    name: str
    descriptors: int
    created_at: datetime


class CelebrityGallery:
    """Names in MongoDB (`celebrities`), descriptors in a Milvus collection of their own (L2)."""

    def __init__(self, db: Any, vectors: VectorIndex) -> None:
        self.collection = db["celebrities"]
        self.vectors = vectors

    async def _ready(self) -> None:
        await self.vectors.ensure_collection(GALLERY_COLLECTION, DESCRIPTOR_SIZE, (ScalarField("name", 200),),
                                             metric="L2")

    async def enrol(self, name: str, descriptors: Sequence[np.ndarray], *, by: str) -> Celebrity:
        await self._ready()
        now = datetime.now(UTC)
        doc = await self.collection.find_one_and_update(
            {"_id": name},
            {"$setOnInsert": {"created_at": now, "created_by": by}, "$inc": {"descriptors": len(descriptors)},
             "$set": {"updated_at": now}},
            upsert=True, return_document=True,
        )
        await self.vectors.upsert(GALLERY_COLLECTION, [
            {"id": str(ObjectId()), "vector": d, "name": name} for d in descriptors
        ])
        return Celebrity(name=name, descriptors=int(doc["descriptors"]), created_at=doc["created_at"])

    async def remove(self, name: str) -> bool:
        result = await self.collection.delete_one({"_id": name})
        if result.deleted_count == 0:
            return False
        await self._ready()
        rows = await self.vectors.query_ids(GALLERY_COLLECTION, milvus_filter_eq("name", name))
        await self.vectors.delete(GALLERY_COLLECTION, rows)
        return True

    async def list(self) -> list[Celebrity]:
        return [Celebrity(name=d["_id"], descriptors=int(d["descriptors"]), created_at=d["created_at"])
                async for d in self.collection.find({}).sort("_id", 1)]

    async def names(self) -> list[str]:
        return [d["_id"] async for d in self.collection.find({}, {"_id": 1})]

    async def nearest(self, descriptors: Sequence[np.ndarray], limit: int = 3) -> list[list[tuple[str, np.ndarray]]]:
        """For each descriptor, the closest gallery entries as (name, vector), for `match_face`."""
        if not descriptors or await self.collection.estimated_document_count() == 0:
            return [[] for _ in descriptors]
        await self._ready()
        hits = await self.vectors.search(GALLERY_COLLECTION, np.stack(descriptors), limit=limit,
                                         output_fields=("name",), metric="L2")
        ids = {h.id for row in hits for h in row}
        stored = await self.vectors.get_vectors(GALLERY_COLLECTION, sorted(ids))
        return [[(h.fields["name"], stored[h.id]) for h in row if h.id in stored] for row in hits]


class CelebrityRecognizer:
    def __init__(self, gallery: CelebrityGallery, models: ModelRegistry, *, max_distance: float) -> None:
        self.gallery = gallery
        self.models = models
        self.max_distance = max_distance

    async def identify(self, descriptors: Sequence[np.ndarray], image_vector: np.ndarray | None
                       ) -> list[CelebrityMatch]:
        """The enrolled people among these faces, best confidence first, one entry per name."""
        candidates = await self.gallery.nearest(descriptors)
        matches = [m for d, gallery in zip(descriptors, candidates, strict=True)
                   if (m := match_face(d, gallery, threshold=self.max_distance)) is not None]
        if matches and image_vector is not None and self.models.ready:
            scores = await self._clip_name_scores(image_vector)
            matches = [confirm_with_clip(m, scores, min_score=CLIP_CONFIRM_MIN_SCORE) for m in matches]
        best: dict[str, CelebrityMatch] = {}
        for match in matches:
            if match.name not in best or match.confidence > best[match.name].confidence:
                best[match.name] = match
        return sorted(best.values(), key=lambda m: -m.confidence)

    async def _clip_name_scores(self, image_vector: np.ndarray) -> dict[str, float]:
        names = await self.gallery.names()
        if not names:
            return {}
        embedder = self.models.embedder()
        texts = await self.models.run(embedder.embed_texts, [f"a photo of {n}." for n in names])
        logits = 100.0 * (texts @ image_vector)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        return {n: float(p) for n, p in zip(names, probabilities, strict=True)}


def people_field(matches: Sequence[CelebrityMatch]) -> dict[str, Any]:
    return {"people": [{"name": m.name, "confidence": round(m.confidence, 4), "distance": round(m.distance, 4)}
                       for m in matches], "checked_at": datetime.now(UTC)}


class FacesHandler:
    """Job handler for kind "faces": detect (first time only), then match against the gallery."""

    kind = FACES

    def __init__(self, photos: PhotoRepository, blobs: BlobStore, vectors: VectorIndex, faces: Faces,
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
            image = await load_display_image(self.blobs, doc)
            found = await self.faces.find_async(image)
            faces = [{"box": [f.box.left, f.box.top, f.box.right, f.box.bottom], "score": round(f.box.score, 3),
                      "descriptor": [float(x) for x in f.descriptor]} for f in found]
        descriptors = [np.asarray(f["descriptor"], dtype=np.float32) for f in faces]
        image_vector = None
        if descriptors and doc.get("vector_collection"):
            vectors = await self.vectors.get_vectors(doc["vector_collection"], [str(doc["_id"])])
            image_vector = vectors.get(str(doc["_id"]))
        if descriptors and not self.recognizer.models.ready:
            return Defer(delay=5.0, reason="model not ready for the CLIP confirmation")
        matches = await self.recognizer.identify(descriptors, image_vector) if descriptors else []
        await self.photos.update(doc["_id"], {"faces": faces, "faces_count": len(faces),
                                              "celebrity": people_field(matches)})
        if matches:
            log.info("photo.celebrity", photo=str(doc["_id"]), people=[m.name for m in matches])
        return Done({"faces": len(faces), "people": [m.name for m in matches]})


async def enqueue_faces(jobs: JobQueue, photo_ids: Sequence[ObjectId], *, again: bool = False) -> None:
    for photo_id in photo_ids:
        if again:
            await jobs.requeue_key(FACES, {"photo_id": str(photo_id)}, key=faces_job_key(photo_id))
        else:
            await jobs.enqueue(FACES, {"photo_id": str(photo_id)}, key=faces_job_key(photo_id))


async def recheck_photos_with_faces(photos: PhotoRepository, jobs: JobQueue) -> int:
    """After the gallery changed: match every photo with faces again (descriptors are stored)."""
    ids = [d["_id"] async for d in photos.collection.find({"faces_count": {"$gt": 0}}, {"_id": 1})]
    await enqueue_faces(jobs, ids, again=True)
    return len(ids)


@dataclass(frozen=True)
class EnrolmentProblem:
    index: int
    reason: str
    message: str


async def descriptors_for_enrolment(faces: Faces, images: Sequence[Image.Image]
                                    ) -> tuple[list[np.ndarray], list[EnrolmentProblem]]:
    """One descriptor per enrolment photo; every photo with no face or several faces is reported."""
    descriptors: list[np.ndarray] = []
    problems: list[EnrolmentProblem] = []
    for i, image in enumerate(images):
        try:
            descriptors.append(enrolment_descriptor(await faces.find_async(image)))
        except EnrolmentError as exc:
            problems.append(EnrolmentProblem(index=i, reason=str(exc.reason), message=str(exc)))
    return descriptors, problems


class EnrolmentRejected(ValueError):
    """Nothing was enrolled: every problem photo is listed, so the admin fixes them in one go."""

    def __init__(self, problems: Sequence[EnrolmentProblem]) -> None:
        self.problems = list(problems)
        detail = "; ".join(f"file {p.index}: {p.message}" for p in self.problems)
        super().__init__(f"enrolment rejected: {detail}")


MAX_NAME = 200


async def enrol_celebrity(
    gallery: CelebrityGallery, faces: Faces, photos: PhotoRepository, jobs: JobQueue, *, name: str,
    files: Sequence[tuple[bytes, str | None]], max_bytes: int, max_pixels: int, by: str,
) -> Celebrity:
    """Validate every file (an image, exactly one face), then enrol all of them or none, and queue a
    re-check of every photo with faces."""
    from ml.images import ImageRejected, decode_upload

    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"name must be 1 to {MAX_NAME} characters")
    if not files:
        raise ValueError("give at least one photo of the person")
    images: list[Image.Image] = []
    problems: list[EnrolmentProblem] = []
    for i, (data, declared) in enumerate(files):
        try:
            decoded = await asyncio.to_thread(decode_upload, data, max_bytes=max_bytes, max_pixels=max_pixels,
                                              declared_type=declared)
            images.append(decoded.image)
        except ImageRejected as exc:
            problems.append(EnrolmentProblem(index=i, reason=exc.reason, message=str(exc)))
            images.append(Image.new("RGB", (1, 1)))  # keeps indices aligned; never enrolled
    descriptors, face_problems = await descriptors_for_enrolment(faces, images)
    problems += [p for p in face_problems if p.index not in {q.index for q in problems}]
    if problems:
        raise EnrolmentRejected(sorted(problems, key=lambda p: p.index))
    celebrity = await gallery.enrol(name, descriptors, by=by)
    queued = await recheck_photos_with_faces(photos, jobs)
    log.info("celebrity.enrolled", name=name, descriptors=len(descriptors), rechecks=queued)
    return celebrity


async def remove_celebrity(gallery: CelebrityGallery, photos: PhotoRepository, jobs: JobQueue, name: str) -> bool:
    removed = await gallery.remove(name)
    if removed:
        await recheck_photos_with_faces(photos, jobs)
    return removed
