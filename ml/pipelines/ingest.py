"""The ingest job, batched for the model: embed -> index -> neighbours -> tags -> quality -> READY -> announce.

Why batched: the forward pass is the cost, and several photos per pass is what makes the pipeline
keep up with the bare model (bench/ingest.py measures the ratio). Why neighbours here: milvus-lite
searches cost 90-400 ms at 100k vectors, so each photo's nearest neighbours are found once, now, and
kept on the photo (and the new photo is offered to its neighbours' lists); duels and similarPhotos
read those lists and never wait for a vector search.

Idempotent by construction: the PROCESSING -> READY write is conditional, the Milvus write is an
upsert, the neighbour offers replace their entries, and what follows READY (the announcement, the
face-check job) is keyed, so a photo found READY already only gets those again, as no-ops or to
finish what a crash interrupted. A worker killed mid-batch therefore costs a repeat of the batch's
compute, never a photo processed twice or an announcement lost.

Per batch, not per photo: one read of the photo documents, one of all their neighbours, one of the
collection's lists still short of k (a young collection's first photos), one Milvus search, upsert and
flush, one bulk write of offers and one of READY writes. On the 2-core reference box the database
shares the cores with the model, so every round trip saved is forward-pass time.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from bson import ObjectId
from PIL import Image
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from ml.pipelines.analysis import PhotoAnalysis, PhotoAnalyzer
from ml.pipelines.display_image import load_analysis_images, original_size
from ml.pipelines.models import ModelRegistry
from ml.pipelines.upload import INGEST
from notifications.outbox import Outbox, announce_suggestions_ready
from storage.base import parse_object_id
from storage.blobs import BlobNotFound, BlobStore
from storage.jobs import Defer, Done, Job, Outcome, Retry
from storage.mongo import long_work
from storage.photos import FAILED, PROCESSING, READY, PhotoRepository, now
from storage.vectors import ScalarField, VectorIndex, collection_name

log = structlog.get_logger(__name__)

PHOTO_SCALARS = (ScalarField("category", 64), ScalarField("owner", 128), ScalarField("status", 16))
NEIGHBOUR_LISTS = "neighbour_lists"  # the ingest_params document recording the k the short flags are for
SHORT_LISTS_READ = 256  # at most this many short lists offered to per batch (a young collection has <= k)

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


def short_flag_stage(k: int) -> dict[str, Any]:
    """Pipeline stage after a list write: whether the kept list is still short of k (see
    :meth:`IngestHandler._offers_to_short_lists`)."""
    return {"$set": {"neighbours_short": {"$lt": [{"$size": {"$ifNull": ["$neighbours", []]}}, k]}}}


async def flag_short_lists(db: AsyncDatabase[dict[str, Any]], k: int) -> int:
    """Make ``neighbours_short`` right for the k in force, at process start; returns how many changed.

    Two cases leave it wrong: READY photos made before the flag existed have none (a short list among
    them would never be found, so never filled), and a change of k (lists full under the old k are short
    under a larger one). The k the flags were set for is kept in ``ingest_params``; while it is unchanged
    only photos without a flag are read (none, once done), after a change every READY photo is.
    """
    params = db["ingest_params"]
    flagged_for = await params.find_one({"_id": NEIGHBOUR_LISTS})
    query: dict[str, Any] = {"status": READY}
    if flagged_for is not None and flagged_for.get("k") == k:
        query["neighbours_short"] = {"$exists": False}
    with long_work():  # at start, over every READY photo the first time
        result = await db["photos"].update_many(query, [short_flag_stage(k)])
    await params.update_one({"_id": NEIGHBOUR_LISTS}, {"$set": {"k": k}}, upsert=True)
    if result.modified_count:
        log.info("ingest.short_flags_set", photos=result.modified_count, k=k,
                 previous_k=flagged_for.get("k") if flagged_for else None)
    return result.modified_count


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
        pending: list[tuple[Job, dict[str, Any]]] = []
        finished: list[dict[str, Any]] = []
        for job, doc in zip(jobs, await self._read_photos(jobs), strict=True):
            if doc is None or doc["status"] != PROCESSING:
                results[job.id] = Done({"skipped": "gone" if doc is None else doc["status"]})
                if doc is not None and doc["status"] == READY:
                    finished.append(doc)
            else:
                pending.append((job, doc))
        if finished:  # READY already: a retry after a crash between the READY write and what follows it
            await self._after_ready(finished, [len(d.get("suggestions", [])) for d in finished])
        work: list[tuple[Job, dict[str, Any], Image.Image]] = []
        for (job, doc), image in zip(pending, await load_analysis_images(self.blobs, [d for _, d in pending]),
                                     strict=True):
            if isinstance(image, BlobNotFound | OSError):
                results[job.id] = Retry(f"image unreadable: {image}")
            elif isinstance(image, Exception):
                raise image
            else:
                work.append((job, doc, image))
        if not work:
            return results
        for step in self.before_batch:
            await step()

        docs = [doc for _, doc, _ in work]
        analyses = await self.analyzer.analyze([image for _, _, image in work], [original_size(d) for d in docs])
        embedder = self.models.embedder()
        collection = photo_collection(embedder.model_id, embedder.dim)
        await self.vectors.ensure_collection(collection, embedder.dim, PHOTO_SCALARS)

        vectors = np.stack([a.vector for a in analyses])
        # Into the index before the search, as PROCESSING: of two batches in flight at once (two loops,
        # or two workers) the one that searches second then sees the other's photos and offers itself
        # to them. Searching first would let both miss each other for good.
        await self.vectors.upsert(collection, [
            {"id": str(doc["_id"]), "vector": analysis.vector, "owner": doc["owner"], "status": PROCESSING,
             "category": max(analysis.category_scores, key=analysis.category_scores.__getitem__, default="")}
            for doc, analysis in zip(docs, analyses, strict=True)
        ])
        reached = await self._neighbours(collection, docs, vectors)
        neighbour_docs = await self._neighbour_docs(reached)
        short_offers = await self._offers_to_short_lists(collection, docs, vectors, reached)
        decisions = [self._decide(doc, analysis, near, neighbour_docs, collection, extra_offers)
                     for doc, analysis, near, extra_offers in zip(docs, analyses, reached, short_offers, strict=True)]
        # The final row (READY, the chosen category); one upsert and flush per batch, as above: a flush
        # per photo would cost more than the model.
        await self.vectors.upsert(collection, [d.row for d in decisions])
        # Offers before the READY writes: they are idempotent, so a crash in between repeats them, where
        # the other order would lose them (a READY photo is skipped on retry). Readers of the lists only
        # show READY photos, so an offered photo that is not READY yet stays invisible.
        await self._offer_to_neighbours([(doc["_id"], d.offers) for doc, d in zip(docs, decisions, strict=True)])
        mine, failed = await self._mark_ready(docs, decisions)
        ready_docs: list[dict[str, Any]] = []
        counts: list[int] = []
        for (job, doc, _), decision in zip(work, decisions, strict=True):
            if doc["_id"] in failed:
                results[job.id] = Retry(failed[doc["_id"]])
                continue
            results[job.id] = Done({"photo": str(doc["_id"])})
            if doc["_id"] in mine:  # not when another worker finished it first
                ready_docs.append({**doc, **decision.fields})
                counts.append(decision.suggestions)
                self._log_ready(doc["_id"], decision)
        await self._after_ready(ready_docs, counts)
        return results

    async def _read_photos(self, jobs: Sequence[Job]) -> list[dict[str, Any] | None]:
        """The batch's photo documents in one read, in job order (None for a bad or unknown id)."""
        ids = [parse_object_id(str(job.payload.get("photo_id", ""))) for job in jobs]
        found = await self.photos.get_many([oid for oid in ids if oid is not None])
        by_id = {d["_id"]: d for d in found if d is not None}
        return [by_id.get(oid) if oid is not None else None for oid in ids]

    async def _neighbour_docs(self, neighbours: Sequence[Sequence[tuple[str, float]]]) -> dict[ObjectId, Any]:
        """Every neighbour of the batch in one read: at scale the lists barely overlap, in a young
        catalogue they overlap a lot, and either way it is one round trip instead of one per photo."""
        ids = {oid for near in neighbours for i, _ in near if (oid := parse_object_id(i)) is not None}
        # READY photos and photos still being processed (which will be READY); not FAILED ones.
        return {d["_id"]: d for d in await self.photos.get_many(sorted(ids))
                if d is not None and d["status"] in (READY, PROCESSING)}

    async def _neighbours(
        self, collection: str, docs: list[dict[str, Any]], vectors: np.ndarray
    ) -> list[list[tuple[str, float]]]:
        """The nearest photos each new photo's search reached (k + batch size of them, nearest first; its
        kept list is the first k): READY ones, those of this batch and those of batches in flight
        elsewhere (already in the index, as PROCESSING). Offers go to all of them, not only the first k:
        a photo may belong in the list of one that is not in its own."""
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
            result.append(sorted(found.items(), key=lambda kv: kv[1], reverse=True))
        return result

    async def _offers_to_short_lists(
        self, collection: str, docs: list[dict[str, Any]], vectors: np.ndarray, reached: list[list[tuple[str, float]]]
    ) -> list[list[tuple[ObjectId, float]]]:
        """Offers to READY photos whose kept list is still short of k, beyond what each search reached.

        A photo ingested while its collection held fewer than k others keeps a short list; a later photo
        outside its search's reach would never be offered to it, and the list would stay short for good
        (found by tests/test_neighbour_lists.py under concurrent batches). Such photos carry
        ``neighbours_short`` (indexed; only the first few of a collection ever do), so each batch reads
        them and their vectors and offers itself to every one: any photo belongs in a list short of k.
        """
        batch = {d["_id"] for d in docs}
        short = [d for d in await self.photos.collection.find(
            {"neighbours_short": True, "vector_collection": collection, "status": READY},
            {"_id": 1, "neighbours": 1},
        ).limit(SHORT_LISTS_READ).to_list(None) if d["_id"] not in batch]
        if not short:
            return [[] for _ in docs]
        stored = await self.vectors.get_vectors(collection, [str(d["_id"]) for d in short])
        offers: list[list[tuple[ObjectId, float]]] = []
        for i, doc in enumerate(docs):
            seen = {oid for pid, _ in reached[i] if (oid := parse_object_id(pid)) is not None}
            offers.append([
                (d["_id"], similarity) for d in short
                if d["_id"] not in seen and (vector := stored.get(str(d["_id"]))) is not None
                and self._improves(d, doc["_id"], similarity := float(np.dot(vectors[i], vector)))
            ])
        return offers

    def _decide(
        self, doc: dict[str, Any], analysis: PhotoAnalysis, reached: list[tuple[str, float]],
        neighbour_docs: Mapping[ObjectId, Any], collection: str, extra_offers: list[tuple[ObjectId, float]],
    ) -> _Decision:
        """Everything the photo will become, computed before anything is written."""
        usable = [(oid, sim) for i, sim in reached if (oid := parse_object_id(i)) in neighbour_docs]
        known = usable[: self.config.neighbours_k]
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
            "rating": self.initial_rating(quality.score), "ready_at": now(),
        }
        row = {"id": str(doc["_id"]), "vector": analysis.vector, "category": category, "owner": doc["owner"],
               "status": READY}
        offers = [(oid, sim) for oid, sim in usable if self._improves(neighbour_docs[oid], doc["_id"], sim)]
        return _Decision(fields=fields, row=row, offers=[*offers, *extra_offers], suggestions=len(suggestions))

    def _improves(self, neighbour: Mapping[str, Any], photo_id: ObjectId, similarity: float) -> bool:
        """Whether the new photo belongs in this neighbour's kept list (most lists are full and closer)."""
        entries = [e for e in neighbour.get("neighbours", []) if e["id"] != photo_id]
        return len(entries) < self.config.neighbours_k or similarity > min(e["similarity"] for e in entries)

    async def _mark_ready(
        self, docs: Sequence[dict[str, Any]], decisions: Sequence[_Decision]
    ) -> tuple[set[ObjectId], dict[ObjectId, str]]:
        """The batch's PROCESSING -> READY writes in one round trip: (photos this batch made READY,
        photos whose write failed with the reason).

        Each write is conditional on PROCESSING, so a photo another worker finished first is left alone;
        when not every write matched, the batch's `ingest_token` tells which ones were ours. Each is a
        pipeline update, so the kept list merges with offers that arrived while the photo was processed
        (a concurrent batch that saw it in Milvus) instead of overwriting them.
        """
        token = secrets.token_hex(8)
        stamp = now()
        operations = []
        for doc, decision in zip(docs, decisions, strict=True):
            fields = {**decision.fields, "ready_at": stamp, "updated_at": stamp, "ingest_token": token}
            kept = fields.pop("neighbours")
            operations.append(UpdateOne(
                {"_id": doc["_id"], "status": PROCESSING},
                [{"$set": {**{key: {"$literal": value} for key, value in fields.items()},
                           "neighbours": self._merged_list(kept)}}, self._short_flag()],
            ))
        ids = [doc["_id"] for doc in docs]
        failed: dict[ObjectId, str] = {}
        try:
            result = await self.photos.collection.bulk_write(operations, ordered=False)
            matched = result.matched_count
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                failed[ids[error["index"]]] = f"READY write failed: {error.get('errmsg', error)}"
            matched = -1
            log.error("ingest.ready_write_failed", photos=[str(i) for i in failed], errors=list(failed.values()))
        if matched == len(ids):
            return set(ids), failed
        mine = {d["_id"] async for d in self.photos.collection.find({"_id": {"$in": ids}, "ingest_token": token},
                                                                     {"_id": 1})}
        return mine, failed

    async def _after_ready(self, ready: Sequence[dict[str, Any]], suggestion_counts: Sequence[int]) -> None:
        """Announce and hand on: idempotent (the announcement has a key, follow-up jobs are keyed), so a
        retried batch may run it again for photos it finds READY already."""
        for doc, count in zip(ready, suggestion_counts, strict=True):
            record, created = await announce_suggestions_ready(self.outbox, doc, count)
            if created and self.on_announced is not None:
                await self.on_announced(record)
        if ready:
            for step in self.after_ready:
                await step(list(ready))

    @staticmethod
    def _log_ready(photo_id: ObjectId, decision: _Decision) -> None:
        fields = decision.fields
        log.info("photo.ready", photo=str(photo_id), category=fields["category"], suggestions=decision.suggestions,
                 quality=round(fields["quality"]["score"], 3), neighbours=len(fields["neighbours"]),
                 duplicate_of=str(fields["duplicate_of"]) if fields["duplicate_of"] else None)

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

    async def _offer_to_neighbours(self, offers: Sequence[tuple[ObjectId, Sequence[tuple[ObjectId, float]]]]) -> None:
        """Insert the batch's new photos into their neighbours' kept lists: one update per neighbour, all
        in one round trip.

        Each update removes any earlier entries of these photos (a retried batch), appends the new ones
        and keeps the k most similar, sorted, in one atomic pipeline update (``$sortArray``: MongoDB 5.2+).
        """
        batch = {photo_id for photo_id, _ in offers}
        by_neighbour: dict[ObjectId, list[dict[str, Any]]] = {}
        for photo_id, photo_offers in offers:
            for neighbour_id, similarity in photo_offers:
                if neighbour_id in batch:
                    continue  # its own READY write sets its list, which holds this photo already
                by_neighbour.setdefault(neighbour_id, []).append({"id": photo_id, "similarity": round(similarity, 5)})
        if not by_neighbour:
            return
        operations = [UpdateOne({"_id": neighbour_id},
                                [{"$set": {"neighbours": self._merged_list(entries)}}, self._short_flag()])
                      for neighbour_id, entries in by_neighbour.items()]
        await self.photos.collection.bulk_write(operations, ordered=False)

    def _merged_list(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Aggregation expression: the stored kept list without ``entries``' photos, plus ``entries``,
        the k most similar first."""
        ids = [e["id"] for e in entries]
        return {"$slice": [{"$sortArray": {
            "input": {"$concatArrays": [
                {"$filter": {"input": {"$ifNull": ["$neighbours", []]},
                             "cond": {"$not": [{"$in": ["$$this.id", ids]}]}}},
                {"$literal": list(entries)},
            ]},
            "sortBy": {"similarity": -1},
        }}, self.config.neighbours_k]}

    def _short_flag(self) -> dict[str, Any]:
        return short_flag_stage(self.config.neighbours_k)

    async def on_parked(self, job: Job, error: str) -> None:
        oid = parse_object_id(str(job.payload.get("photo_id", "")))
        if oid is None:
            return
        await self.photos.collection.update_one(
            {"_id": oid, "status": PROCESSING},
            {"$set": {"status": FAILED, "failure": {"reason": error[:500], "at": now()}, "updated_at": now()}},
        )
        if self.models.ready:  # a row the failed batch may have left (it goes into the index before the search)
            embedder = self.models.embedder()
            await self.vectors.delete(photo_collection(embedder.model_id, embedder.dim), [str(oid)])
        log.error("photo.failed", photo=str(oid), reason=error)
