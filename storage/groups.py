"""The groups collection: one document per similarity group (the photos of one subject).

Document: ``_id`` (an ObjectId of its own, so ids order groups by age and never name a photo too:
`node(id:)` tells a group from a photo by its id), ``founder`` (the photo whose ingest founded it,
unique: a retried founding finds its own document), created_at, ``changes`` (counts membership
changes, and changes of what a member shows: hidden, approved, deleted, recategorised) and ``stale``
(set with each change, cleared by the summary that saw the latest one),
``merged_into`` (set once, when the group merged into an older one: it then has no members and its id
leads to the group that took them), and the summary that lists and ranks it: size (READY members),
category and rank (its best photo's, the conservative skill) and leader (the best photo's id),
summarised_at.

Who writes what: membership (``changes``, ``stale``, ``merged_into``, the provisional summary of a new
group) is written by `storage.group_membership`; the summary by `gaming.duels.group_ranks`, each
write conditional on ``changes`` being what it read, so a summary never hides a membership change it
did not see. A request that changes what a member shows (moderation, deletion, a new category) has
`group_ranks` mark the group changed (`touch`) and summarise it at once (`write_summaries`). Members
are listed on the photos (`storage.photo_groups`), not here: a group's document is not rewritten per
member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from storage.base import Doc, Repository
from storage.clock import utcnow
from storage.pagination import Page, SortKey, read_page

# Best group first: its best photo's conservative skill, then the newest id.
RANKED = SortKey((("rank", -1), ("_id", -1)))
SUMMARY_FIELDS = ("size", "category", "rank", "leader")
# Links followed from a merged group to the one that took its members; a chain is as long as the merges
# that happened one after another, and a longer one means a cycle that cannot be (ids only decrease).
MAX_HOPS = 64


class GroupRepository(Repository):
    collection_name = "groups"

    async def found(self, founder: ObjectId, summary: Mapping[str, Any]) -> ObjectId:
        """The group `founder`'s ingest founds, with a provisional summary (listed at once); stale, so the
        next summary pass corrects it. A retried founding gets the group it founded before (index
        `founder_unique`)."""
        for _ in range(2):  # the second try only when the first's group was dropped in between
            group_id = ObjectId()
            try:
                await self.collection.insert_one({"_id": group_id, "founder": founder, "created_at": utcnow(),
                                                  "changes": 0, "stale": True, **summary})
            except DuplicateKeyError:
                doc = await self.collection.find_one({"founder": founder}, {"_id": 1})
                if doc is None:
                    continue
                existing: ObjectId = doc["_id"]
                return existing
            return group_id
        raise RuntimeError(f"photo {founder}: its group was founded and dropped twice at once")

    async def drop_unused(self, group_id: ObjectId) -> None:
        """A group founded for a photo that another group claimed first: nothing ever joined it."""
        await self.collection.delete_one({"_id": group_id, "changes": 0, "merged_into": {"$exists": False}})

    async def root(self, group_id: ObjectId) -> ObjectId:
        """The group that holds `group_id`'s members now: itself, or where its merges led."""
        current = group_id
        for _ in range(MAX_HOPS):
            doc = await self.collection.find_one({"_id": current}, {"merged_into": 1})
            into = doc.get("merged_into") if doc is not None else None
            if into is None:
                return current
            current = into
        raise RuntimeError(f"group {group_id}: merge links longer than {MAX_HOPS}")

    async def roots(self, group_ids: Sequence[ObjectId]) -> dict[ObjectId, ObjectId]:
        """Each group's `root`, the links of all of them followed together: one read per hop."""
        found = {g: g for g in group_ids}
        pending = set(found)
        for _ in range(MAX_HOPS):
            cursor = self.collection.find({"_id": {"$in": list({found[g] for g in pending})}}, {"merged_into": 1})
            into = {d["_id"]: d["merged_into"] async for d in cursor if d.get("merged_into") is not None}
            pending = {g for g in pending if found[g] in into}
            if not pending:
                return found
            found.update({g: into[found[g]] for g in pending})
        raise RuntimeError(f"groups {sorted(map(str, pending))}: merge links longer than {MAX_HOPS}")

    async def merged_into(self, group_id: ObjectId) -> ObjectId | None:
        doc = await self.collection.find_one({"_id": group_id}, {"merged_into": 1})
        return doc.get("merged_into") if doc is not None else None

    async def mark_merged(self, loser: ObjectId, target: ObjectId) -> bool:
        """Record that `loser` merges into `target` (an older group), unless it merged already: the
        compare-and-set that lets one of two merges racing on a group win. It leaves the listings."""
        if target >= loser:
            raise ValueError(f"a group merges into an older one: {loser} into {target}")
        try:
            result = await self.collection.update_one(
                {"_id": loser, "merged_into": {"$exists": False}},
                {"$set": {"merged_into": target, "size": 0, "updated_at": utcnow()},
                 "$unset": {"rank": "", "category": "", "leader": "", "stale": "", "summarised_at": ""},
                 "$inc": {"changes": 1}},
                upsert=True)
        except DuplicateKeyError:  # it exists and merged already: the upsert found no match
            return False
        return bool(result.modified_count or result.upserted_id is not None)

    async def touch(self, group_id: ObjectId) -> None:
        """A membership change, or a change of what a member shows: the summary is stale until a pass (or the
        request's own refresh) sees this change."""
        await self.collection.update_one({"_id": group_id}, {"$inc": {"changes": 1}, "$set": {"stale": True}},
                                         upsert=True)

    async def touch_many(self, group_ids: Sequence[ObjectId]) -> None:
        """`touch` for several groups in one round trip (each upserted, as `touch` does)."""
        ops = [UpdateOne({"_id": g}, {"$inc": {"changes": 1}, "$set": {"stale": True}}, upsert=True)
               for g in dict.fromkeys(group_ids)]
        if ops:
            await self.collection.bulk_write(ops, ordered=False)

    async def stale(self, *, limit: int) -> list[ObjectId]:
        """Groups whose membership changed since their summary (index `stale`)."""
        cursor = self.collection.find({"stale": True}, {"_id": 1}).limit(limit)
        return [d["_id"] async for d in cursor]

    async def least_recently_summarised(self, *, limit: int) -> list[ObjectId]:
        """Live groups whose summary is oldest (index `summarised`: a merged group has none)."""
        cursor = self.collection.find({"summarised_at": {"$exists": True}}, {"_id": 1}).sort("summarised_at", 1)
        return [d["_id"] async for d in cursor.limit(limit)]

    async def changes(self, group_ids: Sequence[ObjectId]) -> dict[ObjectId, int]:
        """Each live (not merged) group's change count: what its summary write is conditional on."""
        cursor = self.collection.find({"_id": {"$in": list(set(group_ids))}, "merged_into": {"$exists": False}},
                                      {"changes": 1})
        return {d["_id"]: int(d.get("changes", 0)) async for d in cursor}

    async def write_summaries(self, summaries: Mapping[ObjectId, tuple[int, Doc | None]]) -> int:
        """Each group's summary (None: no READY member, so it leaves the listings), written only while
        its change count is the one read before its members were: a change since leaves it stale."""
        if not summaries:
            return 0
        stamp = utcnow()
        ops = []
        for group_id, (changes, summary) in summaries.items():
            update: Doc = {"$set": {"summarised_at": stamp}, "$unset": {"stale": ""}}
            if summary is None:
                update["$set"]["size"] = 0
                update["$unset"].update({"rank": "", "category": "", "leader": ""})
            else:
                update["$set"].update({name: summary[name] for name in SUMMARY_FIELDS})
            ops.append(UpdateOne({"_id": group_id, "changes": changes, "merged_into": {"$exists": False}}, update))
        return (await self.collection.bulk_write(ops, ordered=False)).modified_count

    async def ranked_page(self, category: str | None, *, first: int, after: str | None) -> Page:
        """Listed groups, best first (indexes `category_rank`, `rank`); raises InvalidCursor."""
        query: Doc = {"rank": {"$exists": True}}
        if category is not None:
            query["category"] = category
        return await read_page(self.collection, query, RANKED, first=first, after=after)
