"""Similarity-group membership: who joins, claims and merges, with single-document conditional writes.

A group is a connected set of photos, the links being what ingest passes to `join` (kept neighbours
above the group threshold, and a near-duplicate's original: `ml.pipelines.grouping`). Joining is
union-find over those links with three writes, none of which needs a transaction:

- a **claim** puts a photo without a group into one (compare-and-set on the absence of `group_id`);
- a **merge** marks the newer group `merged_into` the older (compare-and-set on it not having merged),
  then moves the newer group's members over (`move_group`): ids only ever point to older groups, so
  the links cannot cycle and the oldest id of a subject survives;
- after writing members into a group, the writer reads the group again and, if it merged meanwhile,
  moves them on (`_settle`). A merger marks before it moves, so any member written into a group either
  lands before the move (and is moved by it) or sees the mark afterwards (and moves itself).

Two batches in flight may each hold a photo that links to the other's while neither has a group yet.
`join` writes the photo's own group first and reads its links' groups after that write: of two photos
joining at once, at least the second to read sees the other's group, and a link found without a group
is claimed into ours. Ingest's neighbour search guarantees that of two such photos at least the one that
searched second holds the other in its list (`ml.pipelines.photo_vectors`), so every link is seen by a
join that can act on it, and two concurrent batches cannot leave one subject in two groups.

The size cap (`max_size`, photos holding a place: READY, PROCESSING or HIDDEN): a photo joins the
nearest linked group with room; when none has room it founds its own; two groups merge only when the
sum fits. Sizes are counted, not reserved, so photos joining one group at the same moment can pass the
cap by as many as join at once.

A photo that leaves (deletion: `remove_members`) does not split its group: members are linked when they
join, and a removed bridge leaves the two sides in one group until they are grouped again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog
from bson import ObjectId

from storage.base import Doc
from storage.groups import GroupRepository
from storage.photo_groups import PUBLIC
from storage.photos import PhotoRepository

log = structlog.get_logger(__name__)

# Merges retried against concurrent ones (each failed try means another merge of one of the two groups
# won, so the next try starts from a later state); only a storm of merges on one subject exhausts it.
MERGE_ATTEMPTS = 20


class GroupConflict(RuntimeError):
    """A merge lost its compare-and-set every time."""


def provisional_summary(photo: Mapping[str, object]) -> Doc:
    """A new group's listing before its first summary pass: the founding photo alone, listed (a rank) only
    when the photo is to be shown (one held back by moderation at ingest founds an unlisted group)."""
    rating = photo.get("rating")
    rank = rating.get("conservative") if isinstance(rating, Mapping) else None
    if rank is None or photo.get("status", PUBLIC) != PUBLIC:
        return {"size": 0}
    return {"size": 1, "leader": photo["_id"], "category": photo.get("category"), "rank": float(rank)}


class SimilarityGroups:
    def __init__(self, groups: GroupRepository, photos: PhotoRepository, *, max_size: int) -> None:
        self.groups = groups
        self.photos = photos
        self.max_size = max_size

    async def join(self, photo: Mapping[str, object], links: Sequence[ObjectId]) -> ObjectId | None:
        """Put a photo into the group of its links (nearest first), merging the groups it bridges, and
        claim its links that have none. Idempotent: a repeat finds every write done. The photo's group,
        or None when it cannot be in one (failed or deleted meanwhile)."""
        photo_id = photo["_id"]
        assert isinstance(photo_id, ObjectId)
        links = [link for link in dict.fromkeys(links) if link != photo_id]
        own = (await self.photos.group_links([photo_id])).get(photo_id)
        if own is None:
            own = await self._enter(photo, links)
            if own is None:
                return None
        # Read after our own write: a link that joined at the same time is seen here, or saw us.
        for link, group in (await self.photos.group_links(links)).items():
            if group is None:
                own = await self._claim(link, own)
            elif group != own:
                own = await self._union(own, group) or own
        return own

    async def remove_member(self, photo_id: ObjectId) -> ObjectId | None:
        """Take a photo out of its group (deletion calls this); the group's summary is stale until the
        next pass. The group it was in, None if none. Safe to repeat."""
        left = await self.photos.leave_group(photo_id)
        if left is not None:
            await self.groups.touch(await self.groups.root(left))
            log.info("group.member_removed", photo=str(photo_id), group=str(left))
        return left

    async def remove_members(self, photo_ids: Sequence[ObjectId]) -> dict[ObjectId, ObjectId]:
        """Take deleted photos out of their groups (`remove_member` for many: their groups read once, each
        group touched once); the group each was in, those in none absent. Safe to repeat."""
        left = await self.photos.leave_groups(photo_ids)
        groups = list(dict.fromkeys(left.values()))
        roots = await self.groups.roots(groups)
        await self.groups.touch_many([roots[g] for g in groups])
        for group in groups:
            log.info("group.members_removed", group=str(group),
                     photos=[str(p) for p, g in left.items() if g == group])
        return left

    async def _enter(self, photo: Mapping[str, object], links: Sequence[ObjectId]) -> ObjectId | None:
        """The photo's first group: the nearest linked group with room, else one of its own."""
        photo_id = photo["_id"]
        assert isinstance(photo_id, ObjectId)
        linked = await self.photos.group_links(links)
        target: ObjectId | None = None
        checked: set[ObjectId] = set()  # groups that lead to a full one: links often share a group
        for link in links:
            group = linked.get(link)
            if group is None or group in checked:
                continue
            root = await self.groups.root(group)
            if root not in checked and await self._has_room(root, 1):
                target = root
                break
            checked.update((group, root))
        founded = target is None
        if target is None:
            target = await self.groups.found(photo_id, provisional_summary(photo))
        group, claimed = await self.photos.claim_group(photo_id, target)
        if not claimed:  # claimed by a neighbour's join meanwhile: that is our group
            if founded:
                await self.groups.drop_unused(target)
            return group
        if not founded:
            await self.groups.touch(target)
        return await self._settle(target)

    async def _claim(self, link: ObjectId, own: ObjectId) -> ObjectId:
        """A link without a group joins ours (if it has room); if it got one meanwhile, the groups merge."""
        root = await self.groups.root(own)
        if not await self._has_room(root, 1):
            return root
        group, claimed = await self.photos.claim_group(link, root)
        if claimed:
            await self.groups.touch(root)
            return await self._settle(root)
        if group is not None and group != root:
            return await self._union(root, group) or root
        return root

    async def _union(self, a: ObjectId, b: ObjectId) -> ObjectId | None:
        """Merge the groups of `a` and `b` into the older one when together they fit; the group that
        holds `a`'s members afterwards, None when they stay apart (too large together)."""
        for _ in range(MERGE_ATTEMPTS):
            root_a, root_b = await self.groups.root(a), await self.groups.root(b)
            if root_a == root_b:
                return root_a
            sizes = [await self.photos.group_member_count(g) for g in (root_a, root_b)]
            if sum(sizes) > self.max_size:
                log.info("group.merge_too_large", groups=[str(root_a), str(root_b)], sizes=sizes, cap=self.max_size)
                return None
            target, loser = min(root_a, root_b), max(root_a, root_b)
            if await self.groups.mark_merged(loser, target):
                await self.photos.move_group(loser, target)
                await self.groups.touch(target)
                log.info("group.merged", group=str(loser), into=str(target))
                return await self._settle(target)
        raise GroupConflict(f"groups {a} and {b}: {MERGE_ATTEMPTS} merges lost in a row")

    async def _settle(self, group: ObjectId) -> ObjectId:
        """After writing members into `group`: if it merged meanwhile, move them to where it went."""
        while (into := await self.groups.merged_into(group)) is not None:
            if await self.photos.move_group(group, into):
                await self.groups.touch(into)
            group = into
        return group

    async def _has_room(self, group: ObjectId, adding: int) -> bool:
        return await self.photos.group_member_count(group) + adding <= self.max_size
