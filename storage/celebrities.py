"""The celebrity gallery: who is enrolled (MongoDB `celebrities`) and their face descriptors (Milvus).

Names live in MongoDB so listing and removing need no vector search; each enrolment photo's descriptor
is one Milvus row (L2 metric, the distance the recognition rules are stated in) carrying the person's
name, so a nearest-neighbour search answers "who" directly. The Milvus collection is named after the
descriptor model: descriptors of two models must never be compared.

The only code that writes either store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from storage.base import Doc, Repository
from storage.clock import utcnow
from storage.pagination import Page, SortKey, read_page
from storage.vectors import ScalarField, VectorIndex, collection_name, milvus_filter_eq

MAX_NAME = 200


@dataclass(frozen=True)
class Celebrity:
    name: str
    descriptors: int
    created_at: datetime


BY_NAME = SortKey((("_id", 1),))


def _celebrity(doc: Doc) -> Celebrity:
    return Celebrity(name=doc["_id"], descriptors=int(doc["descriptors"]), created_at=doc["created_at"])


class CelebrityGallery(Repository):
    """Enrolled people by name (`_id`), with how many descriptors each has in the vector index."""

    collection_name = "celebrities"

    def __init__(self, db: AsyncDatabase[Doc], vectors: VectorIndex, *, model_id: str, dim: int) -> None:
        super().__init__(db)
        self.vectors = vectors
        self.dim = dim
        self.vector_collection = collection_name("celebrity_faces", model_id, dim)

    async def _ready(self) -> None:
        await self.vectors.ensure_collection(self.vector_collection, self.dim, (ScalarField("name", MAX_NAME),),
                                             metric="L2")

    async def enrol(self, name: str, descriptors: Sequence[np.ndarray], *, by: str) -> Celebrity:
        """Add descriptors to a person, creating the person on the first enrolment."""
        await self._ready()
        now = utcnow()
        doc = await self.collection.find_one_and_update(
            {"_id": name},
            {"$setOnInsert": {"created_at": now, "created_by": by}, "$inc": {"descriptors": len(descriptors)},
             "$set": {"updated_at": now}},
            upsert=True, return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # an upsert returning the document after it always has one
        await self.vectors.upsert(self.vector_collection, [
            {"id": str(ObjectId()), "vector": d, "name": name} for d in descriptors
        ])
        return _celebrity(doc)

    async def remove(self, name: str) -> bool:
        result = await self.collection.delete_one({"_id": name})
        if result.deleted_count == 0:
            return False
        await self._ready()
        rows = await self.vectors.query_ids(self.vector_collection, milvus_filter_eq("name", name))
        await self.vectors.delete(self.vector_collection, rows)
        return True

    async def enrolled(self) -> list[Celebrity]:
        return [_celebrity(d) async for d in self.collection.find({}).sort("_id", 1)]

    async def page(self, *, first: int, after: str | None) -> Page:
        """A page of the gallery by name (its `_id`); raises `storage.pagination.InvalidCursor`."""
        return await read_page(self.collection, {}, BY_NAME, first=first, after=after)

    def celebrity(self, doc: Doc) -> Celebrity:
        return _celebrity(doc)

    async def names(self) -> list[str]:
        return [d["_id"] async for d in self.collection.find({}, {"_id": 1})]

    async def nearest(self, descriptors: Sequence[np.ndarray], limit: int = 3) -> list[list[tuple[str, np.ndarray]]]:
        """For each descriptor, the closest gallery entries as (name, vector): the recognition rules
        compare the vectors themselves, so the match threshold does not depend on Milvus's scoring."""
        if not descriptors or await self.collection.estimated_document_count() == 0:
            return [[] for _ in descriptors]
        await self._ready()
        hits = await self.vectors.search(self.vector_collection, np.stack(descriptors), limit=limit,
                                         output_fields=("name",), metric="L2")
        ids = {h.id for row in hits for h in row}
        stored = await self.vectors.get_vectors(self.vector_collection, sorted(ids))
        return [[(str(h.fields["name"]), stored[h.id]) for h in row if h.id in stored] for row in hits]
