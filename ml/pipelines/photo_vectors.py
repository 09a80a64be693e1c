"""The photo vectors: their collection in the vector index, and a batch's neighbours found there.

Why neighbours are searched at ingest: milvus-lite searches cost 90-400 ms at 100k vectors, so each
photo's nearest neighbours are found once and kept on the photo (`storage.neighbours`), and the new
photo is offered to its neighbours' lists; duels and similarPhotos read those lists and never wait for
a vector search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from storage.base import Doc, parse_object_id
from storage.neighbours import Offer, improves
from storage.photo_moderation import PENDING
from storage.photos import HIDDEN, PROCESSING, READY, PhotoRepository
from storage.vectors import PHOTO_VECTORS, ScalarField, VectorIndex, collection_name

PHOTO_SCALARS = (ScalarField("category", 64), ScalarField("owner", 128), ScalarField("status", 16))
SHORT_LISTS_READ = 256  # at most this many short lists offered to per batch (a young collection has <= k)


def photo_collection(model_id: str, dim: int) -> str:
    """Vectors of two models are not comparable: each model has its own collection."""
    return collection_name(PHOTO_VECTORS, model_id, dim)


def listable(doc: Doc) -> bool:
    """A photo that belongs in neighbour lists: READY, on its way there, or waiting for a moderator."""
    return doc["status"] in (READY, PROCESSING) or (
        doc["status"] == HIDDEN and (doc.get("moderation") or {}).get("state") == PENDING)


@dataclass(frozen=True)
class Neighbourhood:
    """One new photo's place among the others."""

    kept: list[tuple[Doc, float]]  # its own list: the k nearest usable photos, nearest first
    offers: list[Offer]  # the lists it belongs in (photo id, similarity)


class NeighbourSearch:
    """A batch's neighbours: one vector search, one read of the photos it reached, one of the short lists."""

    def __init__(self, vectors: VectorIndex, photos: PhotoRepository, k: int) -> None:
        self.vectors = vectors
        self.photos = photos
        self.k = k

    async def find(self, collection: str, docs: Sequence[Doc], vectors: np.ndarray) -> list[Neighbourhood]:
        """Each photo's kept list and the lists it belongs in. The batch's own rows must be in the index
        already (as PROCESSING): of two batches in flight at once the one that searches second then sees
        the other's photos and offers itself to them."""
        reached = await self._reached(collection, docs, vectors)
        usable = await self._usable(reached)
        short = await self._short_list_offers(collection, docs, vectors, reached)
        hoods = []
        for doc, near, extra in zip(docs, reached, short, strict=True):
            candidates = [(usable[oid], sim) for i, sim in near if (oid := parse_object_id(i)) in usable]
            offers = [(d["_id"], sim) for d, sim in candidates if improves(d, doc["_id"], sim, self.k)]
            hoods.append(Neighbourhood(kept=candidates[: self.k], offers=[*offers, *extra]))
        return hoods

    async def _reached(
        self, collection: str, docs: Sequence[Doc], vectors: np.ndarray
    ) -> list[list[tuple[str, float]]]:
        """The nearest photos each new photo's search reached (k + batch size of them, nearest first):
        READY ones, those of this batch and those of batches in flight elsewhere. Offers go to all of
        them, not only the first k: a photo may belong in the list of one that is not in its own."""
        hits = await self.vectors.search(collection, vectors, limit=self.k + len(docs))
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

    async def _usable(self, reached: Sequence[Sequence[tuple[str, float]]]) -> dict[Any, Doc]:
        """Every photo reached, in one read: READY ones, those still processing (which will be READY) and
        those held back pending review (an approval makes them READY with their lists whole; every reader
        of a list shows READY photos only), not FAILED, rejected or deleted ones. At scale the searches
        barely overlap, in a young catalogue a lot; either way it is one round trip instead of one per
        photo."""
        ids = {oid for near in reached for i, _ in near if (oid := parse_object_id(i)) is not None}
        return {d["_id"]: d for d in await self.photos.get_many(sorted(ids)) if d is not None and listable(d)}

    async def _short_list_offers(
        self, collection: str, docs: Sequence[Doc], vectors: np.ndarray, reached: Sequence[Sequence[tuple[str, float]]]
    ) -> list[list[Offer]]:
        """Offers to READY photos whose kept list is still short of k, beyond what each search reached.

        A photo ingested while its collection held fewer than k others keeps a short list; a later photo
        outside its search's reach would never be offered to it, and the list would stay short for good.
        Such photos are flagged (only the first few of a collection ever are), so each batch reads them
        and their vectors and offers itself to every one: any photo belongs in a list short of k.
        """
        batch = {d["_id"] for d in docs}
        short = [d for d in await self.photos.short_lists(collection, limit=SHORT_LISTS_READ) if d["_id"] not in batch]
        if not short:
            return [[] for _ in docs]
        stored = await self.vectors.get_vectors(collection, [str(d["_id"]) for d in short])
        return [self._offers_to(short, stored, doc["_id"], vectors[i], reached[i]) for i, doc in enumerate(docs)]

    def _offers_to(self, short: Sequence[Doc], stored: Mapping[str, np.ndarray], photo_id: Any, vector: np.ndarray,
                   reached: Sequence[tuple[str, float]]) -> list[Offer]:
        seen = {oid for pid, _ in reached if (oid := parse_object_id(pid)) is not None}
        offers: list[Offer] = []
        for d in short:
            other = stored.get(str(d["_id"]))
            if d["_id"] in seen or other is None:
                continue
            similarity = float(np.dot(vector, other))
            if improves(d, photo_id, similarity, self.k):
                offers.append((d["_id"], similarity))
        return offers
