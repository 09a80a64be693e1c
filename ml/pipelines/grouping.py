"""Ingest's grouping step: each photo made READY joins the similarity group of its links.

The links come from what ingest already kept, so grouping costs no vector search: the kept neighbours at
least `cosine` similar (nearest first), and the near-duplicate's original first of all, whatever the
threshold, so near-duplicates are always one group's members. The membership rules (claims, merges,
the size cap, concurrent batches) are `storage.group_membership`'s.

Run by `IngestHandler` after the neighbour offers and before the READY write, so a READY photo is always
in its group (a batch that fails here is retried whole, and joining again is idempotent). The batch's
photos are still PROCESSING then, which a group accepts. Photos made READY before groups existed join
theirs through `GroupBackfill`, a maintenance chore that walks the READY photos once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from bson import ObjectId

from storage.group_membership import SimilarityGroups
from storage.photos import PhotoRepository
from storage.rating_params import RatingParamsRepository

log = structlog.get_logger(__name__)


def group_links(photo: Mapping[str, Any], cosine: float) -> list[ObjectId]:
    """The photos this one is grouped with: its original (a near-duplicate), then every kept neighbour at
    least `cosine` similar, nearest first."""
    links: list[ObjectId] = []
    if isinstance(original := photo.get("duplicate_of"), ObjectId):
        links.append(original)
    ranked = sorted(photo.get("neighbours") or [], key=lambda e: e["similarity"], reverse=True)
    links += [e["id"] for e in ranked if e["similarity"] >= cosine]
    return list(dict.fromkeys(links))


class IngestGrouping:
    def __init__(self, groups: SimilarityGroups, *, cosine: float) -> None:
        self.groups = groups
        self.cosine = cosine

    async def __call__(self, photos: Sequence[Mapping[str, Any]]) -> None:
        """Group a batch's photos one after another: a later photo of the batch may link to an earlier one."""
        for photo in photos:
            links = group_links(photo, self.cosine)
            group = await self.groups.join(photo, links)
            log.debug("photo.grouped", photo=str(photo["_id"]), group=str(group) if group else None, links=len(links))


# What joining reads of a photo: its links, and what a group it founds lists (`provisional_summary`).
JOIN_FIELDS = ("neighbours", "duplicate_of", "rating", "category")
BACKFILL_ID = "group_backfill"


class GroupBackfill:
    """READY photos without a group (made READY before similarity groups existed) join theirs: one walk
    over the READY photos in id order, `per_pass` photos read per pass, the position kept (`rating_params`,
    ``_id: "group_backfill"``) so a lease taken over mid-walk goes on from there. Once the walk has passed the
    last photo it is done for good: every photo made READY since was grouped by its ingest."""

    def __init__(self, photos: PhotoRepository, params: RatingParamsRepository, grouping: IngestGrouping, *,
                 per_pass: int = 500) -> None:
        self.photos = photos
        self.params = params
        self.grouping = grouping
        self.per_pass = per_pass

    async def run(self) -> int:
        """One pass; how many photos it grouped."""
        state = await self.params.get(BACKFILL_ID) or {}
        if state.get("done"):
            return 0
        ungrouped, last = await self.photos.ungrouped_after(state.get("after"), limit=self.per_pass,
                                                            fields=JOIN_FIELDS)
        await self.grouping(ungrouped)
        await self.params.save(BACKFILL_ID, {"after": last, "done": True} if last is None else {"after": last})
        if ungrouped:
            log.info("groups.backfilled", photos=len(ungrouped), done=last is None)
        return len(ungrouped)
