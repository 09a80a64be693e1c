"""Reports of photos by players (`photo_reports`): one per photo and reporter.

Document: _id, photo, owner (the photo's), reporter, reason, text, round (the photo's moderation round
when it was made: `storage.photo_moderation`), counted (whether it counts towards hiding the photo:
reports from anonymous accounts are kept but not counted), created_at.

The unique index `(photo, reporter)` makes a repeat a no-op whoever races it, and counting distinct
reporters a plain count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from storage.base import Doc, Repository
from storage.clock import utcnow


class PhotoReportRepository(Repository):
    collection_name = "photo_reports"

    async def add(self, *, photo: ObjectId, owner: str, reporter: str, reason: str, text: str | None, round: int,
                  counted: bool) -> bool:
        """Record the report; False when this reporter had reported the photo already (nothing changes)."""
        doc: Doc = {"photo": photo, "owner": owner, "reporter": reporter, "reason": reason, "text": text,
                    "round": round, "counted": counted, "created_at": utcnow()}
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def tallies(self, rounds: Sequence[tuple[ObjectId, int]]) -> dict[ObjectId, list[tuple[str, int]]]:
        """Per photo, (reason, reporters) for its round's counted reports, the most given first: an admin
        queue page's counts in one round trip."""
        if not rounds:
            return {}
        cursor = await self.collection.aggregate([
            {"$match": {"photo": {"$in": [photo for photo, _ in rounds]}, "counted": True}},
            {"$group": {"_id": {"photo": "$photo", "round": "$round", "reason": "$reason"}, "n": {"$sum": 1}}},
        ])
        wanted = set(rounds)
        found: dict[ObjectId, list[tuple[str, int]]] = {}
        async for row in cursor:
            key: dict[str, Any] = row["_id"]
            if (key["photo"], key["round"]) in wanted:
                found.setdefault(key["photo"], []).append((key["reason"], int(row["n"])))
        return {photo: sorted(rows, key=lambda r: (-r[1], r[0])) for photo, rows in found.items()}

    async def notes(self, rounds: Sequence[tuple[ObjectId, int]], *, per_photo: int) -> dict[ObjectId, list[str]]:
        """Per photo, the texts its round's reports came with (counted or not), newest first, at most
        `per_photo` each: what an admin reads beside the counts. One bounded read per photo (index
        `photo_round`), all at once."""
        async def texts(photo: ObjectId, round: int) -> list[str]:
            cursor = self.collection.find({"photo": photo, "round": round, "text": {"$type": "string"}}, {"text": 1})
            return [row["text"] async for row in cursor.sort([("created_at", -1), ("_id", -1)]).limit(per_photo)]

        found = await asyncio.gather(*(texts(photo, round) for photo, round in rounds))
        return {photo: notes for (photo, _), notes in zip(rounds, found, strict=True) if notes}

    async def delete_for_photos(self, photos: Sequence[ObjectId]) -> int:
        """Deleted photos' reports, in one write (safe to repeat); how many went."""
        if not photos:
            return 0
        return (await self.collection.delete_many({"photo": {"$in": list(photos)}})).deleted_count

    async def forget(self, uid: str) -> int:
        """An erased account's reports (index `reporter`); those about its photos go with each photo's
        deletion (`delete_for_photos`). What its reports hid stays hidden until an admin decides. Safe to
        repeat; how many went."""
        return (await self.collection.delete_many({"reporter": uid})).deleted_count
