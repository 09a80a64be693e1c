"""Keeps the groups' listing summaries (size, category, rank: the best photo's conservative skill) current.

One writer: a worker chore, run by the holder of the maintenance lease (`photoduel.features`). Three
things make a summary stale, and each pass looks at all of them:

- membership changes: whoever changes a group's members marks it stale (`storage.groups.touch`);
- rating changes: the pass follows the rating projector's batch records from its position (kept in
  `rating_params`, `_id: "group_ranks"`) and refreshes the groups of the photos they touched. The
  projector writes a batch's record before its photos' ratings, so a batch is taken only once every
  photo it touched shows it (`rating_seq`); the position stops before the first batch that does not;
- whatever else changes a member as shown (reports or a moderator hiding it, a moderator approving it,
  its deletion, its owner setting its category) is summarised at once by the request that made the
  change (`refresh_photos`, passed to the photo services as their `refresh_groups` hook), so the
  listing shows it on the next read; should that write fail, each pass also refreshes the
  SWEEP_PER_PASS groups summarised longest ago, so every listed group is looked at again within
  (groups / SWEEP_PER_PASS) passes.

A summary is written only while the group's change count is the one read before its members were
(`GroupRepository.write_summaries`), so a pass that overlaps a membership change leaves the group stale
for the next pass instead of hiding the change. Passes are idempotent, which a lease taken over
mid-pass needs. A request's refresh first marks the group changed (`GroupRepository.touch`) and only then
reads it, so a pass that read the members before the request's change fails its conditional write rather
than putting the old best photo back. How stale a listing may be: one pass interval (`PHOTODUEL_MAINTENANCE_SECONDS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from bson import ObjectId
from pymongo.errors import PyMongoError

from gaming.duels.groups import GroupReads
from storage.base import Doc
from storage.groups import GroupRepository
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.rating_params import RatingParamsRepository

log = structlog.get_logger(__name__)

PARAMS_ID = "group_ranks"
# Groups summarised per round trip, and stale groups taken per pass (the rest wait for the next one).
CHUNK = 200
STALE_PER_PASS = 2000
SWEEP_PER_PASS = 200
# Batch records read per round trip (only the ids of the photos they rated), and per pass.
BATCH_READ = 200
BATCHES_PER_PASS = 5000


class GroupRanks:
    def __init__(self, reads: GroupReads, groups: GroupRepository, photos: PhotoRepository,
                 batches: RatingBatchRepository, params: RatingParamsRepository) -> None:
        self.reads = reads
        self.groups = groups
        self.photos = photos
        self.batches = batches
        self.params = params

    async def run(self) -> int:
        """One pass: the groups whose members changed, then those whose members' ratings changed. How many
        summaries were written."""
        written = await self.refresh(await self.groups.stale(limit=STALE_PER_PASS))
        written += await self.follow_ratings()
        return written + await self.refresh(await self.groups.least_recently_summarised(limit=SWEEP_PER_PASS))

    async def refresh(self, group_ids: Iterable[ObjectId]) -> int:
        """Recompute and write these groups' summaries (merged ones are skipped)."""
        ids = list(dict.fromkeys(group_ids))
        written = 0
        for start in range(0, len(ids), CHUNK):
            changes = await self.groups.changes(ids[start:start + CHUNK])  # before the members are read
            views = await self.reads.views(list(changes))
            written += await self.groups.write_summaries(
                {g: (count, views[g].summary()) for g, count in changes.items()})
        return written

    async def refresh_photos(self, photos: Sequence[Mapping[str, Any]]) -> int:
        """Summarise at once the groups of photos whose showing a request just changed (written before
        this is called): each group is marked changed, then summarised, so no pass that read it before
        the change can overwrite this summary. A database error is logged, not raised: the photo's change
        is made and answered, and the stale mark (or, were that write lost too, the sweep) has the next
        pass finish the summary. How many summaries were written."""
        linked = {g for p in photos if isinstance(g := p.get("group_id"), ObjectId)}
        if not linked:
            return 0
        try:
            roots = set((await self.groups.roots(list(linked))).values())  # a merged group's members are its root's
            await self.groups.touch_many(list(roots))
            return await self.refresh(roots)
        except PyMongoError as exc:
            log.warning("groups.refresh_failed", groups=[str(g) for g in linked], error=str(exc))
            return 0

    async def follow_ratings(self) -> int:
        """Refresh the groups of photos rated since the position, and advance it."""
        doc = await self.params.get(PARAMS_ID)
        if doc is None:  # a deployment's first pass: every group was summarised when made
            last = await self.batches.last()
            await self.params.save(PARAMS_ID, {"followed_seq": int(last["_id"]) if last else 0})
            return 0
        seq, written = int(doc["followed_seq"]), 0
        for _ in range(0, BATCHES_PER_PASS, BATCH_READ):
            batches = await self.batches.after(seq, limit=BATCH_READ, fields={"ratings.id": 1})
            if not batches:
                break
            end, groups = await self._rated_groups(batches)
            written += await self.refresh(groups)
            if end > seq:
                seq = end
                await self.params.save(PARAMS_ID, {"followed_seq": seq})
            if end < int(batches[-1]["_id"]) or len(batches) < BATCH_READ:
                break  # caught up, or a batch's ratings are still being written
        return written

    async def _rated_groups(self, batches: list[Doc]) -> tuple[int, set[ObjectId]]:
        """The last batch whose ratings are all written, and the groups of the photos rated up to it."""
        touched: dict[ObjectId, int] = {}
        for batch in batches:
            batch_seq = int(batch["_id"])
            for row in batch.get("ratings") or []:
                touched[row["id"]] = max(touched.get(row["id"], 0), batch_seq)
        found = await self.photos.rated_groups(list(touched))
        end = int(batches[-1]["_id"])
        for photo_id, batch_seq in touched.items():
            if photo_id in found and found[photo_id][1] < batch_seq:  # that batch's write is not visible yet
                end = min(end, batch_seq - 1)
        groups = {group for photo_id, batch_seq in touched.items() if batch_seq <= end
                  and (group := found.get(photo_id, (None, 0))[0]) is not None}
        return end, groups
