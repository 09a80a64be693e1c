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

from gaming.duels.catalogue import CategoryView, DuelCatalogue
from gaming.matchmaking import (
    DEFAULT_POLICY,
    RatedPhoto,
    choose_anchor,
    choose_opponent,
    wants_boundary_duel,
    wants_placement,
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
    def __init__(self, photos: PhotoRepository, votes: VoteRepository, env: RatingEnv, *,
                 near_duplicate_cosine: float, catalogue: DuelCatalogue | None = None,
                 rng: random.Random | None = None) -> None:
        self.photos = photos
        self.votes = votes
        self.env = env
        self.near_duplicate_cosine = near_duplicate_cosine
        self.catalogue = catalogue or DuelCatalogue(self.photos, env, top_fraction=DEFAULT_POLICY.top_fraction)
        self.rng = rng or random.SystemRandom()

    async def boundary(self, category: str | None) -> float:
        await self.catalogue.ensure_fresh()
        return self.catalogue.cut(category)

    def _anchor_pool(self, view: CategoryView, player: str) -> np.ndarray:
        """The most uncertain photos, those nearest the featured cut (either side), the least voted."""
        allowed = self.catalogue.allowed
        half = POOL_PER_SOURCE // 2
        sources = [allowed(view.most_uncertain, category=None, owners=(player,))[:POOL_PER_SOURCE],
                   allowed(view.near_above, category=None, owners=(player,))[:half],
                   allowed(view.near_below, category=None, owners=(player,))[:half],
                   allowed(view.least_voted, category=None, owners=(player,))[:half]]
        return np.unique(np.concatenate(sources))

    async def _unjudged(self, player: str, anchor_id: ObjectId, candidates: list[tuple[int, float]]
                        ) -> list[tuple[int, float]]:
        """The candidates this player has not judged (or skipped) against the anchor yet."""
        ids = self.catalogue.ids
        keys = {i: pair_key(anchor_id, ids[i]) for i, _ in candidates}
        judged = await self.votes.judged_pairs(player, list(keys.values()))
        return [(i, s) for i, s in candidates if keys[i] not in judged]

    async def pick(self, player: str, category: str | None) -> Pairing | None:
        catalogue = self.catalogue
        await catalogue.ensure_fresh()
        view = catalogue.view(category)
        pool = self._anchor_pool(view, player)
        for _ in range(MAX_ANCHOR_TRIES):
            if not len(pool):
                return None
            choice = choose_anchor([catalogue.rated(int(i)) for i in pool], view.cut, self.env, self.rng)
            if choice is None:
                return None
            anchor = catalogue.index[ObjectId(choice.id)]
            anchor_doc = await self.photos.get(catalogue.ids[anchor])
            pool = pool[pool != anchor]
            if anchor_doc is None or anchor_doc.get("status") != READY:
                catalogue.remove(catalogue.ids[anchor])
                continue
            pairing = await self._pair(player, category, choice, anchor, anchor_doc, view.cut)
            if pairing is not None:
                return pairing
        return None

    async def _pair(self, player: str, category: str | None, choice: RatedPhoto, anchor: int,
                    anchor_doc: dict[str, Any], boundary: float) -> Pairing | None:
        catalogue = self.catalogue
        # outside the neighbour list, opponents come from the anchor's category
        scope = catalogue.view(category if category is not None else choice.category)
        owners = (player, catalogue.owner_of(anchor))

        def allowed(indexes: np.ndarray | list[int], *, category: str | None = None) -> np.ndarray:
            return catalogue.allowed(np.asarray(indexes, dtype=np.int64), category=category, owners=owners,
                                     unlike=anchor)

        listed = listed_similarities(anchor_doc)
        placement = wants_placement(choice, self.rng)
        at_cut = not placement and wants_boundary_duel(choice, boundary, self.env, self.rng)
        if placement:  # random photos of the category: a few more drawn than needed, then filtered
            drawn = self._sample(scope.members, 2 * PLACEMENT_CANDIDATES)
            candidates = [(int(i), 1.0) for i in allowed(drawn)[:PLACEMENT_CANDIDATES]]
        elif at_cut:  # scored as placement candidates are (similarity 1.0): here the cut matters, not the look
            half = DEFAULT_POLICY.boundary_pool // 2
            near = np.concatenate([allowed(scope.near_above)[:half], allowed(scope.near_below)[:half]])
            candidates = [(int(i), 1.0) for i in near
                          if listed.get(catalogue.ids[int(i)], 0.0) < self.near_duplicate_cosine]
        else:
            candidates = self._neighbours(anchor_doc, allowed, category)
        candidates = await self._unjudged(player, anchor_doc["_id"], candidates)
        similarity: float | None = None
        opponent: int | None = None
        if candidates:
            scored = {str(catalogue.ids[i]): (i, s) for i, s in candidates}
            chosen = choose_opponent(choice, [(catalogue.rated(i), s) for i, s in candidates], boundary,
                                     self.env, self.rng)
            if chosen is not None:
                opponent, similarity = scored[chosen.id]
                if placement or at_cut:  # a neighbour pair only if the opponent is in the anchor's list
                    similarity = listed.get(catalogue.ids[opponent]) if at_cut else None
        if opponent is None:  # the neighbourhood is used up or empty: a little-voted photo of the category
            least = [(int(i), 1.0) for i in allowed(scope.least_voted)[:FALLBACK_CANDIDATES]]
            self.rng.shuffle(least)
            unjudged = await self._unjudged(player, anchor_doc["_id"], least)
            if not unjudged:
                return None
            opponent, similarity = unjudged[0][0], None
        opponent_doc = await self.photos.get(catalogue.ids[opponent])
        if opponent_doc is None or opponent_doc.get("status") != READY or "rating" not in opponent_doc:
            catalogue.remove(catalogue.ids[opponent])
            return None
        return Pairing(anchor=anchor_doc, opponent=opponent_doc, similarity=similarity)

    def _neighbours(self, anchor_doc: Mapping[str, Any], allowed: Any, category: str | None
                    ) -> list[tuple[int, float]]:
        """The anchor's kept neighbours that may face it (any category unless one was asked for), never
        one at near-duplicate similarity."""
        index, cosine = self.catalogue.index, self.near_duplicate_cosine
        listed = [(i, s) for e in anchor_doc.get("neighbours", [])
                  if (i := index.get(e["id"])) is not None and (s := float(e["similarity"])) < cosine]
        keep = set(allowed([i for i, _ in listed], category=category).tolist()) if listed else set()
        return [(i, s) for i, s in listed if i in keep]

    def _sample(self, members: np.ndarray, size: int) -> np.ndarray:
        if len(members) <= size:
            return members
        return members[np.array(self.rng.sample(range(len(members)), size), dtype=np.int64)]
