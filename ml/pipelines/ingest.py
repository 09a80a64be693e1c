"""The ingest job, batched for the model: embed -> index -> neighbours -> tags -> quality -> READY -> announce.

Why batched: the forward pass is the cost, and several photos per pass is what makes the pipeline
keep up with the bare model (bench/ingest.py measures the ratio). Why neighbours here: milvus-lite
searches cost 90-400 ms at 100k vectors, so each photo's nearest neighbours are found once, now, and
kept on the photo (and the new photo is offered to its neighbours' lists); duels and similarPhotos
read those lists and never wait for a vector search.

Idempotent by construction: a photo already READY is skipped, the PROCESSING -> READY write is
conditional, the Milvus write is an upsert, the neighbour offer replaces the entry and the
announcement has an idempotency key. A worker killed mid-batch therefore costs a repeat of the
batch's compute, never a photo processed twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from bson import ObjectId
from PIL import Image
from pymongo import UpdateOne

from ml.pipelines.analysis import PhotoAnalysis, PhotoAnalyzer
from ml.pipelines.display_image import load_display_image
from ml.pipelines.models import ModelRegistry
from ml.pipelines.upload import INGEST
from notifications.outbox import Outbox, announce_suggestions_ready
from storage.base import parse_object_id
from storage.blobs import BlobNotFound, BlobStore
from storage.jobs import Defer, Done, Job, Outcome, Retry
from storage.photos import FAILED, PROCESSING, READY, PhotoRepository, now
from storage.vectors import ScalarField, VectorIndex, collection_name

log = structlog.get_logger(__name__)

PHOTO_SCALARS = (ScalarField("category", 64), ScalarField("owner", 128), ScalarField("status", 16))

@dataclass(frozen=True)
class _Decision:
    fields: dict[str, Any]
    row: dict[str, Any]
    offers: list[tuple[ObjectId, float]]
    suggestions: int


@dataclass(frozen=True)
class IngestConfig:
    neighbours_k: int
    near_duplicate_cosine: float
    suggestions_max: int
    batch_size: int


def photo_collection(model_id: str, dim: int) -> str:
    return collection_name("photos", model_id, dim)


class IngestHandler:
    """Job handler for kind "ingest"."""

    kind = INGEST

    def __init__(
        self,
        photos: PhotoRepository,
        blobs: BlobStore,
        vectors: VectorIndex,
        models: ModelRegistry,
        analyzer: PhotoAnalyzer,
        outbox: Outbox,
        config: IngestConfig,
        *,
        initial_rating: Callable[[float | None], dict[str, Any]],
        before_batch: Sequence[Callable[[], Awaitable[None]]] = (),
        after_ready: Sequence[Callable[[list[dict[str, Any]]], Awaitable[None]]] = (),
        on_announced: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.photos = photos
        self.blobs = blobs
        self.vectors = vectors
        self.models = models
        self.analyzer = analyzer
        self.outbox = outbox
        self.config = config
        self.batch_size = config.batch_size
        self.initial_rating = initial_rating
        self.before_batch = list(before_batch)
        self.after_ready = list(after_ready)
        self.on_announced = on_announced

    async def handle(self, jobs: Sequence[Job]) -> Mapping[Any, Outcome]:
        if not self.models.ready:
            reason = self.models.status().reason or "model loading"
            return {job.id: Defer(delay=5.0, reason=f"model not ready: {reason}") for job in jobs}

        results: dict[Any, Outcome] = {}
        work: list[tuple[Job, dict[str, Any], Image.Image]] = []
        for job in jobs:
            oid = parse_object_id(str(job.payload.get("photo_id", "")))
            doc = await self.photos.get(oid) if oid else None
            if doc is None or doc["status"] != PROCESSING:
                results[job.id] = Done({"skipped": "gone" if doc is None else doc["status"]})
                continue
            try:
                image = await load_display_image(self.blobs, doc)
            except (BlobNotFound, OSError) as exc:
                results[job.id] = Retry(f"image unreadable: {exc}")
                continue
            work.append((job, doc, image))
        if not work:
            return results
        for step in self.before_batch:
            await step()

        analyses = await self.analyzer.analyze([image for _, _, image in work])
        embedder = self.models.embedder()
        collection = photo_collection(embedder.model_id, embedder.dim)
        await self.vectors.ensure_collection(collection, embedder.dim, PHOTO_SCALARS)

        docs = [doc for _, doc, _ in work]
        vectors = np.stack([a.vector for a in analyses])
        neighbours = await self._neighbours(collection, docs, vectors)
        decisions = [await self._decide(doc, analysis, near, collection)
                     for doc, analysis, near in zip(docs, analyses, neighbours, strict=True)]
        # One upsert and one flush per batch: a flush per photo would cost more than the model.
        await self.vectors.upsert(collection, [d.row for d in decisions])
        ready_docs: list[dict[str, Any]] = []
        for (job, doc, _), decision in zip(work, decisions, strict=True):
            try:
                ready = await self._commit(doc, decision)
            except Exception as exc:
                log.exception("ingest.photo_failed", photo=str(doc["_id"]))
                results[job.id] = Retry(f"{type(exc).__name__}: {exc}")
                continue
            if ready is not None:
                ready_docs.append(ready)
            results[job.id] = Done({"photo": str(doc["_id"])})
        for step in self.after_ready:
            await step(ready_docs)
        return results

    async def _neighbours(
        self, collection: str, docs: list[dict[str, Any]], vectors: np.ndarray
    ) -> list[list[tuple[str, float]]]:
        """k nearest READY photos for each new photo, including the others of this batch."""
        k = self.config.neighbours_k
        hits = await self.vectors.search(collection, vectors, limit=k + len(docs))
        batch_ids = [str(d["_id"]) for d in docs]
        batch_sims = vectors @ vectors.T
        result: list[list[tuple[str, float]]] = []
        for i, own_hits in enumerate(hits):
            found = {h.id: h.similarity for h in own_hits if h.id != batch_ids[i]}
            for j, other in enumerate(batch_ids):
                if j != i:
                    found[other] = max(found.get(other, -1.0), float(batch_sims[i, j]))
            ranked = sorted(found.items(), key=lambda kv: kv[1], reverse=True)[:k]
            result.append(ranked)
        return result

    async def _decide(
        self, doc: dict[str, Any], analysis: PhotoAnalysis, near: list[tuple[str, float]], collection: str
    ) -> _Decision:
        """Everything the photo will become, computed before anything is written."""
        neighbour_ids = [parse_object_id(i) for i, _ in near]
        neighbour_docs = {d["_id"]: d for d in await self.photos.get_many([i for i in neighbour_ids if i]) if d}
        known = [(oid, sim) for oid, (_, sim) in zip(neighbour_ids, near, strict=True) if oid in neighbour_docs]
        votes_from = [(sim, neighbour_docs[oid].get("tags", [])) for oid, sim in known]
        categories_from = [(sim, neighbour_docs[oid]["category"]) for oid, sim in known
                           if neighbour_docs[oid].get("category")]
        suggestions, category, category_score = self.analyzer.suggest(
            analysis, votes_from, categories_from, limit=self.config.suggestions_max
        )
        duplicate_of = self._duplicate_of(doc, known, neighbour_docs)
        quality = analysis.quality
        fields: dict[str, Any] = {
            "status": READY, "category": category, "category_score": category_score,
            "suggestions": [{"tag": s.tag, "score": round(s.score, 4), "source": s.source} for s in suggestions],
            "quality": {"score": quality.score, "aesthetic": quality.aesthetic, "sharpness": quality.sharpness,
                        "exposure": quality.exposure, "noise": quality.noise, "resolution": quality.resolution},
            "neighbours": [{"id": oid, "similarity": round(sim, 5)} for oid, sim in known],
            "duplicate_of": duplicate_of, "vector_collection": collection,
            "rating": self.initial_rating(quality.score), "rating_version": 0,
        }
        row = {"id": str(doc["_id"]), "vector": analysis.vector, "category": category, "owner": doc["owner"],
               "status": READY}
        offers = [(oid, sim) for oid, sim in known if self._improves(neighbour_docs[oid], doc["_id"], sim)]
        return _Decision(fields=fields, row=row, offers=offers, suggestions=len(suggestions))

    def _improves(self, neighbour: Mapping[str, Any], photo_id: ObjectId, similarity: float) -> bool:
        """Whether the new photo belongs in this neighbour's kept list (most lists are full and closer)."""
        entries = [e for e in neighbour.get("neighbours", []) if e["id"] != photo_id]
        return len(entries) < self.config.neighbours_k or similarity > min(e["similarity"] for e in entries)

    async def _commit(self, doc: dict[str, Any], decision: _Decision) -> dict[str, Any] | None:
        photo_id = doc["_id"]
        updated = await self.photos.collection.find_one_and_update(
            {"_id": photo_id, "status": PROCESSING},
            {"$set": {**decision.fields, "ready_at": now(), "updated_at": now()}},
            return_document=True,
        )
        if updated is None:
            return None  # another worker finished it first
        await self._offer_to_neighbours(photo_id, decision.offers)
        record, created = await announce_suggestions_ready(self.outbox, updated, decision.suggestions)
        if created and self.on_announced is not None:
            await self.on_announced(record)
        fields = decision.fields
        log.info("photo.ready", photo=str(photo_id), category=fields["category"], suggestions=decision.suggestions,
                 quality=round(fields["quality"]["score"], 3), neighbours=len(fields["neighbours"]),
                 duplicate_of=str(fields["duplicate_of"]) if fields["duplicate_of"] else None)
        return updated

    def _duplicate_of(
        self, doc: dict[str, Any], known: list[tuple[ObjectId, float]], neighbour_docs: Mapping[ObjectId, Any]
    ) -> ObjectId | None:
        """The earliest photo this one nearly copies; the first upload stays the original."""
        candidates = [
            neighbour_docs[oid] for oid, sim in known
            if sim >= self.config.near_duplicate_cosine
            and (neighbour_docs[oid]["created_at"], oid) < (doc["created_at"], doc["_id"])
        ]
        if not candidates:
            return None
        first = min(candidates, key=lambda d: (d["created_at"], d["_id"]))
        return first.get("duplicate_of") or first["_id"]

    async def _offer_to_neighbours(self, photo_id: ObjectId, offers: list[tuple[ObjectId, float]]) -> None:
        """Insert the new photo into its neighbours' lists, kept sorted and capped, in one round trip."""
        if not offers:
            return
        k = self.config.neighbours_k
        operations: list[UpdateOne] = []
        for oid, sim in offers:
            operations.append(UpdateOne({"_id": oid}, {"$pull": {"neighbours": {"id": photo_id}}}))
            operations.append(UpdateOne(
                {"_id": oid},
                {"$push": {"neighbours": {"$each": [{"id": photo_id, "similarity": round(sim, 5)}],
                                          "$sort": {"similarity": -1}, "$slice": k}}},
            ))
        await self.photos.collection.bulk_write(operations, ordered=True)

    async def on_parked(self, job: Job, error: str) -> None:
        oid = parse_object_id(str(job.payload.get("photo_id", "")))
        if oid is None:
            return
        await self.photos.collection.update_one(
            {"_id": oid, "status": PROCESSING},
            {"$set": {"status": FAILED, "failure": {"reason": error[:500], "at": now()}, "updated_at": now()}},
        )
        log.error("photo.failed", photo=str(oid), reason=error)
