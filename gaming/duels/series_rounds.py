"""Series rounds: several photos side by side, "pick the best" (or put them in order), rated publicly.

One pick among k photos says more than one duel vote (bench/ranking_sim.py --series: BENCHMARKS.md,
"Series rounds"), so players who want fewer, richer taps get rounds. A round travels the duel's path
exactly: `nextSeriesRound` signs a ticket (`gaming.duels.series_tickets`) and writes nothing; the answer
is one insert into the same vote log (`storage.votes`, unique per ticket and per player and set of
photos, and per player and pair: an answered or skipped round judges every two of its photos, so no later
duel or round offers the player one of those pairs), which is its acknowledgement; the one rating
projector applies it in log order with the duel votes (`gaming.duels.projector`, by `gaming.series`), and
no request writes a rating. The rules and their
order are the duel's, on the one answer path both take (`gaming.duels.answers`): unknown -> NOT_FOUND,
someone else's -> FORBIDDEN, already answered -> ALREADY_VOTED (the very same answer repeated gets the
first result), expired -> DUEL_EXPIRED, a photo no longer READY -> NOT_FOUND; and an answer that names a
photo the round did not show, or an order that is not every photo once with the best first ->
BAD_USER_INPUT, nothing written.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from bson import ObjectId

from gaming.duels.answers import (
    Answering,
    AnswerLog,
    DuelError,
    DuelNotFound,
    DuelsUnavailable,
    NotYourDuel,
    Wording,
    to_millis,
)
from gaming.duels.catalogue import CatalogueLoading
from gaming.duels.feed import RatingFeed
from gaming.duels.series_matchmaker import SeriesMatchmaker
from gaming.duels.series_tickets import InvalidSeriesTicket, SeriesKind, SeriesTicket, SeriesTicketSigner
from storage.clock import utcnow
from storage.photos import DELETED, PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.votes import SERIES_ORDER, SERIES_PICK, SKIP, VoteRepository, series_keys

log = structlog.get_logger(__name__)

WORDING = Wording(
    expired="this series round has expired: ask for the next one",
    gone="a photo of this round is no longer in play: ask for the next one",
    judged="you already judged these photos, or two of them together",
    skipped="this series round was skipped",
    otherwise="this series round was already answered otherwise",
    answered="this series round was already answered",
)


class InvalidAnswer(DuelError, code="BAD_USER_INPUT"):
    """The answer does not fit the round: a photo it did not show, or not a full order."""


@dataclass(frozen=True)
class IssuedRound:
    id: str
    ticket: SeriesTicket
    photos: tuple[dict[str, Any], ...]  # in the order shown


@dataclass(frozen=True)
class RoundOutcome:
    accepted: bool  # False when this call repeated an answer already counted
    applied: bool  # True when `photos` carry the ratings right after this answer
    photos: tuple[dict[str, Any], ...]  # in the order shown


def answer_ranks(shown: Sequence[ObjectId], best: ObjectId, order: Sequence[ObjectId] | None
                 ) -> tuple[str, list[int]]:
    """The answer as the log keeps it: PICK with the best at place 0 and every other at 1, or ORDER with
    each photo's place. Raises InvalidAnswer for a photo not shown, or an order that is not every photo
    once with `best` first."""
    if best not in shown:
        raise InvalidAnswer("the best photo must be one of the round's photos")
    if not order:
        return SERIES_PICK, [0 if p == best else 1 for p in shown]
    if sorted(map(str, order)) != sorted(map(str, shown)):
        raise InvalidAnswer("an order must name every photo of the round exactly once")
    if order[0] != best:
        raise InvalidAnswer("an order must start with the best photo")
    place = {p: i for i, p in enumerate(order)}
    return SERIES_ORDER, [place[p] for p in shown]


class SeriesRounds:
    def __init__(self, photos: PhotoRepository, votes: VoteRepository, batches: RatingBatchRepository,
                 matchmaker: SeriesMatchmaker, signer: SeriesTicketSigner, feed: RatingFeed, *, ttl_seconds: int,
                 history: Callable[[str], Awaitable[int]], result_wait_seconds: float = 0.5,
                 on_vote: Callable[[dict[str, Any]], None] = lambda vote: None,
                 blocked_owners: Callable[[str], Awaitable[Sequence[str]]] | None = None,
                 rng: random.Random | None = None) -> None:
        """`history`: how many votes a player cast before, up to what the weighting needs (the duel
        service's count, shared). `blocked_owners`: whose photos a player never sees."""
        self.photos = photos
        self.votes = votes
        self.batches = batches
        self.matchmaker = matchmaker
        self.signer = signer
        self.ttl = timedelta(seconds=ttl_seconds)
        self.on_vote = on_vote
        self.blocked_owners = blocked_owners
        self.rng = rng or random.SystemRandom()
        self.answers = AnswerLog(photos, votes, batches, feed, history=history,
                                 result_wait_seconds=result_wait_seconds, wording=WORDING)

    async def next_round(self, player: str, category: str | None) -> IssuedRound | None:
        """A signed round of three or more photos, shown in random order; None when none is possible."""
        blocked = await self.blocked_owners(player) if self.blocked_owners is not None else ()
        try:
            pick = await self.matchmaker.pick(player, category, excluding_owners=blocked)
        except CatalogueLoading as exc:
            raise DuelsUnavailable(str(exc)) from None
        if pick is None:
            return None
        shown = list(pick.photos)
        self.rng.shuffle(shown)  # no photo always in the first place (position bias)
        ticket = SeriesTicket(kind=SeriesKind.ROUND, nonce=ObjectId(), player=player,
                              photos=tuple(p["_id"] for p in shown), expires_at=(utcnow() + self.ttl).replace(
                                  microsecond=0), group=shown[0].get("group_id") if pick.group_round else None,
                              category=category)
        return IssuedRound(id=self.signer.sign(ticket), ticket=ticket, photos=tuple(shown))

    def _ticket_for(self, round_id: str, player: str) -> SeriesTicket:
        try:
            ticket = self.signer.verify(round_id)
        except InvalidSeriesTicket:
            raise DuelNotFound("no such series round") from None
        if ticket.kind is not SeriesKind.ROUND:
            raise DuelNotFound("no such series round")
        if ticket.player != player:
            raise NotYourDuel("this series round was issued to another player")
        return ticket

    def _answer(self, ticket: SeriesTicket, choice: str, ranks: Sequence[int] | None) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "_id": ticket.nonce, "player": ticket.player, "photos": list(ticket.photos),
            "pair": series_keys(ticket.photos), "choice": choice, "category": ticket.category,
            "created_at": to_millis(utcnow()),
        }
        if ranks is not None:
            answer["ranks"] = list(ranks)
        if ticket.group is not None:
            answer["group"] = ticket.group
        return answer

    @staticmethod
    def _answering(ticket: SeriesTicket) -> Answering:
        return Answering(nonce=ticket.nonce, player=ticket.player, photos=ticket.photos,
                         keys=series_keys(ticket.photos), expires_at=ticket.expires_at)

    async def vote(self, round_id: str, player: str, best: ObjectId, order: Sequence[ObjectId] | None = None, *,
                   anonymous: bool = False) -> RoundOutcome:
        """Record the answer (one insert); `anonymous` as for a duel vote (`DuelService.vote`)."""
        ticket = self._ticket_for(round_id, player)
        choice, ranks = answer_ranks(ticket.photos, best, order)

        def accepted(answer: dict[str, Any]) -> None:
            self.on_vote(answer)
            log.info("series.voted", round=str(ticket.nonce), choice=choice, photos=len(ticket.photos))

        return await self.answers.vote(
            self._answering(ticket), lambda: self._answer(ticket, choice, ranks), anonymous=anonymous,
            same=lambda first: first["choice"] == choice and list(first.get("ranks", ())) == ranks,
            accepted=accepted, result=lambda fresh, waiting: self._result(ticket, accepted=fresh, waiting=waiting))

    async def _result(self, ticket: SeriesTicket, *, accepted: bool,
                      waiting: asyncio.Future[dict[str, Any]] | None) -> RoundOutcome:
        docs, entry = await asyncio.gather(self.photos.get_many(list(ticket.photos)),
                                           self.answers.entry(ticket.nonce, waiting))
        # deleted since the answer's own check (the answer stays in the log, as every vote on a deleted photo
        # does): a tombstone is shown to no one, as in a duel's answer
        if any(d is None or d["status"] == DELETED for d in docs):
            raise DuelNotFound("a photo of this round no longer exists")
        photos = tuple(d for d in docs if d is not None)
        if entry is None or entry.get("gone"):
            return RoundOutcome(accepted=accepted, applied=False, photos=photos)
        rated: Mapping[Any, Any] = dict(zip(entry["photos"], entry["ratings"], strict=True))
        return RoundOutcome(accepted=accepted, applied=True,
                            photos=tuple({**p, "rating": rated.get(p["_id"], p.get("rating"))} for p in photos))

    async def skip(self, round_id: str, player: str) -> bool:
        """Pass on a round (its photos are not offered together again); an expired one may be skipped."""
        ticket = self._ticket_for(round_id, player)
        return await self.answers.skip(self._answering(ticket), lambda: self._answer(ticket, SKIP, None))
