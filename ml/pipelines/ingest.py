"""The ingest job, batched for the model: decode -> analyse -> index -> neighbours -> group -> READY -> announce.

Why batched: the forward pass is the cost, and several photos per pass is what makes the pipeline
keep up with the bare model (bench/ingest.py measures the ratio). Per batch, not per photo: one read of
the photo documents, one neighbour search (`ml.pipelines.photo_vectors`), one vector upsert and flush,
one bulk write of offers to neighbours' lists and one of READY writes. On the 2-core reference box the
database shares the cores with the model, so every round trip saved is forward-pass time.

Content screening (`ml.screening`, scored in the same model pass) decides the status written: a photo
whose score reaches a label's threshold is written HIDDEN pending review instead of READY, with its
`moderation` sub-document, and its owner is told why instead of being sent the tag suggestions. It
keeps everything else (vectors, suggestions, rating prior), so an approval makes it READY as it is.

Idempotent by construction: the PROCESSING -> READY write is conditional, the vector write is an
upsert, the neighbour offers replace their entries, and what follows READY (the announcement, the
face-check job) is keyed, so a photo found READY already only gets those again, as no-ops or to
finish what a crash interrupted. A worker killed mid-batch therefore costs a repeat of the batch's
compute, never a photo processed twice or an announcement lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from bson import ObjectId
from PIL import Image

from ml.pipelines.analysis import PhotoAnalysis, PhotoAnalyzer
from ml.pipelines.display_image import load_analysis_images, original_size
from ml.pipelines.models import ModelRegistry
from ml.pipelines.photo_vectors import PHOTO_SCALARS, Neighbourhood, NeighbourSearch, photo_collection
from ml.screening import crossed
from notifications.moderation import announce_held
from notifications.outbox import Outbox, announce_suggestions_ready
from storage.base import Doc, parse_object_id
from storage.blobs import BlobNotFound, BlobStore
from storage.clock import utcnow
from storage.job_kinds import INGEST
from storage.jobs import Defer, Done, Job, Outcome, Retry
from storage.neighbours import by_neighbour, entry
from storage.photo_moderation import SCREENING, hidden
from storage.photos import HIDDEN, PROCESSING, READY, PhotoRepository, ReadyFields, ReadyWrites
from storage.vectors import VectorIndex

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class IngestConfig:
    neighbours_k: int
    near_duplicate_cosine: float
    suggestions_max: int
    batch_size: int
    # label -> score at which screening holds a photo back (`ml.screening.crossed`); none: scores recorded only
    screening_thresholds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Work:
    job: Job
    doc: Doc
    image: Image.Image


@dataclass(frozen=True)
class _Decision:
    fields: ReadyFields
    row: dict[str, Any]  # the photo's final row in the vector index
    offers: list[tuple[ObjectId, float]]
    suggestions: int


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
        grouping: Callable[[Sequence[Doc]], Awaitable[None]] | None = None,
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
        self.search = NeighbourSearch(vectors, photos, config.neighbours_k)
        self.initial_rating = initial_rating
        self.before_batch = list(before_batch)
        self.after_ready = list(after_ready)
        self.on_announced = on_announced
        self.grouping = grouping  # `ml.pipelines.grouping`: READY photos into their similarity groups

    async def handle(self, jobs: Sequence[Job]) -> Mapping[Any, Outcome]:
        if not self.models.ready:
            reason = self.models.status().reason or "model loading"
            return {job.id: Defer(delay=5.0, reason=f"model not ready: {reason}") for job in jobs}
        results, pending = await self._sort_out(jobs)
        work = await self._decode(pending, results)
        if work:
            for step in self.before_batch:
                await step()
            results.update(await self._process(work))
        return results

    async def _sort_out(self, jobs: Sequence[Job]) -> tuple[dict[Any, Outcome], list[tuple[Job, Doc]]]:
        """Jobs whose photo is still PROCESSING, and the outcomes of the others. A photo READY already
        is a retry after a crash between the READY write and what follows it: that is done again."""
        results: dict[Any, Outcome] = {}
        pending: list[tuple[Job, Doc]] = []
        finished: list[Doc] = []
        for job, doc in zip(jobs, await self._read_photos(jobs), strict=True):
            if doc is not None and doc["status"] == PROCESSING:
                pending.append((job, doc))
                continue
            results[job.id] = Done({"skipped": "gone" if doc is None else doc["status"]})
            if doc is not None and doc["status"] in (READY, HIDDEN):
                finished.append(doc)
        if finished:
            await self._after_ready(finished, [len(d.get("suggestions", [])) for d in finished])
        return results, pending

    async def _read_photos(self, jobs: Sequence[Job]) -> list[Doc | None]:
        """The batch's photo documents in one read, in job order (None for a bad or unknown id)."""
        ids = [parse_object_id(str(job.payload.get("photo_id", ""))) for job in jobs]
        found = await self.photos.get_many([oid for oid in ids if oid is not None])
        by_id = {d["_id"]: d for d in found if d is not None}
        return [by_id.get(oid) if oid is not None else None for oid in ids]

    async def _decode(self, pending: Sequence[tuple[Job, Doc]], results: dict[Any, Outcome]) -> list[_Work]:
        """The analysis images; a photo whose image cannot be read is retried later."""
        work: list[_Work] = []
        images = await load_analysis_images(self.blobs, [doc for _, doc in pending])
        for (job, doc), image in zip(pending, images, strict=True):
            if isinstance(image, BlobNotFound | OSError):
                results[job.id] = Retry(f"image unreadable: {image}")
            elif isinstance(image, Exception):
                raise image
            else:
                work.append(_Work(job, doc, image))
        return work

    async def _process(self, work: Sequence[_Work]) -> dict[Any, Outcome]:
        docs = [w.doc for w in work]
        analyses = await self.analyzer.analyze([w.image for w in work], [original_size(d) for d in docs])
        collection = await self._collection()
        # Into the index before the search, as PROCESSING: of two batches in flight at once (two loops,
        # or two workers) the one that searches second then sees the other's photos and offers itself
        # to them. Searching first would let both miss each other for good.
        await self.vectors.upsert(collection, [self._row(doc, a, _best(a.category_scores), PROCESSING)
                                               for doc, a in zip(docs, analyses, strict=True)])
        hoods = await self.search.find(collection, docs, np.stack([a.vector for a in analyses]))
        decisions = [self._decide(doc, analysis, hood, collection)
                     for doc, analysis, hood in zip(docs, analyses, hoods, strict=True)]
        # One upsert and flush per batch, as above: a flush per photo would cost more than the model.
        await self.vectors.upsert(collection, [d.row for d in decisions])
        # Offers before the READY writes: they are idempotent, so a crash in between repeats them, where
        # the other order would lose them (a READY photo is skipped on retry). Readers of the lists only
        # show READY photos, so an offered photo that is not READY yet stays invisible.
        await self.photos.offer_neighbours(
            by_neighbour([(doc["_id"], d.offers) for doc, d in zip(docs, decisions, strict=True)]),
            self.config.neighbours_k)
        if self.grouping is not None:  # before READY, so a READY photo is always in its group (idempotent)
            await self.grouping([{**doc, **d.fields.doc(utcnow())} for doc, d in zip(docs, decisions, strict=True)])
        written = await self.photos.mark_ready([(doc["_id"], d.fields) for doc, d in zip(docs, decisions, strict=True)],
                                               self.config.neighbours_k)
        return await self._settle(work, decisions, written)

    async def _collection(self) -> str:
        embedder = self.models.embedder()
        collection = photo_collection(embedder.model_id, embedder.dim)
        await self.vectors.ensure_collection(collection, embedder.dim, PHOTO_SCALARS)
        return collection

    async def _settle(self, work: Sequence[_Work], decisions: Sequence[_Decision],
                      written: ReadyWrites) -> dict[Any, Outcome]:
        """Each job's outcome; the photos this batch made READY are announced and handed on."""
        if written.failed:
            log.error("ingest.ready_write_failed", photos=[str(i) for i in written.failed],
                      errors=list(written.failed.values()))
        results: dict[Any, Outcome] = {}
        ready_docs: list[Doc] = []
        counts: list[int] = []
        for w, decision in zip(work, decisions, strict=True):
            photo_id = w.doc["_id"]
            if photo_id in written.failed:
                results[w.job.id] = Retry(written.failed[photo_id])
                continue
            results[w.job.id] = Done({"photo": str(photo_id)})
            if photo_id in written.mine:  # not when another worker finished it first
                ready_docs.append({**w.doc, **decision.fields.doc(written.at)})
                counts.append(decision.suggestions)
                self._log_ready(photo_id, decision)
        await self._after_ready(ready_docs, counts)
        return results

    def _decide(self, doc: Doc, analysis: PhotoAnalysis, hood: Neighbourhood, collection: str) -> _Decision:
        """Everything the photo will become, computed before anything is written."""
        # a neighbour held back by moderation is kept in the list, but lends nothing to suggestions
        voters = [(d, sim) for d, sim in hood.kept if d["status"] != HIDDEN]
        votes_from = [(sim, d.get("tags", [])) for d, sim in voters]
        categories_from = [(sim, d["category"]) for d, sim in voters if d.get("category")]
        suggestions, category, category_score = self.analyzer.suggest(
            analysis, votes_from, categories_from, limit=self.config.suggestions_max
        )
        quality = analysis.quality
        fields = ReadyFields(
            category=category, category_score=category_score,
            suggestions=[{"tag": s.tag, "score": round(s.score, 4), "source": s.source} for s in suggestions],
            quality={"score": quality.score, "aesthetic": quality.aesthetic, "sharpness": quality.sharpness,
                     "exposure": quality.exposure, "noise": quality.noise, "resolution": quality.resolution},
            neighbours=[entry(d["_id"], sim) for d, sim in hood.kept],
            duplicate_of=self._duplicate_of(doc, hood.kept), vector_collection=collection,
            rating=self.initial_rating(quality.score), **self._screened(analysis),
        )
        status = READY if fields.moderation is None else HIDDEN
        return _Decision(fields=fields, row=self._row(doc, analysis, category, status), offers=hood.offers,
                         suggestions=len(suggestions))

    def _screened(self, analysis: PhotoAnalysis) -> dict[str, Any]:
        """The screening's scores, and the moderation sub-document when a label reached its threshold."""
        if analysis.screening_model is None:
            return {}
        screening = {"model": analysis.screening_model, "scores": analysis.screening}
        flagged = crossed(analysis.screening, self.config.screening_thresholds)
        if not flagged:
            return {"screening": screening}
        return {"screening": screening, "moderation": hidden(
            SCREENING, flagged, round=0, at=utcnow(), scores={label: analysis.screening[label] for label in flagged})}

    @staticmethod
    def _row(doc: Doc, analysis: PhotoAnalysis, category: str, status: str) -> dict[str, Any]:
        return {"id": str(doc["_id"]), "vector": analysis.vector, "category": category, "owner": doc["owner"],
                "status": status}

    def _duplicate_of(self, doc: Doc, kept: Sequence[tuple[Doc, float]]) -> ObjectId | None:
        """The earliest photo this one nearly copies; the first upload stays the original."""
        candidates = [d for d, sim in kept if sim >= self.config.near_duplicate_cosine
                      and (d["created_at"], d["_id"]) < (doc["created_at"], doc["_id"])]
        if not candidates:
            return None
        first = min(candidates, key=lambda d: (d["created_at"], d["_id"]))
        original: ObjectId = first.get("duplicate_of") or first["_id"]
        return original

    async def _after_ready(self, ready: Sequence[Doc], suggestion_counts: Sequence[int]) -> None:
        """Announce and hand on: idempotent (the announcement has a key, follow-up jobs are keyed), so a
        retried batch may run it again for photos it finds READY already."""
        for doc, count in zip(ready, suggestion_counts, strict=True):
            record, created = await self._announce(doc, count)
            if created and self.on_announced is not None:
                await self.on_announced(record)
        if ready:
            for step in self.after_ready:
                await step(list(ready))

    async def _announce(self, doc: Doc, count: int) -> tuple[dict[str, Any], bool]:
        """The tag suggestions; for a photo screening held back, why it is hidden instead."""
        moderation = doc.get("moderation") or {}
        if doc["status"] == HIDDEN and moderation.get("source") == SCREENING and moderation.get("round", 0) == 0:
            return await announce_held(self.outbox, doc, source=SCREENING, reasons=moderation.get("reasons", []),
                                       round=0)
        return await announce_suggestions_ready(self.outbox, doc, count)

    @staticmethod
    def _log_ready(photo_id: ObjectId, decision: _Decision) -> None:
        fields = decision.fields
        if fields.moderation is not None:
            log.info("photo.held_for_review", photo=str(photo_id), reasons=fields.moderation["reasons"],
                     scores=fields.moderation.get("scores"))
        log.info("photo.ready", photo=str(photo_id), category=fields.category, suggestions=decision.suggestions,
                 quality=round(fields.quality["score"], 3), neighbours=len(fields.neighbours),
                 duplicate_of=str(fields.duplicate_of) if fields.duplicate_of else None)

    async def on_parked(self, job: Job, error: str) -> None:
        oid = parse_object_id(str(job.payload.get("photo_id", "")))
        if oid is None:
            return
        await self.photos.mark_failed(oid, error)
        if self.models.ready:  # a row the failed batch may have left (it goes into the index before the search)
            embedder = self.models.embedder()
            await self.vectors.delete(photo_collection(embedder.model_id, embedder.dim), [str(oid)])
        log.error("photo.failed", photo=str(oid), reason=error)


def _best(scores: Mapping[str, float]) -> str:
    """The provisional category of the PROCESSING row: the highest zero-shot score."""
    return max(scores, key=scores.__getitem__, default="")
