"""Duel tickets, votes and skips: what the GraphQL resolvers call.

A ticket binds one pair to one player for a limited time and is good for one answer (vote or skip).
It is signed, not stored (`gaming.duels.tickets`), so `nextDuel` writes nothing; `voteDuel` and
`skipDuel` write one document each (`storage.votes`), and no request writes a rating: the projector
does (`gaming.duels.projector`). The rules are checked in the order a client can act on: unknown ->
NOT_FOUND, someone else's -> FORBIDDEN, already answered -> ALREADY_VOTED (or, for the very same vote
repeated, the first result: a client retrying after a timeout must not see an error for a vote that
counted), expired -> DUEL_EXPIRED.

What `VoteOutcome.left/right` carry: the photos with the ratings the projector computed for this very
vote when it applied it within `result_wait_seconds` (it usually does, within a batch), and then
`applied` is True; otherwise the photos as stored (without this vote yet) and `applied` False: the
vote is logged and will be applied, the client may read the photo again later.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from gaming.duels.catalogue import CatalogueLoading
from gaming.duels.feed import RatingFeed
from gaming.duels.matchmaker import Matchmaker
from gaming.duels.tickets import InvalidTicket, Ticket, TicketSigner
from gaming.ratings import Outcome
from storage.clock import utcnow
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.votes import SKIP, VoteRepository, pair_key

log = structlog.get_logger(__name__)

MAX_SEASONED_PLAYERS = 100_000


class DuelError(Exception):
    """A duel request the rules refuse; `code` is the error code the client acts on (the API passes it on)."""

    code = "BAD_USER_INPUT"

    def __init_subclass__(cls, *, code: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = code


class DuelNotFound(DuelError, code="NOT_FOUND"):
    """No such duel (a ticket this service did not sign), or one of its photos is gone."""


class NotYourDuel(DuelError, code="FORBIDDEN"):
    """The ticket was issued to another player."""


class DuelAlreadyAnswered(DuelError, code="ALREADY_VOTED"):
    """The pair was already judged or skipped by this player."""


class DuelExpired(DuelError, code="DUEL_EXPIRED"):
    """The ticket's time ran out: ask for the next duel."""


class DuelsUnavailable(DuelError, code="UNAVAILABLE"):
    """Matchmaking is still loading its catalogue: retry."""


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


def _to_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class DuelService:
    def __init__(self, photos: PhotoRepository, votes: VoteRepository, batches: RatingBatchRepository,
                 matchmaker: Matchmaker, signer: TicketSigner, feed: RatingFeed, *, ttl_seconds: int,
                 result_wait_seconds: float = 0.5, on_vote: Callable[[dict[str, Any]], None] = lambda vote: None,
                 rng: random.Random | None = None, history_needed: int = 0) -> None:
        self.photos = photos
        self.votes = votes
        self.batches = batches
        self.matchmaker = matchmaker
        self.signer = signer
        self.feed = feed
        self.ttl = timedelta(seconds=ttl_seconds)
        self.result_wait_seconds = result_wait_seconds
        self.on_vote = on_vote  # hands the vote to an in-process projector
        self.rng = rng or random.SystemRandom()
        # how many of a voter's earlier votes are counted into a vote (the weighting needs no more)
        self.history_needed = history_needed
        # Players known to have cast `history_needed` votes: their count can only stay there, so it is not
        # read again (a vote's cheapest path is one read and one write). Bounded: forgetting costs a count.
        self._seasoned: set[str] = set()

    async def _history(self, player: str) -> int:
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
        try:
            pairing = await self.matchmaker.pick(player, category)
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
            "created_at": _to_millis(utcnow()),  # as stored: the projector compares the two
        }

    async def _existing(self, ticket: Ticket) -> dict[str, Any] | None:
        """The answer already given to this ticket's pair by this player (to this or another ticket)."""
        return await self.votes.for_player_pair(ticket.player, pair_key(ticket.left, ticket.right))

    async def vote(self, duel_id: str, player: str, choice: Outcome, *, anonymous: bool = False) -> VoteOutcome:
        """`anonymous`: an anonymous Firebase account. It is recorded with the vote, with how many votes
        the player cast before (up to `history_needed`): what the vote's weight is computed from
        (`gaming.vote_weights`), by the projector and by any replay alike."""
        ticket = self._ticket_for(duel_id, player)
        # The common case, a first answer, costs a bounded count and one write: a repeat shows as a
        # duplicate key.
        existing = await self._existing(ticket) if ticket.expired(utcnow()) else None
        if existing is None:
            if ticket.expired(utcnow()):
                raise DuelExpired("this duel has expired: ask for the next one")
            history = await self._history(player)
            waiting = self.feed.expect(ticket.nonce)
            try:
                answer = {**self._answer(ticket, choice.value), "anonymous": anonymous, "history": history}
                await self.votes.insert(answer)
                self.on_vote(answer)
                log.info("duel.voted", duel=str(ticket.nonce), choice=choice.value)
                return await self._result(ticket, accepted=True, waiting=waiting)
            except DuplicateKeyError:  # answered before (a retry, a skip, another ticket for the pair)
                existing = await self._existing(ticket)
                if existing is None:
                    raise
            finally:
                self.feed.forget(ticket.nonce)
        if existing["_id"] != ticket.nonce:
            raise DuelAlreadyAnswered("you already judged this pair")
        if existing["choice"] == SKIP:
            raise DuelAlreadyAnswered("this duel was skipped")
        if existing["choice"] != choice.value:
            raise DuelAlreadyAnswered(f"this duel was already answered with {existing['choice']}")
        return await self._result(ticket, accepted=False, waiting=None)

    async def _result(self, ticket: Ticket, *, accepted: bool,
                      waiting: asyncio.Future[dict[str, Any]] | None) -> VoteOutcome:
        async def result() -> dict[str, Any] | None:
            if waiting is None:
                return await self.batches.entry_for(ticket.nonce)
            try:
                return await asyncio.wait_for(asyncio.shield(waiting), self.result_wait_seconds)
            except TimeoutError:
                return None

        # the photos are read while the projector works; their ratings are then replaced by the result
        photos, entry = await asyncio.gather(self.photos.get_many([ticket.left, ticket.right]), result())
        left, right = photos
        if left is None or right is None:
            raise DuelNotFound("a photo of this duel no longer exists")
        if entry is None or entry.get("gone"):
            return VoteOutcome(accepted=accepted, applied=False, left=left, right=right)
        return VoteOutcome(accepted=accepted, applied=True, left={**left, "rating": entry["left_rating"]},
                           right={**right, "rating": entry["right_rating"]})

    async def skip(self, duel_id: str, player: str) -> bool:
        ticket = self._ticket_for(duel_id, player)
        existing = await self._existing(ticket)
        if existing is None:  # an expired ticket may still be skipped: its pair is not offered again
            try:
                await self.votes.insert(self._answer(ticket, SKIP))
                return True
            except DuplicateKeyError:
                existing = await self._existing(ticket)
                if existing is None:
                    raise
        if existing["_id"] == ticket.nonce and existing["choice"] == SKIP:
            return True
        raise DuelAlreadyAnswered("this duel was already voted on")
