"""Parameters the rating update is run with, one document per parameter set (`rating_params`).

Today one document, ``_id: "celebrity_offset"`` (see :mod:`gaming.duels.celebrity_offset`): offset,
relevant_votes and fitted_on (of the last fit), fitted_at, and the incremental vote count that decides
when to fit again, counted_seq (the last rating batch counted) and relevant_votes_seen. The similarity
groups' chores keep their positions here too: ``"group_ranks"`` (the rating batch the listing follows,
`gaming.duels.group_ranks`) and ``"group_backfill"`` (`ml.pipelines.grouping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import Repository


class RatingParamsRepository(Repository):
    collection_name = "rating_params"

    async def advance_count(self, doc_id: str, *, counted_seq: int | None, seq: int, seen: int, create: bool) -> bool:
        """Record a count up to batch `seq`, unless another process recorded one since `counted_seq` was
        read (the write is conditional on it): several workers then neither double-count nor lose one.
        `create` when the document did not exist at that read."""
        try:
            result = await self.collection.update_one(
                {"_id": doc_id, "counted_seq": counted_seq},
                {"$set": {"counted_seq": seq, "relevant_votes_seen": seen}}, upsert=create)
        except DuplicateKeyError:  # another process created the document first
            return False
        return bool(result.modified_count or result.upserted_id is not None)

    async def save(self, doc_id: str, fields: Mapping[str, Any]) -> None:
        await self.collection.update_one({"_id": doc_id}, {"$set": dict(fields)}, upsert=True)
