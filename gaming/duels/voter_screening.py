"""The voter screening chore: each recent voter's votes against the settled ratings, flags recorded.

The tests are pure (`gaming.vote_integrity`); here is their I/O. Every `interval` a worker reads who
voted since the last run (`storage.votes`), each such voter's votes (the newest `max_votes`; after an
admin cleared the voter, only the votes since), the photos' owners and current ratings (the consensus),
and records a flag for each voter a test convicts (`storage.voter_flags`: the findings, the statistic,
the detector version). It runs as a chore, not in the rating projector: it needs every photo's settled
rating and a voter's whole history, which the projector's hot path has no business reading, and the
projector must weigh votes by *recorded* decisions only (`excluded`, read once per batch and written
into every entry's weight), never by a statistic of the moment, so that a replay reproduces it.

A flag takes effect on the next batch: the voter's later votes weigh nothing. Their earlier votes, and
an admin's clear or confirmation, reach the ratings through `photoduel ratings rebuild`, which weighs
every vote again by the decisions in force and records them (`RatingProjector.rebuild`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from gaming.duels.records import rating_from_fields
from gaming.ratings import Outcome, RatingEnv, win_probability
from gaming.vote_integrity import (
    DETECTOR_VERSION,
    Agreement,
    Screening,
    ScreeningPolicy,
    VoteView,
    agreement,
    screen_voter,
)
from storage.clock import utcnow
from storage.photos import PhotoRepository
from storage.rating_params import RatingParamsRepository
from storage.voter_flags import CLEARED, VoterFlagRepository
from storage.votes import VoteRepository

log = structlog.get_logger(__name__)

PARAMS_ID = "voter_screening"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def vote_views(votes: Sequence[Mapping[str, Any]], photos: Mapping[Any, Mapping[str, Any]],
               env: RatingEnv) -> list[VoteView]:
    """The votes as the tests see them, in order; a vote whose photo is gone or unrated is left out."""
    views = []
    for vote in votes:
        left, right = photos.get(vote["left"]), photos.get(vote["right"])
        if not left or not right or "rating" not in left or "rating" not in right:
            continue
        p_left = win_probability(rating_from_fields(left["rating"]), rating_from_fields(right["rating"]), env)
        views.append(VoteView(Outcome(vote["choice"]), p_left, left.get("owner"), right.get("owner")))
    return views


def owner_rates(votes: Sequence[Mapping[str, Any]], photos: Mapping[Any, Mapping[str, Any]]) -> dict[str, float]:
    """How often the other voters picked each owner's photos: the photos' win counts (every applied vote)
    less this voter's own, smoothed by one win and one loss. Same-owner duels are not offered, so a
    photo's wins and losses are against other owners."""
    wins: dict[Any, int] = {}
    decided: dict[Any, int] = {}
    for vote in votes:
        if vote["choice"] not in (Outcome.LEFT.value, Outcome.RIGHT.value):
            continue
        winner = vote["left"] if vote["choice"] == Outcome.LEFT.value else vote["right"]
        wins[winner] = wins.get(winner, 0) + 1
        for pid in (vote["left"], vote["right"]):
            decided[pid] = decided.get(pid, 0) + 1
    totals: dict[str, list[int]] = {}
    for pid, photo in photos.items():
        owner, rating = photo.get("owner"), photo.get("rating") or {}
        if owner is None or pid not in decided:
            continue
        won = max(0, int(rating.get("wins", 0)) - wins.get(pid, 0))
        lost = max(0, int(rating.get("losses", 0)) - (decided[pid] - wins.get(pid, 0)))
        total = totals.setdefault(str(owner), [0, 0])
        total[0] += won
        total[1] += won + lost
    return {owner: (won + 1) / (n + 2) for owner, (won, n) in totals.items()}


class VoterScreening:
    def __init__(self, votes: VoteRepository, photos: PhotoRepository, flags: VoterFlagRepository,
                 params: RatingParamsRepository, env: RatingEnv, *, policy: ScreeningPolicy | None = None,
                 interval_seconds: float = 300.0, max_votes: int = 2000) -> None:
        self.votes = votes
        self.photos = photos
        self.flags = flags
        self.params = params
        self.env = env
        self.policy = policy or ScreeningPolicy()
        self.interval = timedelta(seconds=interval_seconds)
        self.max_votes = max_votes

    async def excluded(self) -> Mapping[str, str]:
        """The decisions the rating projector weighs by (read once per batch)."""
        return await self.flags.excluded()

    async def _read(self, player: str, since: datetime | None = None,
                    ) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
        votes = await self.votes.by_player(player, since=since, limit=self.max_votes)
        photos = await self.photos.owners_and_ratings([pid for v in votes for pid in (v["left"], v["right"])])
        return votes, photos

    async def agreement(self, player: str) -> Agreement:
        """How often this player's votes match the settled ratings (player progress)."""
        votes, photos = await self._read(player)
        return agreement(vote_views(votes, photos, self.env))

    async def screen(self, player: str, *, cleared_at: datetime | None = None) -> Screening:
        """Test one voter now and record a flag if a test convicts them. `cleared_at`: an admin cleared
        this voter then; only votes since count, and the flag is written only if that clear still stands."""
        votes, photos = await self._read(player, cleared_at)
        result = screen_voter(vote_views(votes, photos, self.env), self.policy, owner_rates(votes, photos))
        if result.flagged:
            findings = [asdict(f) for f in result.findings]
            if await self.flags.flag(player, findings=findings, detector=DETECTOR_VERSION, votes=result.votes,
                                     cleared_at=cleared_at):
                log.warning("voter_screening.flagged", player=player, tests=[f["test"] for f in findings],
                            votes=result.votes)
        return result

    async def screen_recent(self, *, force: bool = False) -> list[str]:
        """Screen everyone who voted since the last run, at most once per interval (`force`: now); who
        was flagged. Voters flagged or confirmed already are not screened again."""
        doc = await self.params.get(PARAMS_ID) or {}
        start, end = doc.get("screened_until") or EPOCH, utcnow()
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if not force and end - start < self.interval:
            return []
        players = await self.votes.players_between(start, end)
        decisions = await self.flags.statuses(players)
        flagged = []
        for player in players:
            decision = decisions.get(player)
            if decision is not None and decision["status"] != CLEARED:
                continue
            cleared_at = decision["decided_at"] if decision is not None else None
            if (await self.screen(player, cleared_at=cleared_at)).flagged:
                flagged.append(player)
        await self.params.save(PARAMS_ID, {"screened_until": end, "screened_voters": len(players)})
        return flagged
