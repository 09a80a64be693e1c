"""Similarity groups as players see them: members, the best photo, and whether it is settled.

A group's **best** photo is its leader, the READY member with the highest conservative skill (what
leaderboards sort by), and it is **settled** when the leader has enough votes and a low sigma (the
featured rules) and no other member is likely to beat it by more than the indifference margin
(`gaming.contenders.leader_settled`, the rule group duels play towards). Until then the leader is
shown as the provisional best with `settled` false.

A photo's group is read live (its members are one indexed read on `group_id`), so `Photo.group` is as
fresh as the ratings. The listing of groups (`ranked`) is ordered by a stored rank, each group's best
photo's conservative skill as of its last summary (`gaming.duels.group_ranks`, a worker chore), because
that order must come from an index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from bson import ObjectId

from gaming.contenders import GroupPolicy, group_leader, leader_settled
from gaming.ratings import RatingEnv
from storage.base import Doc
from storage.groups import GroupRepository
from storage.pagination import Page
from storage.photos import BEST, PhotoRepository

# What a group's view reads of each member (the best photo itself is then loaded whole, by id).
MEMBER_FIELDS = ("rating", "category", "owner")


@dataclass(frozen=True)
class GroupView:
    id: ObjectId
    members: tuple[Doc, ...]  # READY members, best first (only MEMBER_FIELDS, `_id` and `group_id`)
    settled: bool

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def best(self) -> Doc | None:
        return self.members[0] if self.members else None

    def summary(self) -> Doc | None:
        """What the listing stores of the group; None when it has no READY member."""
        best = self.best
        if best is None:
            return None
        return {"size": self.size, "leader": best["_id"], "category": best.get("category"),
                "rank": float(best["rating"]["conservative"])}


def group_view(group_id: ObjectId, members: Iterable[Doc], env: RatingEnv, policy: GroupPolicy) -> GroupView:
    """The group as shown: rated members best first (the leader first), and whether the leader is settled."""
    rated = sorted((m for m in members if m.get("rating")),
                   key=lambda m: (float(m["rating"]["conservative"]), m["_id"]), reverse=True)
    if not rated:
        return GroupView(id=group_id, members=(), settled=False)
    mu = np.array([float(m["rating"]["mu"]) for m in rated])
    sigma = np.array([float(m["rating"]["sigma"]) for m in rated])
    votes = np.array([int(m["rating"].get("votes", 0)) for m in rated])
    leader = group_leader(mu, sigma, env)  # the rule's leader first, should rounding have put another first
    members = (rated[leader], *(m for i, m in enumerate(rated) if i != leader))
    return GroupView(id=group_id, members=members, settled=leader_settled(mu, sigma, votes, env, policy))


class GroupReads:
    def __init__(self, groups: GroupRepository, photos: PhotoRepository, env: RatingEnv, policy: GroupPolicy) -> None:
        self.groups = groups
        self.photos = photos
        self.env = env
        self.policy = policy

    async def views(self, group_ids: Sequence[ObjectId]) -> dict[ObjectId, GroupView]:
        """Each group's view, from one read of all their READY members."""
        by_group: dict[ObjectId, list[Doc]] = {g: [] for g in group_ids}
        for member in await self.photos.group_members(list(by_group), MEMBER_FIELDS):
            by_group.setdefault(member["group_id"], []).append(member)
        return {g: group_view(g, members, self.env, self.policy) for g, members in by_group.items()}

    async def ranked(self, category: str | None, *, first: int, after: str | None) -> Page:
        """Groups with a READY member, best photo's conservative skill first; raises InvalidCursor."""
        return await self.groups.ranked_page(category, first=first, after=after)

    async def members(self, group_id: ObjectId, *, first: int, after: str | None,
                      excluding_owners: Sequence[str] = ()) -> Page:
        """A page of the group's READY members, best first, none of `excluding_owners` (the viewer's blocked
        users); raises InvalidCursor."""
        return await self.photos.group_page(group_id, BEST, first=first, after=after,
                                            excluding_owners=excluding_owners)

    async def tops(self, query: Mapping[str, Any], group_ids: Sequence[ObjectId]) -> dict[ObjectId, ObjectId]:
        """Each group's best photo among those matching a promotion filter (`storage.photos.Settled`)."""
        return await self.photos.group_tops(query, group_ids)
