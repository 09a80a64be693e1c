"""Player progress (`player_progress`): one document per player, `_id` = the player's uid.

Document: zone (the player's IANA time zone; absent: UTC), votes, streak, longest_streak, last_day (the
local day of the latest vote, "YYYY-MM-DD"), day_votes (votes on last_day), seq (the last rating batch
counted in), badges {badge: earned_at}, updated_at.

One writer per field, no transaction: the progress projector (`gaming.duels.progress_projector`) writes the
counters and the vote badges, always conditional on the `seq` and `zone` it read (a compare-and-set, so
a second projector that lost its lease unawares, or a zone changed in between, makes it read again
rather than count twice or with a stale zone); the player writes `zone`; the featured chore sets
`badges.PHOTO_FEATURED` once. Dotted `$set`s of different badges never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from storage.base import Doc, Repository
from storage.clock import utcnow

# Two first writes of a new player's document race on `_id`: the loser retries as an update.
UPSERT_TRIES = 3


class PlayerProgressRepository(Repository):
    collection_name = "player_progress"

    async def set_zone(self, player: str, zone: str) -> Doc:
        """Store the player's time zone (validated by the caller); the document after the change."""
        for _ in range(UPSERT_TRIES):
            try:
                doc = await self.collection.find_one_and_update(
                    {"_id": player}, {"$set": {"zone": zone}}, upsert=True, return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                continue
            if doc is not None:
                return doc
        doc = await self.get(player)
        if doc is None:  # pragma: no cover - three lost races and then deleted
            raise RuntimeError(f"the progress of {player} could not be written")
        return doc

    async def apply(self, player: str, *, seq_was: int | None, zone_was: str | None, fields: Mapping[str, Any],
                    badges: Mapping[str, datetime], create: bool) -> bool:
        """Write the counters (and newly earned vote badges) computed from the document as read with
        `seq_was` and `zone_was`; False when it changed since (read it again). `create`: there was no
        document at that read (a player forgotten since is not brought back)."""
        update = {"$set": {**fields, **{f"badges.{b}": at for b, at in badges.items()}, "updated_at": utcnow()}}
        try:
            result = await self.collection.update_one({"_id": player, "seq": seq_was, "zone": zone_was}, update,
                                                      upsert=create)
        except DuplicateKeyError:  # created by someone else (a zone, a badge) since the read
            return False
        return bool(result.modified_count or result.upserted_id is not None)

    async def award(self, player: str, badge: str, at: datetime) -> bool:
        """Record a badge earned outside the vote count (a featured photo); False when it was held already."""
        for _ in range(UPSERT_TRIES):
            try:
                result = await self.collection.update_one(
                    {"_id": player, f"badges.{badge}": {"$exists": False}},
                    {"$set": {f"badges.{badge}": at, "updated_at": utcnow()}}, upsert=True)
            except DuplicateKeyError:  # held already (the filter missed an existing document), or a race
                if await self.collection.count_documents({"_id": player, f"badges.{badge}": {"$exists": True}},
                                                         limit=1):
                    return False
                continue
            return bool(result.modified_count or result.upserted_id is not None)
        return False  # pragma: no cover - three lost races on a new document

    async def forget(self, player: str) -> bool:
        """Erase the player's progress (account erasure); True if there was any."""
        return bool((await self.collection.delete_one({"_id": player})).deleted_count)
