"""Duel tickets, votes and promotion: what the GraphQL resolvers call.

A ticket binds one pair to one player for a limited time and is good for one answer (vote or skip).
The rules are checked in the order a client can act on: unknown -> NOT_FOUND, someone else's ->
FORBIDDEN, already answered -> ALREADY_VOTED (or, for the very same vote repeated, the first result:
a client retrying after a timeout must not see an error for a vote that counted), expired ->
DUEL_EXPIRED.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from gaming.duels.matchmaker import Matchmaker
from gaming.duels.votes import VoteLog, pair_key
from gaming.ratings import Outcome

log = structlog.get_logger(__name__)

OPEN, VOTED, SKIPPED = "open", "voted", "skipped"


class DuelError(Exception):
    code = "BAD_USER_INPUT"


class DuelNotFound(DuelError):
    code = "NOT_FOUND"


class NotYourDuel(DuelError):
    code = "FORBIDDEN"


class DuelAlreadyAnswered(DuelError):
    code = "ALREADY_VOTED"


class DuelExpired(DuelError):
    code = "DUEL_EXPIRED"


@dataclass(frozen=True)
class VoteOutcome:
    accepted: bool  # False when this call repeated a vote that was already counted
    left: dict[str, Any]
    right: dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC)


class DuelService:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], matchmaker: Matchmaker, votes: VoteLog, *,
                 ttl_seconds: int, rng: random.Random | None = None) -> None:
        self.duels = db["duels"]
        self.judged = db["judged"]
        self.photos = db["photos"]
        self.matchmaker = matchmaker
        self.votes = votes
        self.ttl = timedelta(seconds=ttl_seconds)
        self.rng = rng or random.SystemRandom()

    async def next_duel(self, player: str, category: str | None) -> tuple[dict[str, Any], dict[str, Any],
                                                                            dict[str, Any]] | None:
        """(ticket, left photo, right photo), or None when no pair is possible for this player."""
        pairing = await self.matchmaker.pick(player, category)
        if pairing is None:
            return None
        anchor_left = self.rng.random() < 0.5
        left, right = (pairing.anchor, pairing.opponent) if anchor_left else (pairing.opponent, pairing.anchor)
        ticket = await self.issue(player, left, right, anchor=pairing.anchor, similarity=pairing.similarity,
                                  category=category)
        return ticket, left, right

    async def issue(self, player: str, left: Mapping[str, Any], right: Mapping[str, Any], *,
                    anchor: Mapping[str, Any] | None = None, similarity: float | None = None,
                    category: str | None = None) -> dict[str, Any]:
        """Store a ticket for this pair; positions are recorded so position bias can be measured."""
        created = now()
        anchor_id = (anchor or left)["_id"]
        ticket = {
            "_id": ObjectId(), "player": player, "left": left["_id"], "right": right["_id"],
            "anchor": anchor_id, "anchor_side": "LEFT" if anchor_id == left["_id"] else "RIGHT",
            "similarity": similarity, "neighbour_pair": similarity is not None,
            "category": category, "state": OPEN, "created_at": created, "expires_at": created + self.ttl,
        }
        await self.duels.insert_one(ticket)
        await self.photos.update_many({"_id": {"$in": [left["_id"], right["_id"]]}}, {"$inc": {"duels": 1}})
        return ticket

    async def _ticket_for(self, duel_id: ObjectId | None, player: str) -> dict[str, Any]:
        ticket = await self.duels.find_one({"_id": duel_id}) if duel_id is not None else None
        if ticket is None:
            raise DuelNotFound("no such duel")
        if ticket["player"] != player:
            raise NotYourDuel("this duel was issued to another player")
        return ticket

    async def _photos(self, ticket: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        left = await self.photos.find_one({"_id": ticket["left"]})
        right = await self.photos.find_one({"_id": ticket["right"]})
        if left is None or right is None:
            raise DuelNotFound("a photo of this duel no longer exists")
        return left, right

    async def vote(self, duel_id: ObjectId | None, player: str, choice: Outcome) -> VoteOutcome:
        ticket = await self._ticket_for(duel_id, player)
        existing = await self.votes.votes.find_one({"duel_id": ticket["_id"]})
        if existing is not None:
            return await self._repeat(existing, choice)
        if ticket["state"] == SKIPPED:
            raise DuelAlreadyAnswered("this duel was skipped")
        if ticket["expires_at"] <= now():
            raise DuelExpired("this duel has expired: ask for the next one")
        vote, created = await self.votes.append(ticket, choice)
        if not created:  # a concurrent retry won the race
            return await self._repeat(vote, choice)
        await self.duels.update_one({"_id": ticket["_id"]}, {"$set": {"state": VOTED, "answered_at": now()}})
        await self.judged.update_one(
            {"player": player, "pair": pair_key(ticket["left"], ticket["right"])},
            {"$setOnInsert": {"at": now()}}, upsert=True,
        )
        await self.votes.apply(vote["_id"])
        left, right = await self._photos(ticket)
        log.info("duel.voted", duel=str(ticket["_id"]), choice=choice.value)
        return VoteOutcome(accepted=True, left=left, right=right)

    async def _repeat(self, vote: Mapping[str, Any], choice: Outcome) -> VoteOutcome:
        if vote["choice"] != choice.value:
            raise DuelAlreadyAnswered(f"this duel was already answered with {vote['choice']}")
        if vote.get("applied_seq") is None:  # the first call died before applying it
            await self.votes.apply(vote["_id"])
        left, right = await self._photos({"left": vote["left"], "right": vote["right"]})
        return VoteOutcome(accepted=False, left=left, right=right)

    async def skip(self, duel_id: ObjectId | None, player: str) -> bool:
        ticket = await self._ticket_for(duel_id, player)
        if ticket["state"] == SKIPPED:
            return True
        if ticket["state"] == VOTED:
            raise DuelAlreadyAnswered("this duel was already voted on")
        updated = await self.duels.find_one_and_update(
            {"_id": ticket["_id"], "state": OPEN}, {"$set": {"state": SKIPPED, "answered_at": now()}},
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            raise DuelAlreadyAnswered("this duel was already voted on")
        # A skipped pair is not offered to this player again either.
        await self.judged.update_one(
            {"player": player, "pair": pair_key(ticket["left"], ticket["right"])},
            {"$setOnInsert": {"at": now(), "skipped": True}}, upsert=True,
        )
        return True
