"""A small generic repository: one per collection, documents in and out as dicts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]


def journaled(collection: AsyncCollection[Doc]) -> AsyncCollection[Doc]:
    """The collection with write concern `j: true`: a write is acknowledged once the server's journal
    holds it, so a crash of the database right after the acknowledgement does not lose it."""
    return collection.with_options(write_concern=WriteConcern(**{**collection.write_concern.document, "j": True}))


def parse_object_id(value: str) -> ObjectId | None:
    """A public id as an ObjectId, or None when it cannot be one (so callers answer NOT_FOUND)."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


class Repository:
    collection_name: str

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection: AsyncCollection[Doc] = db[self.collection_name]

    async def get(self, doc_id: Any) -> Doc | None:
        return await self.collection.find_one({"_id": doc_id})

    async def get_many(self, ids: Sequence[Any]) -> list[Doc | None]:
        """Documents in the order of `ids` (None where missing): what a DataLoader batch needs."""
        found = {d["_id"]: d async for d in self.collection.find({"_id": {"$in": list(set(ids))}})}
        return [found.get(i) for i in ids]

    async def find(self, query: Doc, *, sort: Iterable[tuple[str, int]] = (), limit: int = 0) -> list[Doc]:
        cursor = self.collection.find(query)
        sort = list(sort)
        if sort:
            cursor = cursor.sort(sort)
        if limit:
            cursor = cursor.limit(limit)
        return await cursor.to_list(None)
