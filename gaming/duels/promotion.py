"""Promotion: leaderboards and the featured list, and announcing photos that become featured.

A photo is eligible once its rating is settled enough to promote: at least `min_votes` votes and sigma
at most `max_sigma`. Eligible photos are ranked by conservative skill (what the 1-10 score shows), so a
photo cannot be featured on one lucky vote. `featured` shows one photo per similarity group unless asked
not to; leaderboards may ask for it. The featured set of a category is the eligible photos
above the featured cut (`gaming.featured`: the top 10%, at least one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

from bson import ObjectId

from gaming.duels.catalogue import DuelCatalogue
from gaming.duels.diversity import one_per_group
from gaming.featured import featured_count
from storage.clock import utcnow
from storage.pagination import Page
from storage.photos import PhotoRepository, Settled


class Period(Enum):
    DAY = 1
    WEEK = 7
    MONTH = 30
    ALL = 0


@dataclass(frozen=True)
class Eligibility:
    min_votes: int
    max_sigma: float


def eligible(rules: Eligibility, category: str | None = None, period: Period = Period.ALL,
             excluding_owners: Sequence[str] = ()) -> Settled:
    since = None if period is Period.ALL else utcnow() - timedelta(days=period.value)
    return Settled(min_votes=rules.min_votes, max_sigma=rules.max_sigma, category=category, since=since,
                   excluding_owners=tuple(excluding_owners))


class Promotion:
    def __init__(self, photos: PhotoRepository, rules: Eligibility, catalogue: DuelCatalogue | None = None) -> None:
        self.photos = photos
        self.rules = rules
        self.catalogue = catalogue  # when given, featured sets come from it rather than from scans

    async def leaderboard(self, category: str | None, period: Period, *, first: int, after: str | None,
                          excluding_owners: Sequence[str] = (), one_per_group: bool = False) -> Page:
        """`excluding_owners`: the viewer's blocked users, left out of what they see. `one_per_group`:
        each similarity group's best eligible photo only (`gaming.duels.diversity`)."""
        settled = eligible(self.rules, category, period, excluding_owners)
        if one_per_group:
            return await self._one_per_group(settled, first=first, after=after)
        return await self.photos.settled_page(settled, first=first, after=after)

    async def featured(self, *, first: int, excluding_owners: Sequence[str] = (),
                       one_per_group: bool = True) -> list[dict[str, Any]]:
        """The best eligible photos; by default one per similarity group, so the front page shows the
        best of each subject rather than one subject's near-duplicates."""
        settled = eligible(self.rules, excluding_owners=excluding_owners)
        if one_per_group:
            return (await self._one_per_group(settled, first=first, after=None)).docs
        return await self.photos.best_settled(settled, limit=first)

    async def _one_per_group(self, settled: Settled, *, first: int, after: str | None) -> Page:
        async def read(size: int, cursor: str | None) -> Page:
            return await self.photos.settled_page(settled, first=size, after=cursor)

        async def tops(groups: Sequence[ObjectId]) -> dict[ObjectId, ObjectId]:
            return await self.photos.group_tops(settled.query(), groups)

        return await one_per_group(read, tops, first=first, after=after)

    async def featured_sets(self) -> dict[str | None, list[dict[str, Any]]]:
        """The featured photos of every category: the top fraction of its eligible photos."""
        if self.catalogue is not None:
            await self.catalogue.ensure_fresh()
            chosen = self.catalogue.featured(min_votes=self.rules.min_votes, max_sigma=self.rules.max_sigma)
            # READY ones only: another process's catalogue may still hold a photo deleted since
            docs = {d["_id"]: d for d in await self.photos.ready_many([i for ids in chosen.values() for i in ids])}
            return {category: [docs[i] for i in ids if i in docs] for category, ids in chosen.items()}
        sets: dict[str | None, list[dict[str, Any]]] = {}
        for category in await self.photos.settled_categories(eligible(self.rules)):
            settled = eligible(self.rules, category)
            size = featured_count(await self.photos.count_settled(settled))
            sets[category] = await self.photos.best_settled(settled, limit=size)
        return sets

    async def announce_newly_featured(self, announce: Callable[[dict[str, Any]], Awaitable[object]]) -> int:
        """Mark and announce photos entering a featured set (once per photo: `featured_at` is set once)."""
        announced = 0
        for docs in (await self.featured_sets()).values():
            for doc in docs:
                if await self.photos.mark_featured(doc["_id"]):
                    await announce(doc)
                    announced += 1
        return announced
