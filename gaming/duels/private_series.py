"""The photographer's series: an owner compares their own photos of one similarity group, privately.

`nextSeriesDuel(groupId)` gives the owner a duel between two of their READY photos in that group (a group
that merged since leads to the one that took its members); anyone else, even a player who may see the
group, is refused (FORBIDDEN), and an unknown or empty group is NOT_FOUND. The ticket is signed as a
PRIVATE series ticket (`gaming.duels.series_tickets`), which `voteDuel` cannot verify, and the verdict goes
into the owner's own log (`storage.series_votes`), never into the public one: no projector reads it, so a
public `rating` cannot move. The owner's ranking (`Photo.seriesRank`) is a projection of that log,
computed when read (`gaming.private_series`). The answer rules are the duel's: unknown -> NOT_FOUND,
another's -> FORBIDDEN, answered -> ALREADY_VOTED (the same verdict repeated is accepted once, then
reported as repeated), expired -> DUEL_EXPIRED, a photo no longer READY -> NOT_FOUND.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import structlog
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from gaming.contenders import DEFAULT_GROUP_POLICY, GroupPolicy
from gaming.duels.answers import DuelAlreadyAnswered, DuelError, DuelExpired, DuelNotFound, NotYourDuel, to_millis
from gaming.duels.series_tickets import InvalidSeriesTicket, SeriesKind, SeriesTicket, SeriesTicketSigner
from gaming.private_series import private_pair, ranks, replay
from gaming.ratings import Outcome, Rating, RatingEnv, prior_rating
from storage.clock import utcnow
from storage.photos import PhotoRepository
from storage.series_votes import SeriesVoteRepository
from storage.votes import pair_key

log = structlog.get_logger(__name__)

# What the series reads of each member of the group.
MEMBER_FIELDS = ("owner", "quality.score")


class NotYourSeries(DuelError, code="FORBIDDEN"):
    """The caller owns no photo of this group: only its photographers compare their own photos in it."""


@dataclass(frozen=True)
class SeriesRank:
    rank: int  # 1: the owner's best photo of the group
    size: int  # the owner's READY photos in the group
    votes: int  # the owner's verdicts that involved this photo


@dataclass(frozen=True)
class OwnerSeries:
    """One owner's READY photos of one group, with their private ratings."""

    photos: tuple[ObjectId, ...]
    ratings: dict[ObjectId, Rating]
    votes: dict[ObjectId, int]
    judged: set[str] = field(default_factory=set)

    def rank_of(self, photo_id: ObjectId, env: RatingEnv) -> SeriesRank | None:
        """None for a photo not in the series, or a series of fewer than two photos."""
        if photo_id not in self.ratings or len(self.photos) < 2:
            return None
        return SeriesRank(rank=ranks(self.ratings, env)[photo_id], size=len(self.photos),
                          votes=self.votes.get(photo_id, 0))


@dataclass(frozen=True)
class IssuedPrivateDuel:
    id: str
    ticket: SeriesTicket
    left: dict[str, Any]
    right: dict[str, Any]


@dataclass(frozen=True)
class PrivateOutcome:
    accepted: bool  # False when this repeated a verdict already recorded
    left: dict[str, Any]
    right: dict[str, Any]


class PrivateSeries:
    def __init__(self, photos: PhotoRepository, verdicts: SeriesVoteRepository, signer: SeriesTicketSigner,
                 env: RatingEnv, *, resolve_group: Callable[[ObjectId], Awaitable[ObjectId]], ttl_seconds: int,
                 policy: GroupPolicy = DEFAULT_GROUP_POLICY, rng: random.Random | None = None) -> None:
        """`resolve_group`: the group that holds a group id's members now (itself, or where merges led)."""
        self.photos = photos
        self.verdicts = verdicts
        self.signer = signer
        self.env = env
        self.resolve_group = resolve_group
        self.ttl = timedelta(seconds=ttl_seconds)
        self.policy = policy
        self.rng = rng or random.SystemRandom()

    async def series(self, owner: str, group_id: ObjectId, members: Sequence[dict[str, Any]] | None = None,
                     verdicts: Sequence[dict[str, Any]] | None = None) -> OwnerSeries:
        """The owner's series in a group (`members`: the group's READY members, and `verdicts`: the owner's
        verdicts on their pairs in it, in the order given, when read already)."""
        if members is None:
            members = await self.photos.group_members([group_id], MEMBER_FIELDS)
        own = _own(owner, members)
        ids = tuple(m["_id"] for m in own)
        if verdicts is None:
            verdicts = await self.verdicts.for_pairs(owner, _pairs(ids))
        priors = {m["_id"]: prior_rating((m.get("quality") or {}).get("score"), self.env) for m in own}
        ratings = replay(priors, [(v["left"], v["right"], Outcome(v["choice"])) for v in verdicts], self.env)
        votes: dict[ObjectId, int] = {}
        for v in verdicts:
            for photo_id in (v["left"], v["right"]):
                votes[photo_id] = votes.get(photo_id, 0) + 1
        return OwnerSeries(photos=ids, ratings=ratings, votes=votes, judged={v["pair"] for v in verdicts})

    async def next_duel(self, owner: str, group_id: ObjectId) -> IssuedPrivateDuel | None:
        """Two of the owner's photos of this group to compare; None when fewer than two, or every pair
        of them is judged."""
        group_id = await self.resolve_group(group_id)
        members = await self.photos.group_members([group_id], MEMBER_FIELDS)
        if not members:
            raise DuelNotFound("no such group")
        if not any(m.get("owner") == owner for m in members):
            raise NotYourSeries("only the photographers of this group can compare their photos in it")
        series = await self.series(owner, group_id, members)
        ids = series.photos
        if len(ids) < 2:
            return None
        open_pairs = np.array([[a != b and pair_key(a, b) not in series.judged for b in ids] for a in ids])
        mu = np.array([series.ratings[i].mu for i in ids])
        sigma = np.array([series.ratings[i].sigma for i in ids])
        pair = private_pair(mu, sigma, open_pairs, self.env, self.rng, self.policy)
        if pair is None:
            return None
        shown = [ids[pair[0]], ids[pair[1]]]
        self.rng.shuffle(shown)
        docs = await self.photos.get_many(shown)
        left, right = docs
        if left is None or right is None:
            return None
        ticket = SeriesTicket(kind=SeriesKind.PRIVATE, nonce=ObjectId(), player=owner, photos=tuple(shown),
                              expires_at=(utcnow() + self.ttl).replace(microsecond=0), group=group_id)
        return IssuedPrivateDuel(id=self.signer.sign(ticket), ticket=ticket, left=left, right=right)

    def _ticket_for(self, duel_id: str, owner: str) -> SeriesTicket:
        try:
            ticket = self.signer.verify(duel_id)
        except InvalidSeriesTicket:
            raise DuelNotFound("no such series duel") from None
        if ticket.kind is not SeriesKind.PRIVATE or len(ticket.photos) != 2:
            raise DuelNotFound("no such series duel")
        if ticket.player != owner:
            raise NotYourDuel("this series duel was issued to another player")
        return ticket

    async def vote(self, duel_id: str, owner: str, choice: Outcome) -> PrivateOutcome:
        """Record the owner's verdict in their private log (one insert)."""
        ticket = self._ticket_for(duel_id, owner)
        left_id, right_id = ticket.photos
        pair = pair_key(left_id, right_id)
        existing = await self.verdicts.for_owner_pair(owner, pair) if ticket.expired(utcnow()) else None
        if existing is None:
            if ticket.expired(utcnow()):
                raise DuelExpired("this series duel has expired: ask for the next one")
            if len(await self.photos.ready_ids([left_id, right_id])) < 2:
                raise DuelNotFound("a photo of this series duel is no longer in play")
            try:
                await self.verdicts.insert({
                    "_id": ticket.nonce, "owner": owner, "group": ticket.group, "left": left_id, "right": right_id,
                    "pair": pair, "choice": choice.value, "created_at": to_millis(utcnow()),
                })
                log.info("series_duel.voted", duel=str(ticket.nonce), choice=choice.value)
                return await self._outcome(ticket, accepted=True)
            except DuplicateKeyError:
                existing = await self.verdicts.for_owner_pair(owner, pair)
                if existing is None:
                    raise
        if existing["_id"] != ticket.nonce:
            raise DuelAlreadyAnswered("you already compared these two photos")
        if existing["choice"] != choice.value:
            raise DuelAlreadyAnswered(f"this series duel was already answered with {existing['choice']}")
        return await self._outcome(ticket, accepted=False)

    async def _outcome(self, ticket: SeriesTicket, *, accepted: bool) -> PrivateOutcome:
        left, right = await self.photos.get_many(list(ticket.photos))
        if left is None or right is None:
            raise DuelNotFound("a photo of this series duel no longer exists")
        return PrivateOutcome(accepted=accepted, left=left, right=right)

    async def ranks(self, keys: Sequence[tuple[str, ObjectId]]) -> list[OwnerSeries]:
        """Each (owner, group)'s series, in the order of `keys`: what `Photo.seriesRank`'s loader needs.
        Two reads in all: the groups' members, then every owner's verdicts on their pairs."""
        members = await self.photos.group_members(list({g for _, g in keys}), MEMBER_FIELDS)
        by_group: dict[ObjectId, list[dict[str, Any]]] = {}
        for m in members:  # READY ones only
            by_group.setdefault(m["group_id"], []).append(m)
        wanted = [(owner, _pairs([m["_id"] for m in _own(owner, by_group.get(group, []))]))
                  for owner, group in keys]
        by_owner: dict[str, list[dict[str, Any]]] = {}
        for v in await self.verdicts.for_owner_pairs(wanted):  # in the order given
            by_owner.setdefault(v["owner"], []).append(v)
        result = []
        for (owner, group), (_, pairs) in zip(keys, wanted, strict=True):
            own_pairs = set(pairs)
            verdicts = [v for v in by_owner.get(owner, []) if v["pair"] in own_pairs]
            result.append(await self.series(owner, group, by_group.get(group, []), verdicts))
        return result


def _own(owner: str, members: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The owner's members of a group, by id: a series' photos, in a stable order."""
    return sorted((m for m in members if m.get("owner") == owner), key=lambda m: m["_id"])


def _pairs(ids: Sequence[ObjectId]) -> list[str]:
    """The pair keys of every two of a series' photos: what its verdicts are looked up by."""
    return [pair_key(a, b) for a, b in itertools.combinations(ids, 2)]
