"""Choosing a series round's photos: the duel matchmaking, extended from one opponent to several.

A round is built around an anchor chosen as for a duel (`Matchmaker`: the same pool, priorities and
reads). While the anchor's similarity group has not settled its best photo, the round is drawn from the
group (`gaming.contenders.next_contender`: the members whose comparison does most for "which is the
best?"); otherwise the others come from the candidates a duel would draw from (placement, boundary or
neighbour candidates), chosen one by one without replacement by the duel's scores
(`gaming.contenders.choose_opponents`, as bench/ranking_sim.py --series measures), and a short list is
filled with little-voted photos of the category. The duel rules hold between every two photos of a
round, not only against the anchor: never the player's own or a blocked owner's, never two photos of one
owner, never near-duplicates, and never two photos this player judged together already, in a duel or in a
round (an answered round judges each of its pairs: `storage.votes.series_keys`). The pairs with the anchor
are screened as a duel's candidates are; the others with one read of the whole round's pairs, dropping
the later-chosen photo of a judged pair (and a round left with fewer than three photos).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gaming.contenders import choose_opponent_positions, contender_values, next_contender
from gaming.duels.matchmaker import FALLBACK_CANDIDATES, Matchmaker
from gaming.matchmaking import RatedPhoto, wants_boundary_duel, wants_placement
from gaming.series import MAX_SERIES
from storage.photos import READY
from storage.votes import pair_key, series_key


@dataclass(frozen=True)
class SeriesPick:
    photos: tuple[dict[str, Any], ...]  # the anchor first
    group_round: bool  # drawn from the anchor's unsettled similarity group


class SeriesMatchmaker:
    def __init__(self, matchmaker: Matchmaker, *, size: int) -> None:
        if not 3 <= size <= MAX_SERIES:
            raise ValueError(f"a series round shows 3 to {MAX_SERIES} photos, got {size}")
        self.matchmaker = matchmaker
        self.size = size

    async def pick(self, player: str, category: str | None, *, excluding_owners: Sequence[str] = ()
                   ) -> SeriesPick | None:
        """Three to `size` photos for this player, or None when no anchor allows three."""
        return await self.matchmaker.from_anchors(
            player, category, excluding_owners,
            lambda choice, anchor, doc, cut, hidden: self._round(player, category, choice, anchor, doc, cut, hidden))

    async def _round(self, player: str, category: str | None, choice: RatedPhoto, anchor: int,
                     anchor_doc: dict[str, Any], boundary: float, hidden: tuple[str, ...]) -> SeriesPick | None:
        """The round around this anchor; None when it allows none (too few photos once pairs this player
        judged are left out, or a photo gone since the catalogue read it)."""
        mm = self.matchmaker
        catalogue = mm.catalogue
        found = await self._members(player, category, choice, anchor, anchor_doc, boundary, hidden)
        if found is None:
            return None
        members, group_round = await self._unjudged_together(player, found[0]), found[1]
        if len(members) < 3:
            return None
        docs = await mm.photos.get_many([catalogue.ids[i] for i in members])
        gone = [i for i, d in zip(members, docs, strict=True)
                if d is None or d.get("status") != READY or "rating" not in d]
        for i in gone:
            catalogue.remove(catalogue.ids[i])
        return None if gone else SeriesPick(photos=tuple(d for d in docs if d is not None), group_round=group_round)

    async def _unjudged_together(self, player: str, members: list[int]) -> list[int]:
        """`members` (the anchor first, then by preference) less each photo this player already judged
        together with one kept before it: one indexed read of every pair's key, and of the set's (an answer
        logged before rounds kept their pairs holds only that)."""
        ids = self.matchmaker.catalogue.ids
        keys = {(a, b): pair_key(ids[a], ids[b]) for n, a in enumerate(members) for b in members[n + 1:]}
        whole = series_key([ids[i] for i in members])
        judged = await self.matchmaker.votes.judged_pairs(player, [whole, *keys.values()])
        if whole in judged:
            return []
        kept: list[int] = []
        for b in members:
            if all(keys[(a, b)] not in judged for a in kept):
                kept.append(b)
        return kept

    async def _members(self, player: str, category: str | None, choice: RatedPhoto, anchor: int,
                       anchor_doc: dict[str, Any], boundary: float, hidden: tuple[str, ...]
                       ) -> tuple[list[int], bool] | None:
        """The round's catalogue indexes, the anchor first, and whether they came from its group."""
        mm = self.matchmaker
        allowed = mm.allowed_for(anchor, hidden)
        placement = wants_placement(choice, mm.rng)
        if not placement and (group := await self._from_group(player, anchor, anchor_doc, allowed, category)):
            return group, True
        at_cut = not placement and wants_boundary_duel(choice, boundary, mm.env, mm.rng)
        scope = mm.catalogue.view(category if category is not None else choice.category)
        candidates = mm.candidates(anchor_doc, scope, allowed, category, placement=placement, at_cut=at_cut)
        candidates = await mm.unjudged(player, anchor_doc["_id"], candidates)
        ranked = choose_opponent_positions(choice, [(mm.catalogue.rated(i), s) for i, s in candidates],
                                           len(candidates), boundary, mm.env, mm.rng)
        chosen = self._distinct([anchor], [candidates[k][0] for k in ranked])
        if len(chosen) < self.size:  # a short list: little-voted photos of the category fill it
            least = allowed(scope.least_voted)[:FALLBACK_CANDIDATES]
            chosen = self._distinct(chosen, await mm.unjudged_fallbacks(player, anchor_doc, least))
        return (chosen, False) if len(chosen) >= 3 else None

    async def _from_group(self, player: str, anchor: int, anchor_doc: dict[str, Any],
                          allowed: Callable[..., np.ndarray], category: str | None) -> list[int] | None:
        """A round of the anchor's unsettled group when it wants one (as a group duel would), three
        members at least; None otherwise."""
        mm = self.matchmaker
        found = await mm.group_candidates(player, anchor, anchor_doc, allowed, category)
        if found is None:
            return None
        members, eligible = found
        c = mm.catalogue
        mu, sigma = c.mu[members], c.sigma[members]
        chosen = [int(np.flatnonzero(members == anchor)[0])]
        values = contender_values(mu, sigma, mm.env, mm.group_policy)
        while len(chosen) < self.size:
            member = next_contender(values, chosen, eligible, mm.rng, mm.group_policy)
            if member is None:
                break
            chosen.append(member)
            picked = int(members[member])  # its owner and near-duplicates may not join any more
            eligible &= (c.owner[members] != c.owner[picked]) & (c.root[members] != c.root[picked])
        return [int(members[i]) for i in chosen] if len(chosen) >= 3 else None

    def _distinct(self, chosen: list[int], ranked: Sequence[int]) -> list[int]:
        """`chosen` extended, in order, by those of `ranked` whose owner and near-duplicate root no photo
        in it has, up to `size`."""
        c = self.matchmaker.catalogue
        out = list(chosen)
        owners, roots = {int(c.owner[i]) for i in out}, {int(c.root[i]) for i in out}
        for i in ranked:
            if len(out) >= self.size:
                break
            if i in out or int(c.owner[i]) in owners or int(c.root[i]) in roots:
                continue
            out.append(i)
            owners.add(int(c.owner[i]))
            roots.add(int(c.root[i]))
        return out
