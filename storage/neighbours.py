"""The kept neighbour lists on photo documents: how a list merges offers and knows it is short of k.

Each READY photo keeps its k nearest photos, ``neighbours: [{id, similarity}]``, most similar first, so
duels and similarPhotos never wait for a vector search. A list changes in two ways, both as pipeline
updates the server applies atomically: the photo's own READY write, and offers from later photos. Both
merge rather than overwrite, because a concurrent batch may offer a photo to a list while it is still
being processed. ``neighbours_short`` (indexed) says a list holds fewer than k entries: later batches
offer themselves to such lists even when their search never reached them, or a collection's first
photos would keep short lists for good.

The expressions here are executed by `storage.photos.PhotoRepository`, the collection's one owner; the
k the short flags were computed for is recorded by `NeighbourListParams`, so a process start can tell
whether the flags need recomputing (`PhotoRepository.flag_short_lists`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId

from storage.base import Doc, Repository

Offer = tuple[ObjectId, float]  # (photo id, cosine similarity)
PARAMS_ID = "neighbour_lists"  # the ingest_params document recording the k the short flags are for


def entry(photo_id: ObjectId, similarity: float) -> Doc:
    """One list entry as stored (similarities rounded: they are compared, never computed with)."""
    return {"id": photo_id, "similarity": round(similarity, 5)}


def merged_list(entries: Sequence[Mapping[str, Any]], k: int) -> Doc:
    """Aggregation expression: the stored list without ``entries``' photos, plus ``entries``, the k most
    similar first. Removing them first makes a repeated offer (a retried batch) replace, not duplicate.
    ``$sortArray`` needs MongoDB 5.2+."""
    ids = [e["id"] for e in entries]
    return {"$slice": [{"$sortArray": {
        "input": {"$concatArrays": [
            {"$filter": {"input": {"$ifNull": ["$neighbours", []]},
                         "cond": {"$not": [{"$in": ["$$this.id", ids]}]}}},
            {"$literal": list(entries)},
        ]},
        "sortBy": {"similarity": -1},
    }}, k]}


def short_flag_stage(k: int) -> Doc:
    """Pipeline stage after a list write: whether the kept list is still short of k."""
    return {"$set": {"neighbours_short": {"$lt": [{"$size": {"$ifNull": ["$neighbours", []]}}, k]}}}


def list_update(entries: Sequence[Mapping[str, Any]], k: int) -> list[Doc]:
    """The pipeline that offers ``entries`` to one photo's list."""
    return [{"$set": {"neighbours": merged_list(entries, k)}}, short_flag_stage(k)]


def list_without(ids: Sequence[ObjectId], k: int) -> list[Doc]:
    """The pipeline that takes deleted photos out of one photo's list; the list is then short of k, and
    refills as any short list does (later batches offer themselves to it)."""
    return [{"$set": {"neighbours": {"$filter": {"input": {"$ifNull": ["$neighbours", []]},
                                                 "cond": {"$not": [{"$in": ["$$this.id", list(ids)]}]}}}}},
            short_flag_stage(k)]


def improves(neighbour: Mapping[str, Any], photo_id: ObjectId, similarity: float, k: int) -> bool:
    """Whether a photo belongs in this neighbour's kept list (most lists are full and closer)."""
    entries = [e for e in neighbour.get("neighbours", []) if e["id"] != photo_id]
    return len(entries) < k or similarity > min(e["similarity"] for e in entries)


def by_neighbour(offers: Sequence[tuple[ObjectId, Sequence[Offer]]]) -> dict[ObjectId, list[Doc]]:
    """A batch's offers (photo -> neighbours it belongs to) grouped per receiving list. Offers between
    photos of the batch are left out: each one's READY write sets its own list, which holds the other."""
    batch = {photo_id for photo_id, _ in offers}
    grouped: dict[ObjectId, list[Doc]] = {}
    for photo_id, photo_offers in offers:
        for neighbour_id, similarity in photo_offers:
            if neighbour_id not in batch:
                grouped.setdefault(neighbour_id, []).append(entry(photo_id, similarity))
    return grouped


class NeighbourListParams(Repository):
    """The ``ingest_params`` collection: the k the photos' short flags were last computed for."""

    collection_name = "ingest_params"

    async def flagged_for(self) -> int | None:
        doc = await self.get(PARAMS_ID)
        return int(doc["k"]) if doc is not None and "k" in doc else None

    async def record(self, k: int) -> None:
        await self.collection.update_one({"_id": PARAMS_ID}, {"$set": {"k": k}}, upsert=True)
