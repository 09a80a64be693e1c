"""Choosing the next duel for a player: the I/O around the pure policy in `gaming.matchmaking`.

No vector search and no sorted read on this path. The anchor pool (the most uncertain photos, the ones
nearest the featured cut, the least voted, for exploration), placement, boundary and fallback
opponents come from the process's in-memory `DuelCatalogue`; the anchor's visual neighbours were found
once at ingest and are read from its photo document. Per request the database sees three reads by key:
the anchor, the opponent, and this player's judged pairs among the candidates. The choices themselves
are `gaming.matchmaking`'s, the same functions bench/ranking_sim.py measures.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from gaming.duels.catalogue import DuelCatalogue
from gaming.matchmaking import (
    DEFAULT_POLICY,
    RatedPhoto,
    choose_anchor,
    choose_opponent,
    wants_boundary_duel,
    wants_calibration,
)
from gaming.ratings import RatingEnv
from storage.photos import READY, PhotoRepository
from storage.votes import VoteRepository, pair_key

POOL_PER_SOURCE = 40
MAX_ANCHOR_TRIES = 6
PLACEMENT_CANDIDATES = 24
FALLBACK_CANDIDATES = 50


@dataclass(frozen=True)
class Pairing:
    anchor: dict[str, Any]
    opponent: dict[str, Any]
    similarity: float | None  # None: a placement, boundary or fallback opponent outside the neighbour list


def listed_similarities(anchor: Mapping[str, Any]) -> dict[Any, float]:
    """The anchor's neighbour list (kept at ingest) as id -> cosine similarity."""
    return {e["id"]: float(e["similarity"]) for e in anchor.get("neighbours", [])}


class Matchmaker:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], env: RatingEnv, *, near_duplicate_cosine: float,
                 catalogue: DuelCatalogue | None = None, rng: random.Random | None = None) -> None:
        self.photos = PhotoRepository(db)
        self.votes = VoteRepository(db)
        self.env = env
        self.near_duplicate_cosine = near_duplicate_cosine
        self.catalogue = catalogue or DuelCatalogue(db["photos"], env, top_fraction=DEFAULT_POLICY.top_fraction)
        self.rng = rng or random.SystemRandom()

    async def boundary(self, category: str | None) -> float:
        await self.catalogue.ensure_fresh()
        return self.catalogue.cut(category)

    def _anchor_pool(self, members: np.ndarray, boundary: float) -> np.ndarray:
        view = self.catalogue
        half = POOL_PER_SOURCE // 2
        sources = [view.top(members, view.sigma, POOL_PER_SOURCE), view.nearest_cut(members, boundary, half),
                   view.top(members, -view.votes, half)]
        return np.unique(np.concatenate(sources)) if members.size else members

    def _opponents(self, player: str, anchor: int, category: str | None) -> np.ndarray:
        """Photos that may face this anchor: its category, neither the player's nor the anchor owner's,
        not its near-duplicates (the same duplicate root)."""
        view = self.catalogue
        scope = view.scope(category or view.rated(anchor).category, excluding_owners=(player, view.owner_of(anchor)))
        return scope[(scope != anchor) & (view.root[scope] != view.root[anchor])]

    def _sample(self, members: np.ndarray, size: int) -> np.ndarray:
        if len(members) <= size:
            return members
        return np.array(self.rng.sample(list(members), size))

    async def _unjudged(self, player: str, anchor_id: ObjectId, candidates: list[tuple[int, float]]
                        ) -> list[tuple[int, float]]:
        """The candidates this player has not judged (or skipped) against the anchor yet."""
        ids = self.catalogue.ids
        keys = {i: pair_key(anchor_id, ids[i]) for i, _ in candidates}
        judged = await self.votes.judged_pairs(player, list(keys.values()))
        return [(i, s) for i, s in candidates if keys[i] not in judged]

    def _neighbours(self, anchor_doc: Mapping[str, Any], allowed: np.ndarray) -> list[tuple[int, float]]:
        index, allowed_set = self.catalogue.index, set(allowed.tolist())
        found = [(index.get(e["id"]), float(e["similarity"])) for e in anchor_doc.get("neighbours", [])]
        return [(i, s) for i, s in found
                if i is not None and i in allowed_set and s < self.near_duplicate_cosine]

    async def pick(self, player: str, category: str | None) -> Pairing | None:
        view = self.catalogue
        await view.ensure_fresh()
        boundary = view.cut(category)
        pool = self._anchor_pool(view.scope(category, excluding_owners=(player,)), boundary)
        for _ in range(MAX_ANCHOR_TRIES):
            if not len(pool):
                return None
            choice = choose_anchor([view.rated(int(i)) for i in pool], boundary, self.env, self.rng)
            if choice is None:
                return None
            anchor = view.index[ObjectId(choice.id)]
            anchor_doc = await self.photos.get(view.ids[anchor])
            pool = pool[pool != anchor]
            if anchor_doc is None or anchor_doc.get("status") != READY:
                view.remove(view.ids[anchor])
                continue
            pairing = await self._pair(player, category, choice, anchor, anchor_doc, boundary)
            if pairing is not None:
                return pairing
        return None

    async def _pair(self, player: str, category: str | None, choice: RatedPhoto, anchor: int,
                    anchor_doc: dict[str, Any], boundary: float) -> Pairing | None:
        view = self.catalogue
        allowed = self._opponents(player, anchor, category)
        listed = listed_similarities(anchor_doc)
        placement = wants_calibration(choice, self.rng)
        at_cut = not placement and wants_boundary_duel(choice, boundary, self.env, self.rng)
        if placement:
            candidates = [(int(i), 1.0) for i in self._sample(allowed, PLACEMENT_CANDIDATES)]
        elif at_cut:  # scored as placement candidates are (similarity 1.0): here the cut matters, not the look
            near = view.nearest_cut(allowed, boundary, DEFAULT_POLICY.boundary_pool // 2)
            candidates = [(int(i), 1.0) for i in near
                          if listed.get(view.ids[int(i)], 0.0) < self.near_duplicate_cosine]
        else:
            candidates = self._neighbours(anchor_doc, allowed)
        candidates = await self._unjudged(player, anchor_doc["_id"], candidates)
        similarity: float | None = None
        opponent: int | None = None
        if candidates:
            scored = {str(view.ids[i]): (i, s) for i, s in candidates}
            chosen = choose_opponent(choice, [(view.rated(i), s) for i, s in candidates], boundary, self.env, self.rng)
            if chosen is not None:
                opponent, similarity = scored[chosen.id]
                if placement or at_cut:  # a neighbour pair only if the opponent is in the anchor's list
                    similarity = listed.get(view.ids[opponent]) if at_cut else None
        if opponent is None:  # the neighbourhood is used up or empty: a little-voted photo of the category
            least = [(int(i), 1.0) for i in view.top(allowed, -view.votes, FALLBACK_CANDIDATES)]
            self.rng.shuffle(least)
            unjudged = await self._unjudged(player, anchor_doc["_id"], least)
            if not unjudged:
                return None
            opponent, similarity = unjudged[0][0], None
        opponent_doc = await self.photos.get(view.ids[opponent])
        if opponent_doc is None or opponent_doc.get("status") != READY or "rating" not in opponent_doc:
            view.remove(view.ids[opponent])
            return None
        return Pairing(anchor=anchor_doc, opponent=opponent_doc, similarity=similarity)
