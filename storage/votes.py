"""The vote log: one document per answered duel ticket, written once by the API and never changed in what
a rating depends on.

Document: ``_id`` (the ticket's nonce: one answer per ticket), player, left, right, pair (order-free),
choice (LEFT | RIGHT | DRAW, or SKIP for a skipped ticket), category, anchor_side, similarity,
created_at. Votes and skips share the collection so that one unique key decides between a vote and
a skip racing on the same ticket, and between two tickets for the same pair: the (player, pair) index
is unique, so a player judges a pair once. Nothing else is stored per vote: which votes the rating
projector applied, in what order and with what result, lives in `rating_batches`.

A series round's answer (`gaming.duels.series_rounds`) is a document of the same log, told apart by
``photos`` (the k photos shown, in the order shown) and ``ranks`` (each photo's place, 0 best; a pick is
0 for the picked photo and 1 for every other), choice PICK or ORDER, and no left/right. Its ``pair`` is
an array (`series_keys`): `series_key` of its photos, so a player answers one set of photos once, and the
`pair_key` of every two of them, because a round judges each of its pairs (a skipped round skips each):
the unique (player, pair) index, multikey for these, then refuses a later duel or round over a pair this
player already judged, and `judged_pairs` sees a round's pairs with no other read or index. A round of
k photos costs 1 + k(k-1)/2 index entries (29 at the most, `gaming.series.MAX_SERIES`). The projector
rates it with `gaming.series`; the duel-only readers (`by_player`, the voter screening's) leave it out.

Two later writes, neither of which moves a rating: a deletion marks the votes of a deleted photo
(`deleted_photos`: they stay, so every other photo's rating replays unchanged), and an account's erasure
replaces its uid in `player` by one random id (the same for all its votes, so the log stays consistent).

Three indexes, so an answer costs one small insert: _id, (player, pair) for "already judged" and
the uniqueness (a duel's one key, a round's `series_keys`), created_at for the projector's tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from storage.base import Doc, Repository, journaled
from storage.mongo import long_work

SKIP = "SKIP"
# A series round's answers (`choice`): the best photo only, or every photo's place.
SERIES_PICK, SERIES_ORDER = "PICK", "ORDER"


def pair_key(a: ObjectId, b: ObjectId) -> str:
    """Order-free key of a pair, so "judged A vs B" also covers B vs A."""
    x, y = sorted((str(a), str(b)))
    return f"{x}:{y}"


def series_key(photos: Sequence[ObjectId]) -> str:
    """Order-free key of a series round's photos (never equal to a pair's key: it has a prefix)."""
    return "series:" + ":".join(sorted(str(p) for p in photos))


def series_keys(photos: Sequence[ObjectId]) -> list[str]:
    """What a series round's answer keeps in ``pair``: the set's `series_key`, then every two photos'
    `pair_key` (the round judges each of its pairs)."""
    ids = list(photos)
    return [series_key(ids), *(pair_key(a, b) for n, a in enumerate(ids) for b in ids[n + 1:])]


def answered_photos(vote: Doc) -> list[ObjectId]:
    """The photos an answer is about: a duel's two, a series round's k."""
    return list(vote["photos"]) if "photos" in vote else [vote["left"], vote["right"]]


class VoteRepository(Repository):
    collection_name = "votes"

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        super().__init__(db)
        self._journaled = journaled(self.collection)

    async def insert(self, answer: Doc) -> None:
        """Raises DuplicateKeyError when the ticket, or this player's pair, was answered already.

        Journaled (`j: true`): this insert is the vote's acknowledgement, and the embedded server (like a
        single MongoDB server with the default write concern) can lose the last tens of milliseconds of
        unjournaled writes when it is killed."""
        await self._journaled.insert_one(answer)

    async def for_player_keys(self, player: str, keys: Sequence[str]) -> list[Doc]:
        """This player's answers holding any of these keys (a duel's pair, a round's `series_keys`): the
        ones an insert with these keys collides with. A few at most (index `player_pair_unique`)."""
        return await self.collection.find({"player": player, "pair": {"$in": list(keys)}}).to_list(None)

    async def judged_pairs(self, player: str, keys: Sequence[str]) -> set[str]:
        """Which of these pairs (or series sets) this player answered (voted or skipped), in a duel or as
        two photos of a series round."""
        if not keys:
            return set()
        wanted = set(keys)
        cursor = self.collection.find({"player": player, "pair": {"$in": list(wanted)}}, {"pair": 1, "_id": 0})
        judged: set[str] = set()
        async for d in cursor:
            held = d["pair"]
            judged.update(wanted.intersection(held) if isinstance(held, list) else (held,))
        return judged

    async def count_for_player(self, player: str, *, limit: int) -> int:
        """How many votes (not skips) this player cast, counted up to `limit` (the weight needs no more)."""
        if limit <= 0:
            return 0
        return await self.collection.count_documents({"player": player, "choice": {"$ne": SKIP}}, limit=limit)

    async def by_player(self, player: str, *, since: datetime | None = None, limit: int = 0) -> list[Doc]:
        """This player's duel votes (not skips, not series rounds), oldest first: what the voter screening
        reads. `limit` keeps the newest that many."""
        query: dict[str, Any] = {"player": player, "choice": {"$ne": SKIP}, "photos": {"$exists": False}}
        if since is not None:
            query["created_at"] = {"$gte": since}
        cursor = self.collection.find(query).sort([("created_at", -1), ("_id", -1)])
        if limit:
            cursor = cursor.limit(limit)
        return list(reversed(await cursor.to_list(None)))

    async def players_between(self, start: datetime, end: datetime) -> list[str]:
        """Who voted in [start, end): the voters the screening looks at again."""
        return [str(p) for p in await self.collection.distinct(
            "player", {"created_at": {"$gte": start, "$lt": end}, "choice": {"$ne": SKIP}})]

    async def created_between(self, start: datetime, end: datetime | None = None, *,
                              limit: int = 0) -> list[Doc]:
        """Votes (not skips) created in [start, end), oldest first: the projector's tail."""
        created: dict[str, Any] = {"$gte": start}
        if end is not None:
            created["$lt"] = end
        cursor = self.collection.find({"created_at": created, "choice": {"$ne": SKIP}}).sort(
            [("created_at", 1), ("_id", 1)])
        if limit:
            cursor = cursor.limit(limit)
        return await cursor.to_list(None)

    async def oldest_vote_after(self, after: datetime | None) -> datetime | None:
        """The creation time of the oldest vote (not skip) created after `after` (None: of all)."""
        query: dict[str, Any] = {"choice": {"$ne": SKIP}}
        if after is not None:
            query["created_at"] = {"$gt": after}
        doc = await self.collection.find_one(query, {"created_at": 1}, sort=[("created_at", 1)])
        return doc["created_at"] if doc else None

    async def count_votes(self) -> int:
        return await self.collection.count_documents({"choice": {"$ne": SKIP}})

    # --- the vote path before the rating projector (read once, by `gaming.duels.legacy`) -------------
    async def legacy_applied(self) -> list[Doc]:
        """Votes the old request path applied itself (`applied_seq` set), in the order it applied them."""
        return await self.collection.find({"applied_seq": {"$ne": None}}).sort("applied_seq", 1).to_list(None)

    async def oldest_never_applied(self) -> Doc | None:
        """The oldest vote the old path logged but never applied (the projector's sweep finds it)."""
        return await self.collection.find_one({"applied_seq": None}, sort=[("created_at", 1)])

    # --- deletion and erasure ---------------------------------------------------------------------------
    async def mark_deleted_photos(self, photo_ids: Sequence[ObjectId]) -> int:
        """Add these photos to `deleted_photos` of every vote about them; how many votes changed. A scan of
        the log under the long deadline: indexes on `left` and `right` would cost every vote's insert, for
        the sake of a rare deletion."""
        if not photo_ids:
            return 0
        ids = list(photo_ids)
        shown = {"$concatArrays": [["$left", "$right"], {"$ifNull": ["$photos", []]}]}  # a duel's, a round's
        concerned = {"$setIntersection": [shown, {"$literal": ids}]}
        with long_work():
            result = await self.collection.update_many(
                {"$or": [{"left": {"$in": ids}}, {"right": {"$in": ids}}, {"photos": {"$in": ids}}]},
                [{"$set": {"deleted_photos": {"$setUnion": [{"$ifNull": ["$deleted_photos", []]}, concerned]}}}])
        return result.modified_count

    async def anonymise_player(self, player: str, anonymous: str) -> int:
        """An erased account's votes and skips carry `anonymous` instead of its uid (index `player_pair`)."""
        result = await self.collection.update_many({"player": player}, {"$set": {"player": anonymous}})
        return result.modified_count

