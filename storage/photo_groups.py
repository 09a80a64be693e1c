"""The photos' similarity-group field `group_id`: the reads and writes of it, a part of
`storage.photos.PhotoRepository` (a base class of it, so the collection keeps its one repository while
the group rules read in one file).

`group_id` names the photo's group in `groups` (`storage.groups`); it is indexed with the rating
(`group_rank`), so a group's members, best first, are one indexed read. Only the membership protocol
of `storage.group_membership` writes it, and only three ways, each a single-document (or same-group)
conditional write: set once on a photo that has none (a claim: compare-and-set on its absence), moved
from a group that merged into another, and removed when the photo leaves (deletion).

A photo may be in a group while READY, PROCESSING (claimed by a neighbour's ingest before its own) or
HIDDEN (held back by moderation, and back in its group when approved); public reads count READY ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from storage.base import Doc
from storage.pagination import Page, SortKey, read_page

# The statuses of `storage.photos` in which a photo holds a place in a group (that module imports this
# one, so the names are spelled here).
IN_GROUP = ("READY", "PROCESSING", "HIDDEN")
PUBLIC = "READY"


class PhotoGroupFields:
    """`group_id` on photo documents; mixed into `PhotoRepository`, which provides `collection`."""

    collection: AsyncCollection[Doc]

    async def group_links(self, ids: Sequence[ObjectId]) -> dict[ObjectId, ObjectId | None]:
        """The group of each photo among `ids` that can be in one (None: not grouped yet), in one read;
        photos that cannot (FAILED, DELETED, unknown) are absent."""
        cursor = self.collection.find({"_id": {"$in": list(set(ids))}, "status": {"$in": list(IN_GROUP)}},
                                      {"group_id": 1})
        return {d["_id"]: d.get("group_id") async for d in cursor}

    async def claim_group(self, photo_id: ObjectId, group_id: ObjectId) -> tuple[ObjectId | None, bool]:
        """Put a photo without a group into `group_id` (compare-and-set on the absence of one). Returns
        the photo's group afterwards and whether this call set it; (None, False) when the photo cannot be
        in a group."""
        claimed = await self.collection.find_one_and_update(
            {"_id": photo_id, "group_id": {"$exists": False}, "status": {"$in": list(IN_GROUP)}},
            {"$set": {"group_id": group_id}}, projection={"group_id": 1}, return_document=ReturnDocument.AFTER)
        if claimed is not None:
            return group_id, True
        doc = await self.collection.find_one({"_id": photo_id}, {"group_id": 1, "status": 1})
        if doc is None or doc["status"] not in IN_GROUP:
            return None, False
        return doc.get("group_id"), False

    async def move_group(self, source: ObjectId, target: ObjectId) -> int:
        """Every member of `source` into `target` (a merge); how many moved. Repeating it moves nothing."""
        result = await self.collection.update_many({"group_id": source}, {"$set": {"group_id": target}})
        return result.modified_count

    async def leave_group(self, photo_id: ObjectId) -> ObjectId | None:
        """Take the photo out of its group; the group it was in (None: it was in none)."""
        before = await self.collection.find_one_and_update(
            {"_id": photo_id, "group_id": {"$exists": True}}, {"$unset": {"group_id": ""}},
            projection={"group_id": 1}, return_document=ReturnDocument.BEFORE)
        return before.get("group_id") if before is not None else None

    async def leave_groups(self, photo_ids: Sequence[ObjectId]) -> dict[ObjectId, ObjectId]:
        """Take these photos out of their groups in one read and one write; the group each was in (those in
        none are absent). Meant for tombstones, which nothing claims into a group again: a merge moving one
        meanwhile is the only race, and the group read then merged into the one it moved to."""
        if not photo_ids:
            return {}
        cursor = self.collection.find({"_id": {"$in": list(set(photo_ids))}, "group_id": {"$exists": True}},
                                      {"group_id": 1})
        left = {d["_id"]: d["group_id"] async for d in cursor}
        if left:
            await self.collection.update_many({"_id": {"$in": list(left)}, "group_id": {"$exists": True}},
                                              {"$unset": {"group_id": ""}})
        return left

    async def ungrouped_after(self, after: ObjectId | None, *, limit: int,
                              fields: Sequence[str]) -> tuple[list[Doc], ObjectId | None]:
        """Up to `limit` READY photos after `after` in id order (the `_id` index): those among them
        without a group (only `fields`), and the last id read, None once past the last photo."""
        query: Doc = {"status": PUBLIC}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self.collection.find(query, dict.fromkeys([*fields, "group_id"], 1)).sort("_id", 1).limit(limit)
        docs = await cursor.to_list(None)
        last = docs[-1]["_id"] if len(docs) == limit else None
        return [d for d in docs if d.get("group_id") is None], last

    async def rated_groups(self, ids: Sequence[ObjectId]) -> dict[ObjectId, tuple[ObjectId | None, int]]:
        """Each photo's group and the rating batch that wrote its rating last (0: none), in one read."""
        cursor = self.collection.find({"_id": {"$in": list(set(ids))}}, {"group_id": 1, "rating_seq": 1})
        return {d["_id"]: (d.get("group_id"), int(d.get("rating_seq") or 0)) async for d in cursor}

    async def group_member_count(self, group_id: ObjectId) -> int:
        """Photos holding a place in the group (what its maximum size counts)."""
        return await self.collection.count_documents({"group_id": group_id, "status": {"$in": list(IN_GROUP)}})

    async def group_members(self, group_ids: Sequence[ObjectId], fields: Sequence[str]) -> list[Doc]:
        """The READY members of these groups (only `fields` and `group_id`), in one read."""
        cursor = self.collection.find({"group_id": {"$in": list(set(group_ids))}, "status": PUBLIC},
                                      dict.fromkeys([*fields, "group_id"], 1))
        return await cursor.to_list(None)

    async def group_page(self, group_id: ObjectId, sort: SortKey, *, first: int, after: str | None,
                         excluding_owners: Sequence[str] = ()) -> Page:
        """A page of the group's READY members in `sort` order, none of `excluding_owners` (index
        `group_rank`); raises InvalidCursor."""
        query: Doc = {"group_id": group_id, "status": PUBLIC}
        if excluding_owners:
            query["owner"] = {"$nin": list(excluding_owners)}
        return await read_page(self.collection, query, sort, first=first, after=after)

    async def group_tops(self, query: Mapping[str, object], group_ids: Sequence[ObjectId]) -> dict[ObjectId, ObjectId]:
        """For each of these groups, its first photo matching `query` in best-first order (highest
        conservative skill, then highest id: `storage.photos.BEST`): what "one photo per group" keeps."""
        cursor = self.collection.find({**query, "group_id": {"$in": list(set(group_ids))}},
                                      {"group_id": 1, "rating.conservative": 1})
        best: dict[ObjectId, tuple[float, ObjectId]] = {}
        async for doc in cursor:
            key = (float(doc["rating"]["conservative"]), doc["_id"])
            if doc["group_id"] not in best or key > best[doc["group_id"]]:
                best[doc["group_id"]] = key
        return {group: photo_id for group, (_, photo_id) in best.items()}


def group_of(doc: Mapping[str, object]) -> ObjectId | None:
    """The group a photo document names (None: not grouped)."""
    group = doc.get("group_id")
    return group if isinstance(group, ObjectId) else None
