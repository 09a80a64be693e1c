"""Choosing the next duel for a player: the I/O around the pure policy in `gaming.matchmaking`.

No vector search and no sorted read on this path. The anchor pool (the most uncertain photos, the ones
nearest the featured cut, the least voted, for exploration), placement, boundary and fallback
opponents come from the process's in-memory `DuelCatalogue`; the anchor's visual neighbours were found
once at ingest and are read from its photo document. Per request the database sees three reads by key:
the anchor, the opponent, and this player's judged pairs among the candidates. The choices themselves
are `gaming.matchmaking`'s, the same functions bench/ranking_sim.py measures.

Group duels: while the anchor's similarity group has not settled its best photo, its contenders duel
each other (`gaming.contenders`: how often by the anchor's contention, whom by the group's pair values;
bench/ranking_sim.py --groups measures it). They come after placement (a new photo is placed on the
whole scale first) and before boundary and neighbour duels; the catalogue holds every photo's group, so
this costs no read. The usual rules hold: never the player's own photos or a blocked owner's, never two
photos of one owner, never near-duplicates, never a pair this player judged.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from bson import ObjectId

from gaming.contenders import (
    DEFAULT_GROUP_POLICY,
    GroupPolicy,
    contender_opponent,
    contention,
    leader_settled,
    wants_group_duel,
)
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

T = TypeVar("T")
# What is tried with one anchor: its RatedPhoto, catalogue index and document, the featured cut, and the
# owners hidden from the player (the player, whoever the player blocked); None: try the next anchor.
AnchorAttempt = Callable[[RatedPhoto, int, dict[str, Any], float, tuple[str, ...]], Awaitable[T | None]]


@dataclass(frozen=True)
class Pairing:
    anchor: dict[str, Any]
    opponent: dict[str, Any]
    similarity: float | None  # None: a placement, boundary or fallback opponent outside the neighbour list
    group_duel: bool = False  # both photos of the anchor's unsettled similarity group, chosen for that


def listed_similarities(anchor: Mapping[str, Any]) -> dict[Any, float]:
    """The anchor's neighbour list (kept at ingest) as id -> cosine similarity."""
    return {e["id"]: float(e["similarity"]) for e in anchor.get("neighbours", [])}


class Matchmaker:
    def __init__(self, photos: PhotoRepository, votes: VoteRepository, env: RatingEnv, *,
                 near_duplicate_cosine: float, catalogue: DuelCatalogue | None = None,
                 rng: random.Random | None = None, group_policy: GroupPolicy = DEFAULT_GROUP_POLICY) -> None:
        self.photos = photos
        self.votes = votes
        self.env = env
        self.near_duplicate_cosine = near_duplicate_cosine
        self.group_policy = group_policy
        self.catalogue = catalogue or DuelCatalogue(self.photos, env, top_fraction=DEFAULT_POLICY.top_fraction)
        self.rng = rng or random.SystemRandom()

    async def boundary(self, category: str | None) -> float:
        await self.catalogue.ensure_fresh()
        return self.catalogue.cut(category)

    def anchor_pool(self, view: CategoryView, owners: tuple[str, ...]) -> np.ndarray:
        """The most uncertain photos, those nearest the featured cut (either side), the least voted; none
        of `owners` (the player, and whoever the player blocked)."""
        allowed = self.catalogue.allowed
        half = POOL_PER_SOURCE // 2
        sources = [allowed(view.most_uncertain, category=None, owners=owners)[:POOL_PER_SOURCE],
                   allowed(view.near_above, category=None, owners=owners)[:half],
                   allowed(view.near_below, category=None, owners=owners)[:half],
                   allowed(view.least_voted, category=None, owners=owners)[:half]]
        return np.unique(np.concatenate(sources))

    async def unjudged(self, player: str, anchor_id: ObjectId, candidates: list[tuple[int, float]]
                        ) -> list[tuple[int, float]]:
        """The candidates this player has not judged (or skipped) against the anchor yet."""
        ids = self.catalogue.ids
        keys = {i: pair_key(anchor_id, ids[i]) for i, _ in candidates}
        judged = await self.votes.judged_pairs(player, list(keys.values()))
        return [(i, s) for i, s in candidates if keys[i] not in judged]

    async def pick(self, player: str, category: str | None, *, excluding_owners: Sequence[str] = ()
                   ) -> Pairing | None:
        """`excluding_owners`: owners whose photos this player must not see (those the player blocked)."""
        return await self.from_anchors(
            player, category, excluding_owners,
            lambda choice, anchor, doc, cut, hidden: self._pair(player, category, choice, anchor, doc, cut, hidden))

    async def from_anchors(self, player: str, category: str | None, excluding_owners: Sequence[str],
                           attempt: AnchorAttempt[T]) -> T | None:
        """The first result `attempt` gives for up to `MAX_ANCHOR_TRIES` anchors chosen for this player
        (each one still READY, its group as stored now); None when the pool runs out first. Duels and
        series rounds (`gaming.duels.series_matchmaker`) choose their anchors so."""
        catalogue = self.catalogue
        await catalogue.ensure_fresh()
        view = catalogue.view(category)
        hidden_owners = (player, *excluding_owners)
        pool = self.anchor_pool(view, hidden_owners)
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
            catalogue.regroup(anchor, anchor_doc.get("group_id"))  # a merge since the catalogue read it
            found = await attempt(choice, anchor, anchor_doc, view.cut, hidden_owners)
            if found is not None:
                return found
        return None

    async def _pair(self, player: str, category: str | None, choice: RatedPhoto, anchor: int,
                    anchor_doc: dict[str, Any], boundary: float, hidden_owners: tuple[str, ...]) -> Pairing | None:
        catalogue = self.catalogue
        # outside the neighbour list, opponents come from the anchor's category
        scope = catalogue.view(category if category is not None else choice.category)
        allowed = self.allowed_for(anchor, hidden_owners)
        listed = listed_similarities(anchor_doc)
        placement = wants_placement(choice, self.rng)
        if not placement and (pairing := await self._group_pair(player, anchor, anchor_doc, allowed, category)):
            return pairing
        at_cut = not placement and wants_boundary_duel(choice, boundary, self.env, self.rng)
        candidates = self.candidates(anchor_doc, scope, allowed, category, placement=placement, at_cut=at_cut)
        candidates = await self.unjudged(player, anchor_doc["_id"], candidates)
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
            opponent = await self._fallback(player, anchor_doc, allowed(scope.least_voted)[:FALLBACK_CANDIDATES])
            if opponent is None:
                return None
        opponent_doc = await self._opponent_doc(opponent)
        return None if opponent_doc is None else Pairing(anchor=anchor_doc, opponent=opponent_doc,
                                                         similarity=similarity)

    def allowed_for(self, anchor: int, hidden_owners: tuple[str, ...]) -> Callable[..., np.ndarray]:
        """The duel rules for opponents of this anchor, as a filter of catalogue indexes (optionally to a
        category): live, none of `hidden_owners` (the player, whoever the player blocked), not the anchor's
        owner, not the anchor nor a near-duplicate of it."""
        catalogue = self.catalogue
        owners = (*hidden_owners, catalogue.owner_of(anchor))

        def allowed(indexes: np.ndarray | list[int], *, category: str | None = None) -> np.ndarray:
            return catalogue.allowed(np.asarray(indexes, dtype=np.int64), category=category, owners=owners,
                                     unlike=anchor)

        return allowed

    def candidates(self, anchor_doc: Mapping[str, Any], scope: CategoryView, allowed: Any, category: str | None, *,
                   placement: bool, at_cut: bool) -> list[tuple[int, float]]:
        """The anchor's candidate opponents with their similarity: random photos of the category for a
        placement duel, the photos nearest the featured cut for a boundary duel, else its kept neighbours.
        `allowed` filters indexes by the duel rules (`Catalogue.allowed` for this anchor and player)."""
        if placement:  # random photos of the category: a few more drawn than needed, then filtered
            drawn = self._sample(scope.members, 2 * PLACEMENT_CANDIDATES)
            return [(int(i), 1.0) for i in allowed(drawn)[:PLACEMENT_CANDIDATES]]
        if at_cut:  # scored as placement candidates are (similarity 1.0): here the cut matters, not the look
            listed = listed_similarities(anchor_doc)
            half = DEFAULT_POLICY.boundary_pool // 2
            near = np.concatenate([allowed(scope.near_above)[:half], allowed(scope.near_below)[:half]])
            return [(int(i), 1.0) for i in near
                    if listed.get(self.catalogue.ids[int(i)], 0.0) < self.near_duplicate_cosine]
        return self.neighbours(anchor_doc, allowed, category)

    async def _opponent_doc(self, opponent: int) -> dict[str, Any] | None:
        """The opponent's document, if it may still duel (else it leaves the catalogue)."""
        opponent_doc = await self.photos.get(self.catalogue.ids[opponent])
        if opponent_doc is None or opponent_doc.get("status") != READY or "rating" not in opponent_doc:
            self.catalogue.remove(self.catalogue.ids[opponent])
            return None
        return opponent_doc

    async def _fallback(self, player: str, anchor_doc: Mapping[str, Any], least_voted: np.ndarray) -> int | None:
        """A little-voted photo of the category that this player has not judged against the anchor."""
        unjudged = await self.unjudged_fallbacks(player, anchor_doc, least_voted)
        return unjudged[0] if unjudged else None

    async def unjudged_fallbacks(self, player: str, anchor_doc: Mapping[str, Any], least_voted: np.ndarray
                                 ) -> list[int]:
        """The little-voted photos (already filtered by the duel rules) this player has not judged against
        the anchor, shuffled: what fills in when the anchor's candidates run out."""
        least = [(int(i), 1.0) for i in least_voted]
        self.rng.shuffle(least)
        return [i for i, _ in await self.unjudged(player, anchor_doc["_id"], least)]

    def group_contenders(self, anchor: int) -> np.ndarray | None:
        """The anchor's group (its live members) when its best photo is not settled and this duel should
        serve it (`gaming.contenders.wants_group_duel`, by the anchor's contention); None otherwise."""
        members = self.catalogue.group_members(anchor)
        at = np.flatnonzero(members == anchor)
        if len(members) < 2 or not len(at):
            return None
        c = self.catalogue
        mu, sigma, votes = c.mu[members], c.sigma[members], c.votes[members]
        if leader_settled(mu, sigma, votes, self.env, self.group_policy):
            return None
        weight = contention(mu, sigma, self.env, self.group_policy)[int(at[0])]
        return members if wants_group_duel(float(weight), self.rng, self.group_policy) else None

    async def group_candidates(self, player: str, anchor: int, anchor_doc: Mapping[str, Any], allowed: Any,
                               category: str | None) -> tuple[np.ndarray, np.ndarray] | None:
        """When the anchor's group wants a duel (`group_contenders`): its members, and which of them may
        face the anchor (`allowed`: other owners, not a near-duplicate, in the category asked for) and are
        not judged against it by this player. None: no group duel (or group round) this time."""
        members = self.group_contenders(anchor)
        if members is None:
            return None
        candidates = [(int(i), 1.0) for i in allowed(members, category=category)]
        eligible = {i for i, _ in await self.unjudged(player, anchor_doc["_id"], candidates)}
        return members, np.fromiter((int(i) in eligible for i in members), dtype=bool, count=len(members))

    async def _group_pair(self, player: str, anchor: int, anchor_doc: dict[str, Any], allowed: Any,
                          category: str | None) -> Pairing | None:
        """The anchor against one of its `group_candidates` when its group wants a duel; None: no group duel
        this time."""
        found = await self.group_candidates(player, anchor, anchor_doc, allowed, category)
        if found is None:
            return None
        members, mask = found
        if not mask.any():
            return None
        c = self.catalogue
        at = int(np.flatnonzero(members == anchor)[0])
        chosen = contender_opponent(c.mu[members], c.sigma[members], at, mask, self.env, self.rng, self.group_policy)
        if chosen is None:
            return None
        opponent = int(members[chosen])
        opponent_doc = await self._opponent_doc(opponent)
        if opponent_doc is None:
            return None
        similarity = listed_similarities(anchor_doc).get(c.ids[opponent])
        return Pairing(anchor=anchor_doc, opponent=opponent_doc, similarity=similarity, group_duel=True)

    def neighbours(self, anchor_doc: Mapping[str, Any], allowed: Any, category: str | None
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
