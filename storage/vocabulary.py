"""Tags admins added to the vocabulary, on top of the shipped default list."""

from __future__ import annotations

from collections.abc import Sequence

from storage.base import Repository
from storage.clock import utcnow


class VocabularyRepository(Repository):
    collection_name = "vocabulary"

    async def add_tags(self, tags: Sequence[str], *, added_by: str) -> None:
        now = utcnow()
        for tag in tags:
            await self.collection.update_one(
                {"_id": tag}, {"$setOnInsert": {"added_by": added_by, "created_at": now}}, upsert=True
            )

    async def extra_tags(self) -> list[str]:
        return [doc["_id"] async for doc in self.collection.find({}, {"_id": 1}).sort("_id", 1)]
