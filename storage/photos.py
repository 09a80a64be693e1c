"""The photos collection: one document per photo, the source of truth for everything but vectors.

Document shape (fields appear as the pipeline fills them):
  _id, owner, title, sha256, status (PROCESSING | READY | FAILED), failure {reason, at},
  format, mime, width, height, bytes, blobs {raw, original, display, thumbnail} (GridFS ids),
  renditions {variant: {width, height, etag}}, created_at, updated_at,
  category, category_score, tags [accepted], rejected_tags, suggestions [{tag, score, source}],
  quality {score, aesthetic, sharpness, exposure, noise, resolution},
  neighbours [{id, similarity}] (nearest READY photos, found once at ingest), duplicate_of,
  vector_collection, ready_at, rating {mu, sigma, conservative, score, votes, wins, losses, draws},
  rating_seq (the rating batch that wrote `rating` last), faces_count, celebrity {people [...]}.

`rating` is written by ingest (the prior, at READY) and afterwards only by the rating projector
(`write_ratings`), one writer per field, so no transaction is needed around it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from storage.base import Doc, Repository, journaled
from storage.pagination import SortKey, after_filter, decode_cursor, encode_cursor

PROCESSING, READY, FAILED = "PROCESSING", "READY", "FAILED"
# Documents per round trip for whole-collection reads: each round trip has its own deadline.
SCAN_BATCH = 5000

NEWEST = SortKey((("created_at", -1), ("_id", -1)))
OLDEST = SortKey((("created_at", 1), ("_id", 1)))
BEST = SortKey((("rating.conservative", -1), ("_id", -1)))


@dataclass(frozen=True)
class Page:
    docs: list[Doc]
    cursors: list[str]
    has_next: bool


def now() -> datetime:
    return datetime.now(UTC)


class PhotoRepository(Repository):
    collection_name = "photos"

    async def create_or_get(self, doc: Doc) -> tuple[Doc, bool]:
        """Insert a new photo, or return the one this owner already uploaded with the same bytes."""
        try:
            await self.collection.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            existing = await self.collection.find_one({"owner": doc["owner"], "sha256": doc["sha256"]})
            if existing is None:  # pragma: no cover - deleted in between
                raise
            return existing, False

    async def find_by_owner_sha(self, owner: str, sha256: str) -> Doc | None:
        return await self.collection.find_one({"owner": owner, "sha256": sha256})

    async def update(self, photo_id: ObjectId, fields: Mapping[str, Any], *, unset: Sequence[str] = ()) -> Doc | None:
        update: dict[str, Any] = {"$set": {**fields, "updated_at": now()}}
        if unset:
            update["$unset"] = {name: "" for name in unset}
        return await self.collection.find_one_and_update(
            {"_id": photo_id}, update, return_document=ReturnDocument.AFTER
        )

    async def page(
        self, query: Doc, sort: SortKey, *, first: int, after: str | None
    ) -> Page:
        """One Relay page: `first` rows strictly after the cursor, plus whether more follow."""
        if after:
            query = {"$and": [query, after_filter(decode_cursor(after, sort), sort)]}
        docs = await self.collection.find(query).sort(list(sort.fields)).limit(first + 1).to_list(None)
        has_next = len(docs) > first
        docs = docs[:first]
        return Page(docs=docs, cursors=[encode_cursor(d, sort) for d in docs], has_next=has_next)


    async def rating_inputs(self, ids: Sequence[ObjectId]) -> dict[ObjectId, Doc]:
        """What the rating projector needs of a batch's photos: rating, celebrity flags, prior."""
        cursor = self.collection.find({"_id": {"$in": list(set(ids))}},
                                      {"rating": 1, "rating_seq": 1, "celebrity": 1, "quality": 1})
        return {d["_id"]: d async for d in cursor}

    async def write_ratings(self, seq: int, ratings: Mapping[ObjectId, Doc]) -> int:
        """The projector's write of batch `seq`: each photo's rating, unless batch `seq` or a later
        one wrote it already (a repeat after a crash changes nothing). One round trip."""
        if not ratings:
            return 0
        # `$not: {$gte}` also matches a photo without rating_seq; an `$or` would make the embedded server
        # scan the collection for every update (150 ms at 20,000 photos against 0.5 ms)
        ops = [UpdateOne({"_id": pid, "rating_seq": {"$not": {"$gte": seq}}},
                         {"$set": {"rating": fields, "rating_seq": seq}}) for pid, fields in ratings.items()]
        # journaled: the next batch is computed from these ratings, so a crash must not roll them back
        result = await journaled(self.collection).bulk_write(ops, ordered=False)
        return result.modified_count

    async def priors(self) -> dict[ObjectId, float | None]:
        """Every rated photo's model quality score: where a replay of the vote log starts."""
        cursor = self.collection.find({"rating": {"$exists": True}}, {"quality.score": 1}, batch_size=SCAN_BATCH)
        return {d["_id"]: (d.get("quality") or {}).get("score") async for d in cursor}

    async def stored_ratings(self) -> dict[ObjectId, Doc]:
        cursor = self.collection.find({"rating": {"$exists": True}}, {"rating": 1}, batch_size=SCAN_BATCH)
        return {d["_id"]: d["rating"] async for d in cursor}

    async def overwrite_rating(self, photo_id: ObjectId, fields: Doc, seq: int) -> bool:
        """`photoduel ratings rebuild`: the replayed rating, stamped with the last batch replayed."""
        result = await self.collection.update_one({"_id": photo_id, "rating": {"$ne": fields}},
                                                  {"$set": {"rating": fields, "rating_seq": seq}})
        return result.modified_count == 1


MAX_TAGS_PER_PHOTO = 30


class TagLimitExceeded(ValueError):
    pass


async def accept_tags(repo: PhotoRepository, photo_id: ObjectId, tags: Sequence[str]) -> Doc | None:
    """Accepted tags make the photo findable by tag and feed neighbours' suggestions."""
    doc = await repo.get(photo_id)
    if doc is None:
        return None
    merged = list(dict.fromkeys([*doc.get("tags", []), *tags]))
    if len(merged) > MAX_TAGS_PER_PHOTO:
        raise TagLimitExceeded(f"a photo has at most {MAX_TAGS_PER_PHOTO} tags")
    return await repo.collection.find_one_and_update(
        {"_id": photo_id},
        {"$addToSet": {"tags": {"$each": list(tags)}}, "$pull": {"rejected_tags": {"$in": list(tags)}},
         "$set": {"updated_at": now()}},
        return_document=ReturnDocument.AFTER,
    )


async def reject_tags(repo: PhotoRepository, photo_id: ObjectId, tags: Sequence[str]) -> Doc | None:
    return await repo.collection.find_one_and_update(
        {"_id": photo_id},
        {"$addToSet": {"rejected_tags": {"$each": list(tags)}}, "$pull": {"tags": {"$in": list(tags)}},
         "$set": {"updated_at": now()}},
        return_document=ReturnDocument.AFTER,
    )
