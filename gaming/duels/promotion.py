"""Promotion: leaderboards and the featured list, and announcing photos that become featured.

A photo is eligible once its rating is settled enough to promote: at least `min_votes` votes and sigma
at most `max_sigma`. Eligible photos are ranked by conservative skill (what the 1-10 score shows), so a
photo cannot be featured on one lucky vote. The featured set of a category is the top `top_fraction`
of its eligible photos (at least one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from gaming.duels.catalogue import DuelCatalogue
from storage.photos import BEST, READY, Page, PhotoRepository


class Period(Enum):
    DAY = 1
    WEEK = 7
    MONTH = 30
    ALL = 0


@dataclass(frozen=True)
class Eligibility:
    min_votes: int
    max_sigma: float
    top_fraction: float = 0.10


def eligible_query(rules: Eligibility, category: str | None = None, period: Period = Period.ALL) -> dict[str, Any]:
    query: dict[str, Any] = {"status": READY, "rating.votes": {"$gte": rules.min_votes},
                             "rating.sigma": {"$lte": rules.max_sigma}}
    if category:
        query["category"] = category
    if period is not Period.ALL:
        query["created_at"] = {"$gte": datetime.now(UTC) - timedelta(days=period.value)}
    return query


class Promotion:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], rules: Eligibility,
                 catalogue: DuelCatalogue | None = None) -> None:
        self.photos = PhotoRepository(db)
        self.rules = rules
        self.catalogue = catalogue  # when given, featured sets come from it rather than from scans

    async def leaderboard(self, category: str | None, period: Period, *, first: int, after: str | None) -> Page:
        return await self.photos.page(eligible_query(self.rules, category, period), BEST, first=first, after=after)

    async def featured(self, *, first: int) -> list[dict[str, Any]]:
        return await self.photos.find(eligible_query(self.rules), sort=BEST.fields, limit=first)

    async def featured_sets(self) -> dict[str | None, list[dict[str, Any]]]:
        """The featured photos of every category: the top fraction of its eligible photos."""
        if self.catalogue is not None:
            await self.catalogue.ensure_fresh()
            chosen = self.catalogue.featured(min_votes=self.rules.min_votes, max_sigma=self.rules.max_sigma)
            docs = {d["_id"]: d for d in await self.photos.get_many([i for ids in chosen.values() for i in ids])
                    if d is not None}
            return {category: [docs[i] for i in ids if i in docs] for category, ids in chosen.items()}
        sets: dict[str | None, list[dict[str, Any]]] = {}
        categories = await self.photos.collection.distinct("category", eligible_query(self.rules))
        for category in categories:
            query = eligible_query(self.rules, category)
            count = await self.photos.collection.count_documents(query)
            size = max(1, int(count * self.rules.top_fraction))
            sets[category] = await self.photos.find(query, sort=BEST.fields, limit=size)
        return sets

    async def announce_newly_featured(self, announce: Callable[[dict[str, Any]], Awaitable[None]]) -> int:
        """Mark and announce photos entering a featured set (once per photo: `featured_at` is set once)."""
        announced = 0
        for docs in (await self.featured_sets()).values():
            for doc in docs:
                result = await self.photos.collection.update_one(
                    {"_id": doc["_id"], "featured_at": {"$exists": False}},
                    {"$set": {"featured_at": datetime.now(UTC)}},
                )
                if result.modified_count == 1:
                    await announce(doc)
                    announced += 1
        return announced
