"""Answering a signed ticket into the public vote log: the one path duels and series rounds share.

A duel (`gaming.duels.service`) and a series round (`gaming.duels.series_rounds`) are answered alike: the
ticket is signed, not stored, so the answer is one insert into the vote log (`storage.votes`), unique per
ticket and per player and pair of photos (a round's answer holds every pair it shows, so a pair judged in
a round is judged for duels too), and that insert is its acknowledgement. The rules are checked in
the order a client can act on: already answered -> ALREADY_VOTED (the very same answer repeated gets the
first result: a client retrying after a timeout must not see an error for an answer that counted),
expired -> DUEL_EXPIRED, a photo no longer READY -> NOT_FOUND (a signed ticket is not re-read, so the
answer re-reads the photos' status, at the same time as the voter's history). Keeping that path here, once,
keeps the two kinds from drifting apart; each kind keeps its ticket check, its answer document and what
its result shows. The refusals (`DuelError` and its codes) live here too, as every ticket kind raises them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from gaming.duels.feed import RatingFeed
from storage.clock import utcnow
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.votes import SKIP, VoteRepository

T = TypeVar("T")


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


def to_millis(moment: datetime) -> datetime:
    """A moment as the database stores it (milliseconds): the projector compares stored and computed ones."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Wording:
    """What one kind of ticket says when the rules refuse an answer (clients show these messages)."""

    expired: str
    gone: str  # a photo is no longer READY
    judged: str  # this player answered these photos through another ticket
    skipped: str  # this ticket was skipped
    otherwise: str  # this ticket was answered otherwise; may name the first answer's `{choice}`
    answered: str  # a skip of a ticket that was answered


@dataclass(frozen=True)
class Answering:
    """What the log needs of a verified ticket, whatever its kind."""

    nonce: ObjectId  # the answer's `_id`: one ticket, one answer
    player: str
    photos: Sequence[ObjectId]
    # the log's keys for this player's answer to these photos: a duel's `pair_key`, a round's `series_keys`
    keys: Sequence[str]
    expires_at: datetime

    def expired(self) -> bool:
        return self.expires_at <= utcnow()


class AnswerLog:
    def __init__(self, photos: PhotoRepository, votes: VoteRepository, batches: RatingBatchRepository,
                 feed: RatingFeed, *, history: Callable[[str], Awaitable[int]], result_wait_seconds: float,
                 wording: Wording) -> None:
        """`history`: how many votes a player cast before, up to what the weighting needs (recorded with
        the answer, as its weight is computed from it)."""
        self.photos = photos
        self.votes = votes
        self.batches = batches
        self.feed = feed
        self.history = history
        self.result_wait_seconds = result_wait_seconds
        self.wording = wording

    async def existing(self, ticket: Answering) -> dict[str, Any] | None:
        """The answer already given to these photos, or to two of them, by this player (to this ticket, which
        comes first, or another one: a duel, or a round that showed them)."""
        found = await self.votes.for_player_keys(ticket.player, ticket.keys)
        return next((d for d in found if d["_id"] == ticket.nonce), found[0] if found else None)

    async def vote(self, ticket: Answering, answer: Callable[[], dict[str, Any]], *, anonymous: bool,
                   same: Callable[[Mapping[str, Any]], bool], accepted: Callable[[dict[str, Any]], None],
                   result: Callable[[bool, asyncio.Future[dict[str, Any]] | None], Awaitable[T]]) -> T:
        """Insert `answer()` (with `anonymous` and the voter's history), hand it to `accepted`, and return
        `result(True, waiting)`, `waiting` the projector's result for it; for the very answer repeated
        (`same` as the first), `result(False, None)`. Raises a DuelError as the rules refuse it."""
        # The common case, a first answer, costs a bounded count and one write: a repeat shows as a
        # duplicate key.
        existing = await self.existing(ticket) if ticket.expired() else None
        if existing is None:
            if ticket.expired():
                raise DuelExpired(self.wording.expired)
            history, in_play = await asyncio.gather(self.history(ticket.player),
                                                    self.photos.ready_ids(list(ticket.photos)))
            if len(in_play) < len(ticket.photos):  # deleted (or held back) since the ticket was issued
                raise DuelNotFound(self.wording.gone)
            waiting = self.feed.expect(ticket.nonce)
            try:
                document = {**answer(), "anonymous": anonymous, "history": history}
                await self.votes.insert(document)
                accepted(document)
                return await result(True, waiting)
            except DuplicateKeyError:  # answered before (a retry, a skip, another ticket for these photos or a pair)
                existing = await self.existing(ticket)
                if existing is None:
                    raise
            finally:
                self.feed.forget(ticket.nonce)
        if existing["_id"] != ticket.nonce:
            raise DuelAlreadyAnswered(self.wording.judged)
        if existing["choice"] == SKIP:
            raise DuelAlreadyAnswered(self.wording.skipped)
        if not same(existing):
            raise DuelAlreadyAnswered(self.wording.otherwise.format(choice=existing["choice"]))
        return await result(False, None)

    async def skip(self, ticket: Answering, answer: Callable[[], dict[str, Any]]) -> bool:
        """Record `answer()`, a SKIP (an expired ticket may be skipped: its photos are not offered together
        again); True also for this very skip repeated."""
        existing = await self.existing(ticket)
        if existing is None:
            try:
                await self.votes.insert(answer())
                return True
            except DuplicateKeyError:
                existing = await self.existing(ticket)
                if existing is None:
                    raise
        if existing["_id"] == ticket.nonce and existing["choice"] == SKIP:
            return True
        raise DuelAlreadyAnswered(self.wording.answered)

    async def entry(self, nonce: ObjectId, waiting: asyncio.Future[dict[str, Any]] | None) -> dict[str, Any] | None:
        """The projector's entry for this answer: awaited up to `result_wait_seconds` for a new answer
        (`waiting`), read from the rating batches for a repeated one; None when not applied yet."""
        if waiting is None:
            return await self.batches.entry_for(nonce)
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), self.result_wait_seconds)
        except TimeoutError:
            return None
