"""Choosing the next duel for a player: the I/O around the pure policy in `gaming.matchmaking`.

No vector search on this path: the anchor's visual neighbours were found once at ingest and are read
from the photo document. Per request the cost is a few MongoDB reads, each served by an index of
`storage.mongo.INDEXES` on real MongoDB (the embedded test server scans instead): an anchor pool (the
most uncertain photos, the ones nearest the featured boundary, and the least-duelled for exploration),
the anchor's neighbour documents (or, for a placement duel, a random sample of its category; for a
boundary duel, the photos nearest the featured cut), and this player's judged pairs among them. The
choices themselves are `gaming.matchmaking`'s, the same functions bench/ranking_sim.py measures.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from gaming.duels.records import rating_from_fields
from gaming.duels.votes import pair_key
from gaming.matchmaking import (
    DEFAULT_POLICY,
    RatedPhoto,
    choose_anchor,
    choose_opponent,
    featured_cut_ranks,
    wants_boundary_duel,
    wants_calibration,
)
from gaming.ratings import RatingEnv

READY = "READY"
POOL_PER_SOURCE = 40
MAX_ANCHOR_TRIES = 6
BOUNDARY_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class Pairing:
    anchor: dict[str, Any]
    opponent: dict[str, Any]
    similarity: float | None  # None: a placement, boundary or fallback opponent outside the neighbour list


def rated(doc: Mapping[str, Any]) -> RatedPhoto:
    """The policy's view of a photo; `duels` counts answered duels (votes), as in the simulation."""
    return RatedPhoto(id=str(doc["_id"]), rating=rating_from_fields(doc["rating"]),
                      duels=int(doc["rating"].get("votes", 0)), owner=str(doc["owner"]), category=doc.get("category"))


def listed_similarities(anchor: Mapping[str, Any]) -> dict[Any, float]:
    """The anchor's neighbour list (kept at ingest) as id -> cosine similarity."""
    return {e["id"]: float(e["similarity"]) for e in anchor.get("neighbours", [])}


def near_duplicates(a: Mapping[str, Any], b: Mapping[str, Any], similarity: float | None, threshold: float) -> bool:
    if similarity is not None and similarity >= threshold:
        return True
    roots = {a.get("duplicate_of") or a["_id"], b.get("duplicate_of") or b["_id"]}
    return len(roots) == 1


class Matchmaker:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], env: RatingEnv, *, near_duplicate_cosine: float,
                 rng: random.Random | None = None) -> None:
        self.photos = db["photos"]
        self.judged = db["judged"]
        self.env = env
        self.near_duplicate_cosine = near_duplicate_cosine
        self.rng = rng or random.SystemRandom()
        self._boundaries: dict[str | None, tuple[float, float]] = {}

    def _scope(self, category: str | None) -> dict[str, Any]:
        query: dict[str, Any] = {"status": READY, "rating": {"$exists": True}}
        if category:
            query["category"] = category
        return query

    async def boundary(self, category: str | None) -> float:
        """The featured cut's skill for a category (`featured_boundary_array` of its mus), cached
        briefly: it moves slowly with votes.

        Read as a count and the two mus the cut lies between, off the (category, status, rating.mu)
        index: on real MongoDB both can be served from the index alone, instead of every photo's mu
        shipped to Python. The range on ``rating.mu`` stands for "rated" (a numeric range lets the index
        answer it alone).
        """
        cached = self._boundaries.get(category)
        if cached and time.monotonic() - cached[1] < BOUNDARY_TTL_SECONDS:
            return cached[0]
        query: dict[str, Any] = {"status": READY, "rating.mu": {"$gte": -math.inf}}
        if category:
            query["category"] = category
        count = await self.photos.count_documents(query)
        if not count:
            return self.env.mu
        lower, upper, weight = featured_cut_ranks(count, DEFAULT_POLICY.top_fraction)
        # descending, so the skip is the tenth above the cut rather than the nine tenths below it
        docs = await self.photos.find(query, {"_id": 0, "rating.mu": 1}).sort("rating.mu", -1) \
            .skip(count - 1 - upper).limit(upper - lower + 1).to_list(None)
        if not docs:  # photos left between the two reads: the uninformed cut, not cached
            return self.env.mu
        high, low = float(docs[0]["rating"]["mu"]), float(docs[-1]["rating"]["mu"])
        value = low + weight * (high - low)
        self._boundaries[category] = (value, time.monotonic())
        return value

    def _opponent_scope(self, player: str, anchor: Mapping[str, Any], category: str | None) -> dict[str, Any]:
        """Photos that may face this anchor outside its neighbour list: its category, READY, rated, and
        neither the player's nor the anchor owner's."""
        return {**self._scope(category or anchor.get("category")), "owner": {"$nin": [player, anchor["owner"]]},
                "_id": {"$ne": anchor["_id"]}}

    async def _anchor_pool(self, player: str, category: str | None, boundary: float) -> list[dict[str, Any]]:
        scope = {**self._scope(category), "owner": {"$ne": player}}
        half = POOL_PER_SOURCE // 2
        sources = [
            await self.photos.find(scope).sort("rating.sigma", -1).limit(POOL_PER_SOURCE).to_list(None),
            await self._nearest_cut(scope, boundary, half),
            await self.photos.find(scope).sort("duels", 1).limit(half).to_list(None),
        ]
        return list({doc["_id"]: doc for docs in sources for doc in docs}.values())

    async def _nearest_cut(self, scope: Mapping[str, Any], boundary: float, per_side: int) -> list[dict[str, Any]]:
        """The photos of ``scope`` nearest the featured cut: ``per_side`` at or above it, then below it."""
        above = self.photos.find({**scope, "rating.mu": {"$gte": boundary}}).sort("rating.mu", 1).limit(per_side)
        below = self.photos.find({**scope, "rating.mu": {"$lt": boundary}}).sort("rating.mu", -1).limit(per_side)
        return [*await above.to_list(None), *await below.to_list(None)]

    async def _unjudged(self, player: str, anchor: Mapping[str, Any], candidates: list[tuple[dict[str, Any], float]]
                        ) -> list[tuple[dict[str, Any], float]]:
        """The candidates this player has not judged (or skipped) against the anchor yet."""
        judged = await self._judged_pairs(player, [pair_key(anchor["_id"], d["_id"]) for d, _ in candidates])
        return [(d, s) for d, s in candidates if pair_key(anchor["_id"], d["_id"]) not in judged]

    async def _judged_pairs(self, player: str, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        return {d["pair"] async for d in self.judged.find({"player": player, "pair": {"$in": list(keys)}}, {"pair": 1})}

    def _eligible(self, player: str, anchor: Mapping[str, Any], other: Mapping[str, Any] | None,
                  similarity: float | None, category: str | None) -> bool:
        return (
            other is not None and other["_id"] != anchor["_id"] and other.get("status") == READY
            and "rating" in other and other["owner"] != player and other["owner"] != anchor["owner"]
            and (category is None or other.get("category") == category)
            and not near_duplicates(anchor, other, similarity, self.near_duplicate_cosine)
        )

    async def _neighbour_candidates(self, player: str, anchor: dict[str, Any], category: str | None
                                    ) -> list[tuple[dict[str, Any], float]]:
        entries = anchor.get("neighbours", [])
        docs = {d["_id"]: d async for d in self.photos.find({"_id": {"$in": [e["id"] for e in entries]}})}
        candidates = [(docs.get(e["id"]), float(e["similarity"])) for e in entries]
        kept = [(d, s) for d, s in candidates if d is not None and self._eligible(player, anchor, d, s, category)]
        return await self._unjudged(player, anchor, kept)

    async def _placement_candidates(self, player: str, anchor: dict[str, Any], category: str | None,
                                    size: int = 24) -> list[tuple[dict[str, Any], float]]:
        """Random photos of the anchor's category: neighbour duels alone cannot tell visual clusters
        apart (a duel inside a cluster says nothing about the cluster's level), so some cross them."""
        scope = self._opponent_scope(player, anchor, category)
        docs = await (await self.photos.aggregate([{"$match": scope}, {"$sample": {"size": size}}])).to_list(None)
        return await self._unjudged(player, anchor, [(d, 1.0) for d in docs
                                                     if self._eligible(player, anchor, d, None, category)])

    async def _boundary_candidates(self, player: str, anchor: dict[str, Any], category: str | None,
                                   boundary: float) -> list[tuple[dict[str, Any], float]]:
        """The photos nearest the featured cut, half from each side: the contenders the cut is between.
        A contender that is also a listed neighbour keeps its similarity, so near-duplicates stay apart."""
        scope = self._opponent_scope(player, anchor, category)
        docs = await self._nearest_cut(scope, boundary, DEFAULT_POLICY.boundary_pool // 2)
        listed = listed_similarities(anchor)
        eligible = [d for d in docs if self._eligible(player, anchor, d, listed.get(d["_id"]), category)]
        # scored as placement candidates are (similarity 1.0): here the cut matters, not the look
        return await self._unjudged(player, anchor, [(d, 1.0) for d in eligible])

    async def _fallback(self, player: str, anchor: dict[str, Any], category: str | None) -> dict[str, Any] | None:
        """A random same-category opponent, for photos whose neighbourhood is used up or empty."""
        scope = self._opponent_scope(player, anchor, category)
        docs = await self.photos.find(scope).sort("duels", 1).limit(50).to_list(None)
        self.rng.shuffle(docs)
        eligible = [(d, 1.0) for d in docs if self._eligible(player, anchor, d, None, category)]
        unjudged = await self._unjudged(player, anchor, eligible)
        return unjudged[0][0] if unjudged else None

    async def pick(self, player: str, category: str | None) -> Pairing | None:
        boundary = await self.boundary(category)
        pool = await self._anchor_pool(player, category, boundary)
        for _ in range(MAX_ANCHOR_TRIES):
            if not pool:
                return None
            by_id = {str(d["_id"]): d for d in pool}
            choice = choose_anchor([rated(d) for d in pool], boundary, self.env, self.rng)
            if choice is None:
                return None
            anchor = by_id[choice.id]
            placement = wants_calibration(choice, self.rng)
            at_cut = not placement and wants_boundary_duel(choice, boundary, self.env, self.rng)
            if placement:
                candidates = await self._placement_candidates(player, anchor, category)
            elif at_cut:
                candidates = await self._boundary_candidates(player, anchor, category, boundary)
            else:
                candidates = await self._neighbour_candidates(player, anchor, category)
            if candidates:
                docs = {str(d["_id"]): (d, s) for d, s in candidates}
                opponent = choose_opponent(choice, [(rated(d), s) for d, s in candidates], boundary,
                                           self.env, self.rng)
                if opponent is not None:
                    doc, similarity = docs[opponent.id]
                    if placement or at_cut:  # a neighbour pair only if the opponent is in the anchor's list
                        similarity = listed_similarities(anchor).get(doc["_id"]) if at_cut else None
                    return Pairing(anchor=anchor, opponent=doc, similarity=similarity)
            fallback = await self._fallback(player, anchor, category)
            if fallback is not None:
                return Pairing(anchor=anchor, opponent=fallback, similarity=None)
            pool = [d for d in pool if d["_id"] != anchor["_id"]]
        return None
