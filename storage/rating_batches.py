"""The rating projector's record of what it applied: one document per batch of votes, written once.

Document: ``_id`` (the batch's sequence number, 1, 2, ...: unique, so two projectors that both believe
they hold the lease cannot both write batch N, the second gets DuplicateKeyError and stops), written_at,
horizon (every vote created before it is applied by this batch or an earlier one), max_created_at
(of this batch's votes), adjustment (the celebrity discount parameters the batch was rated with),
entries (in application order: vote, left, right, choice, left_celebrity, right_celebrity, and the
two resulting ratings; or vote and ``gone`` when a photo no longer exists), and ratings (the final
rating fields of every photo the batch touched, written here *before* the photos, so a projector
that dies between the two writes is repeated from this record with the same result). An entry also
keeps its vote's weight (`gaming.vote_weights`) and what it was computed from (player, anonymous,
history). A rebase record (`ratings rebuild`) has no entries and a ``rebase`` field (at, weighting,
excluded voters): every vote in an earlier batch is weighed by it instead of by its recorded weight.

The log order of the votes is this collection's order: batch by batch, entry by entry. Records are never
changed but for an account's erasure, which replaces its uid by the random id its votes got
(`anonymise_player`): a replay reads the same weights from them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bson import ObjectId

from storage.base import Doc, Repository, journaled
from storage.mongo import long_work


class RatingBatchRepository(Repository):
    collection_name = "rating_batches"

    async def insert(self, batch: Doc) -> None:
        """Raises DuplicateKeyError when this sequence number was written already (by another holder).
        Journaled: the projector goes on from it (a write lost in a crash would leave a gap it trusts)."""
        await journaled(self.collection).insert_one(batch)

    async def last(self) -> Doc | None:
        return await self.collection.find_one({}, sort=[("_id", -1)])

    async def newest_applied_at(self) -> datetime | None:
        """The creation time of the newest vote the last batch applied (None before the first batch)."""
        last = await self.collection.find_one({}, {"max_created_at": 1}, sort=[("_id", -1)])
        return last.get("max_created_at") if last else None

    async def after(self, seq: int, *, limit: int = 100, fields: dict[str, Any] | None = None) -> list[Doc]:
        """Batches after `seq`, in order: what every process follows to keep its view of ratings."""
        cursor = self.collection.find({"_id": {"$gt": seq}}, fields).sort("_id", 1).limit(limit)
        return await cursor.to_list(None)

    async def applied_since(self, since: datetime) -> dict[ObjectId, datetime]:
        """The votes created at or after `since` that a batch applied, with their creation times."""
        cursor = self.collection.find({"max_created_at": {"$gte": since}}, {"entries.vote": 1, "entries.created_at": 1})
        return {e["vote"]: e["created_at"] async for b in cursor for e in b.get("entries", [])
                if e["created_at"] >= since}

    async def last_rebase(self) -> Doc | None:
        """The newest rebase record (`ratings rebuild` re-weighed every vote before it; see the projector)."""
        return await self.collection.find_one({"rebase": {"$exists": True}}, {"rebase": 1}, sort=[("_id", -1)])

    async def entry_for(self, vote_id: ObjectId) -> Doc | None:
        """The applied entry of one vote (with its resulting ratings), or None if not applied yet."""
        batch = await self.collection.find_one({"entries.vote": vote_id}, {"entries": 1})
        if batch is None:
            return None
        return next((e for e in batch["entries"] if e["vote"] == vote_id), None)

    async def in_order(self, fields: dict[str, Any] | None = None) -> AsyncIterator[Doc]:
        # a few batch records per round trip: a cursor's deadline is per round trip, and they are large
        async for batch in self.collection.find({}, fields, batch_size=16).sort("_id", 1):
            yield batch

    async def anonymise_player(self, player: str, anonymous: str) -> int:
        """An erased account's uid in entries and in rebase decisions becomes `anonymous` (the random id its
        votes got, so a rebuild weighs them as before); batches changed. Scans, under the long deadline:
        erasures are rare and the collection has no index on players."""
        with long_work():
            entries = await self.collection.update_many(
                {"entries.player": player}, {"$set": {"entries.$[mine].player": anonymous}},
                array_filters=[{"mine.player": player}])
            rebases = await self.collection.update_many(
                {"rebase.excluded.player": player},
                [{"$set": {"rebase.excluded": {"$map": {"input": "$rebase.excluded", "in": {"$cond": [
                    {"$eq": ["$$this.player", {"$literal": player}]},
                    {"$mergeObjects": ["$$this", {"player": {"$literal": anonymous}}]}, "$$this"]}}}}}])
        return entries.modified_count + rebases.modified_count

