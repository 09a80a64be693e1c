"""A photographer's private verdicts on their own photos of one group: the private series' log.

Document: ``_id`` (the private duel ticket's nonce: one verdict per ticket), owner, group (the group the
duel was drawn from), left, right, pair (order-free, as in `storage.votes`), choice (LEFT | RIGHT |
DRAW), created_at. Written once, by the owner's `voteSeriesDuel`, and never changed; nothing else writes
here. It is a log of its own and never the public one (`storage.votes`), so a private verdict can never
reach a public rating: the owner's ranking is computed from these documents when it is read
(`gaming.private_series`).

One index: (owner, pair), unique, so an owner judges a pair once, and the verdicts on a series are one
read by its pair keys. A deleted photo's verdicts go with it (`delete_for_photos`, a scan: rare), an
erased account's with it (`forget`).
"""

from __future__ import annotations

from collections.abc import Sequence

from bson import ObjectId

from storage.base import Doc, Repository, journaled


class SeriesVoteRepository(Repository):
    collection_name = "series_votes"

    async def insert(self, verdict: Doc) -> None:
        """Raises DuplicateKeyError when this ticket, or this owner's pair, was answered already.
        Journaled: the insert is the verdict's acknowledgement."""
        await journaled(self.collection).insert_one(verdict)

    async def for_owner_pair(self, owner: str, pair: str) -> Doc | None:
        return await self.collection.find_one({"owner": owner, "pair": pair})

    async def for_pairs(self, owner: str, keys: Sequence[str]) -> list[Doc]:
        """The owner's verdicts on these pairs, in the order they were given."""
        if not keys:
            return []
        cursor = self.collection.find({"owner": owner, "pair": {"$in": list(keys)}},
                                      {"left": 1, "right": 1, "pair": 1, "choice": 1, "created_at": 1})
        return await cursor.sort([("created_at", 1), ("_id", 1)]).to_list(None)

    async def for_owner_pairs(self, keys: Sequence[tuple[str, Sequence[str]]]) -> list[Doc]:
        """Several owners' verdicts on their pairs in one read (each `$or` branch on the (owner, pair)
        index), in the order they were given, each with its owner: callers split them per owner."""
        branches = [{"owner": owner, "pair": {"$in": list(pairs)}} for owner, pairs in keys if pairs]
        if not branches:
            return []
        cursor = self.collection.find({"$or": branches},
                                      {"owner": 1, "left": 1, "right": 1, "pair": 1, "choice": 1, "created_at": 1})
        return await cursor.sort([("created_at", 1), ("_id", 1)]).to_list(None)

    async def delete_for_photos(self, photo_ids: Sequence[ObjectId]) -> int:
        """Deleted photos' verdicts, in one write (safe to repeat); how many went."""
        if not photo_ids:
            return 0
        ids = list(photo_ids)
        result = await self.collection.delete_many({"$or": [{"left": {"$in": ids}}, {"right": {"$in": ids}}]})
        return result.deleted_count

    async def forget(self, owner: str) -> int:
        """An erased account's verdicts (safe to repeat); how many went."""
        return (await self.collection.delete_many({"owner": owner})).deleted_count
