"""The admins' moderation decisions (`moderation_decisions`), appended and never changed.

Document: _id, photo, owner (the photo's), decision (APPROVE | REJECT), by (the admin's uid), at, note,
previous {status, state, source, reasons, round} (the photo as the admin decided on it). An erased
account's uid (owner or admin) is replaced by its random id (`anonymise`).

The photo carries its latest decision in the same write that applies it (`storage.photo_moderation`),
so a crash before this record is written loses history, never the decision itself or who made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId

from storage.base import Doc, Repository


class ModerationDecisionRepository(Repository):
    collection_name = "moderation_decisions"

    async def record(self, *, photo: ObjectId, owner: str, decision: str, by: str, at: datetime,
                     note: str | None, previous: Mapping[str, Any]) -> Doc:
        doc: Doc = {"photo": photo, "owner": owner, "decision": decision, "by": by, "at": at, "note": note,
                    "previous": dict(previous)}
        await self.collection.insert_one(doc)
        return doc

    async def for_photo(self, photo: ObjectId, *, limit: int = 100) -> list[Doc]:
        """A photo's decisions, newest first (index `photo_at`)."""
        return await self.find({"photo": photo}, sort=[("at", -1), ("_id", -1)], limit=limit)

    async def for_photos(self, photos: Sequence[ObjectId], *, limit: int = 100) -> dict[ObjectId, list[Doc]]:
        """Several photos' decisions in one read (index `photo_at`): each photo's newest first, at most
        `limit` each, as `for_photo` gives them; photos without any are absent."""
        if not photos:
            return {}
        cursor = self.collection.find({"photo": {"$in": list(set(photos))}})
        found: dict[ObjectId, list[Doc]] = {}
        async for doc in cursor.sort([("photo", 1), ("at", -1), ("_id", -1)]):
            kept = found.setdefault(doc["photo"], [])
            if len(kept) < limit:
                kept.append(doc)
        return found

    async def anonymise(self, uid: str, anonymous: str) -> int:
        """An erased account's uid, as the photo's owner or as the admin who decided, takes the random id its
        votes got: the history of decisions stays, the uid goes. Scans (no index on either field): erasures
        are rare, and an index would cost every decision's write for their sake. How many records changed."""
        owned = await self.collection.update_many({"owner": uid}, {"$set": {"owner": anonymous}})
        decided = await self.collection.update_many({"by": uid}, {"$set": {"by": anonymous}})
        return owned.modified_count + decided.modified_count
