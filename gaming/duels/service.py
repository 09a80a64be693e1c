"""Duel tickets, votes and skips: what the GraphQL resolvers call.

A ticket binds one pair to one player for a limited time and is good for one answer (vote or skip).
It is signed, not stored (`gaming.duels.tickets`), so `nextDuel` writes nothing; `voteDuel` and
`skipDuel` write one document each (`storage.votes`), and no request writes a rating: the projector
does (`gaming.duels.projector`). The rules are checked in the order a client can act on: unknown ->
NOT_FOUND, someone else's -> FORBIDDEN, already answered -> ALREADY_VOTED (or, for the very same vote
repeated, the first result: a client retrying after a timeout must not see an error for a vote that
counted), expired -> DUEL_EXPIRED, a photo no longer READY (deleted or held back since the ticket was
issued) -> NOT_FOUND: a ticket is signed, not stored, so a vote re-reads both photos' status (at the same
time as the voter's history) rather than trust the catalogue the ticket was drawn from.
That answer path is `gaming.duels.answers`'s, shared with series rounds.

What `VoteOutcome.left/right` carry: the photos with the ratings the projector computed for this very
vote when it applied it within `result_wait_seconds` (it usually does, within a batch), and then
`applied` is True; otherwise the photos as stored (without this vote yet) and `applied` False: the
vote is logged and will be applied, the client may read the photo again later.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId

from gaming.duels.answers import (
    Answering,
    AnswerLog,
    DuelAlreadyAnswered,
    DuelError,
    DuelExpired,
    DuelNotFound,
    DuelsUnavailable,
    NotYourDuel,
    Wording,
    to_millis,
)
from gaming.duels.catalogue import CatalogueLoading
from gaming.duels.feed import RatingFeed
from gaming.duels.matchmaker import Matchmaker
from gaming.duels.tickets import InvalidTicket, Ticket, TicketSigner
from gaming.ratings import Outcome
from storage.clock import utcnow
from storage.photos import DELETED, PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.votes import SKIP, VoteRepository, pair_key

# The refusals and `to_millis` live in `gaming.duels.answers`; callers keep importing them from here.
__all__ = [
    "MAX_SEASONED_PLAYERS",
    "DuelAlreadyAnswered",
    "DuelError",
    "DuelExpired",
    "DuelNotFound",
    "DuelService",
    "DuelsUnavailable",
    "IssuedDuel",
    "NotYourDuel",
    "VoteOutcome",
    "to_millis",
]

log = structlog.get_logger(__name__)

MAX_SEASONED_PLAYERS = 100_000

WORDING = Wording(
    expired="this duel has expired: ask for the next one",
    gone="a photo of this duel is no longer in play: ask for the next one",
    judged="you already judged this pair",
    skipped="this duel was skipped",
    otherwise="this duel was already answered with {choice}",
    answered="this duel was already voted on",
)


@dataclass(frozen=True)
class VoteOutcome:
    accepted: bool  # False when this call repeated a vote that was already counted
    applied: bool  # True when left/right carry the ratings right after this vote
    left: dict[str, Any]
    right: dict[str, Any]


@dataclass(frozen=True)
class IssuedDuel:
    id: str
    ticket: Ticket
    left: dict[str, Any]
    right: dict[str, Any]


class DuelService:
    def __init__(self, photos: PhotoRepository, votes: VoteRepository, batches: RatingBatchRepository,
                 matchmaker: Matchmaker, signer: TicketSigner, feed: RatingFeed, *, ttl_seconds: int,
                 result_wait_seconds: float = 0.5, on_vote: Callable[[dict[str, Any]], None] = lambda vote: None,
                 rng: random.Random | None = None, history_needed: int = 0,
                 blocked_owners: Callable[[str], Awaitable[Sequence[str]]] | None = None) -> None:
        """`blocked_owners`: the users a player blocked, whose photos matchmaking leaves out for them."""
        self.photos = photos
        self.blocked_owners = blocked_owners
        self.votes = votes
        self.batches = batches
        self.matchmaker = matchmaker
        self.signer = signer
        self.ttl = timedelta(seconds=ttl_seconds)
        self.on_vote = on_vote  # hands the vote to an in-process projector
        self.rng = rng or random.SystemRandom()
        # how many of a voter's earlier votes are counted into a vote (the weighting needs no more)
        self.history_needed = history_needed
        # Players known to have cast `history_needed` votes: their count can only stay there, so it is not
        # read again (a vote's cheapest path is one read and one write). Bounded: forgetting costs a count.
        self._seasoned: set[str] = set()
        self.answers = AnswerLog(photos, votes, batches, feed, history=self.history,
                                 result_wait_seconds=result_wait_seconds, wording=WORDING)

    async def history(self, player: str) -> int:
        """The player's earlier votes, counted up to `history_needed` (what `count_for_player` returns)."""
        if player in self._seasoned:
            return self.history_needed
        history = await self.votes.count_for_player(player, limit=self.history_needed)
        if history >= self.history_needed:
            if len(self._seasoned) >= MAX_SEASONED_PLAYERS:
                self._seasoned.clear()
            self._seasoned.add(player)
        return history

    async def next_duel(self, player: str, category: str | None) -> IssuedDuel | None:
        """A signed ticket and its two photos, or None when no pair is possible for this player."""
        blocked = await self.blocked_owners(player) if self.blocked_owners is not None else ()
        try:
            pairing = await self.matchmaker.pick(player, category, excluding_owners=blocked)
        except CatalogueLoading as exc:
            raise DuelsUnavailable(str(exc)) from None
        if pairing is None:
            return None
        anchor_left = self.rng.random() < 0.5
        left, right = (pairing.anchor, pairing.opponent) if anchor_left else (pairing.opponent, pairing.anchor)
        return self.issue(player, left, right, anchor_left=anchor_left, similarity=pairing.similarity,
                          category=category)

    def issue(self, player: str, left: Mapping[str, Any], right: Mapping[str, Any], *, anchor_left: bool = True,
              similarity: float | None = None, category: str | None = None,
              expires_at: datetime | None = None) -> IssuedDuel:
        """Sign a ticket for this pair; sides are recorded so position bias can be measured."""
        expiry = (expires_at or utcnow() + self.ttl).replace(microsecond=0)
        ticket = Ticket(nonce=ObjectId(), player=player, left=left["_id"], right=right["_id"], expires_at=expiry,
                        anchor_left=anchor_left, similarity=similarity, category=category)
        return IssuedDuel(id=self.signer.sign(ticket), ticket=ticket, left=dict(left), right=dict(right))

    def _ticket_for(self, duel_id: str, player: str) -> Ticket:
        try:
            ticket = self.signer.verify(duel_id)
        except InvalidTicket:
            raise DuelNotFound("no such duel") from None
        if ticket.player != player:
            raise NotYourDuel("this duel was issued to another player")
        return ticket

    def _answer(self, ticket: Ticket, choice: str) -> dict[str, Any]:
        return {
            "_id": ticket.nonce, "player": ticket.player, "left": ticket.left, "right": ticket.right,
            "pair": pair_key(ticket.left, ticket.right), "choice": choice, "category": ticket.category,
            "anchor_side": "LEFT" if ticket.anchor_left else "RIGHT", "similarity": ticket.similarity,
            "created_at": to_millis(utcnow()),  # as stored: the projector compares the two
        }

    @staticmethod
    def _answering(ticket: Ticket) -> Answering:
        return Answering(nonce=ticket.nonce, player=ticket.player, photos=(ticket.left, ticket.right),
                         keys=(pair_key(ticket.left, ticket.right),), expires_at=ticket.expires_at)

    async def vote(self, duel_id: str, player: str, choice: Outcome, *, anonymous: bool = False) -> VoteOutcome:
        """`anonymous`: an anonymous Firebase account. It is recorded with the vote, with how many votes
        the player cast before (up to `history_needed`): what the vote's weight is computed from
        (`gaming.vote_weights`), by the projector and by any replay alike."""
        ticket = self._ticket_for(duel_id, player)

        def accepted(answer: dict[str, Any]) -> None:
            self.on_vote(answer)
            log.info("duel.voted", duel=str(ticket.nonce), choice=choice.value)

        return await self.answers.vote(
            self._answering(ticket), lambda: self._answer(ticket, choice.value), anonymous=anonymous,
            same=lambda first: first["choice"] == choice.value, accepted=accepted,
            result=lambda fresh, waiting: self._result(ticket, accepted=fresh, waiting=waiting))

    async def _result(self, ticket: Ticket, *, accepted: bool,
                      waiting: asyncio.Future[dict[str, Any]] | None) -> VoteOutcome:
        # the photos are read while the projector works; their ratings are then replaced by the result
        photos, entry = await asyncio.gather(self.photos.get_many([ticket.left, ticket.right]),
                                              self.answers.entry(ticket.nonce, waiting))
        left, right = photos
        # deleted since the vote's own check (the vote stays in the log, as every vote on a deleted photo does):
        # a tombstone is shown to no one
        if left is None or right is None or DELETED in (left["status"], right["status"]):
            raise DuelNotFound("a photo of this duel no longer exists")
        if entry is None or entry.get("gone"):
            return VoteOutcome(accepted=accepted, applied=False, left=left, right=right)
        return VoteOutcome(accepted=accepted, applied=True, left={**left, "rating": entry["left_rating"]},
                           right={**right, "rating": entry["right_rating"]})

    async def skip(self, duel_id: str, player: str) -> bool:
        """Pass on a duel (its pair is not offered again); an expired one may be skipped."""
        ticket = self._ticket_for(duel_id, player)
        return await self.answers.skip(self._answering(ticket), lambda: self._answer(ticket, SKIP))
