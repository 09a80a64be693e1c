"""`photoduel demo`: a fresh install seeded so that a new user opening `/app` finds a working game.

Everything goes through the services the API uses, as players would: the demo players get display
names (`Profiles`), their photos are uploaded (`UploadService`) and ingested by this process's worker,
their owners accept tags the model suggested (the `acceptTags` write), and the players vote on the duels
matchmaking gives them (`DuelService`), the rating projector applying the votes. Nothing is written
behind the services' backs, so the result is what the same activity through the API would leave.

It seeds an empty install only: on one with photos it refuses (`DemoRefused`) rather than mix demo
players into real ones.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from bson import ObjectId

from accounts.tokens import Principal
from gaming.duels.service import DuelsUnavailable, IssuedDuel
from gaming.ratings import Outcome
from photoduel.demo_photos import demo_photos
from photoduel.ingest_wait import wait_for_ingest
from photoduel.progress_bars import Progress
from photoduel.services import Services, open_services
from photoduel.settings import Settings
from storage.photos import READY, TagLimitExceeded

log = structlog.get_logger(__name__)

PLAYERS = [
    ("demo-ada", "Ada Lovelens"), ("demo-bruno", "Bruno Bokeh"), ("demo-chen", "Chen Shutter"),
    ("demo-dana", "Dana Aperture"), ("demo-eli", "Eli Exposure"), ("demo-femi", "Femi Focus"),
    ("demo-gus", "Gus Grain"), ("demo-hana", "Hana Hue"),
]
TAGS_ACCEPTED = 3  # of each photo's suggestions, best first
DRAW_SHARE = 0.03
# How much the model's quality score (0-1) sways a simulated player, against each photo's own appeal
# (a normal with this spread): players mostly agree with the model, not always.
QUALITY_WEIGHT, APPEAL_SPREAD = 5.0, 0.7
SETTLE_SECONDS = 60.0  # the most the demo waits for matchmaking to load, or the projector to catch up


class DemoRefused(RuntimeError):
    """The install is not empty."""


@dataclass(frozen=True)
class DemoSummary:
    players: int
    photos: int
    ready: int
    tags: int
    votes: int


def simulated_choice(left_appeal: float, right_appeal: float, rng: random.Random) -> Outcome:
    """A player's answer under a Bradley-Terry model: the better photo wins with the logistic of the
    difference, and a few duels are called a draw."""
    if rng.random() < DRAW_SHARE:
        return Outcome.DRAW
    p_left = 1.0 / (1.0 + math.exp(-(left_appeal - right_appeal)))
    return Outcome.LEFT if rng.random() < p_left else Outcome.RIGHT


def appeal_of(photo: Mapping[str, Any], rng: random.Random) -> float:
    quality = float((photo.get("quality") or {}).get("score") or 0.5)
    return QUALITY_WEIGHT * quality + rng.gauss(0.0, APPEAL_SPREAD)


async def seed_demo(settings: Settings, *, photos: int, votes: int, seed: int = 7) -> DemoSummary:
    rng = random.Random(seed)
    async with open_services(settings, run_worker=True, run_projector=True, live_events=False) as services:
        existing = await services.photos.count_all()
        if existing:
            raise DemoRefused(f"this install already has {existing} photos; the demo seeds an empty one only "
                              "(point PHOTODUEL_DATA_DIR, or PHOTODUEL_MONGODB_DATABASE, at a new one)")
        services.catalogue.start_loading()
        players = await sign_up(services)
        ids = await upload(services, players, photos, seed=seed)
        await wait_for_ingest(services.photos, ids)
        ready = [doc for doc in await services.photos.get_many(ids) if doc and doc["status"] == READY]
        tags = await accept_tags(services, ready)
        appeal = {doc["_id"]: appeal_of(doc, rng) for doc in ready}
        cast = await play(services, players, appeal, votes, rng)
        await settle(services)
    return DemoSummary(players=len(players), photos=len(ids), ready=len(ready), tags=tags, votes=cast)


async def sign_up(services: Services) -> list[str]:
    """The demo players, recorded as a first request of theirs would, with their display names."""
    for uid, name in PLAYERS:
        await services.seen_users.seen(Principal(uid=uid))
        await services.profiles.set_display_name(uid, name)
    return [uid for uid, _ in PLAYERS]


async def upload(services: Services, players: Sequence[str], count: int, *, seed: int) -> list[ObjectId]:
    ids: list[ObjectId] = []
    with Progress("uploading", total=count, unit="photo") as bar:
        for k, photo in enumerate(demo_photos(count, seed=seed)):
            owner = players[k % len(players)]
            result = await services.uploads.upload(owner, photo.data, declared_type="image/jpeg",
                                                   filename=f"demo-{k}.jpg", title=photo.title)
            ids.append(result.photo["_id"])
            bar.update()
    return ids


async def accept_tags(services: Services, ready: Sequence[Mapping[str, Any]]) -> int:
    """Each owner accepts the model's best few suggestions, as the app's "accept" button does."""
    accepted = 0
    for doc in ready:
        wanted = [s["tag"] for s in (doc.get("suggestions") or [])[:TAGS_ACCEPTED]]
        if not wanted:
            continue
        try:
            if await services.photos.accept_tags(doc["_id"], wanted) is not None:
                accepted += len(wanted)
        except TagLimitExceeded:
            continue
    return accepted


async def next_duel(services: Services, player: str) -> IssuedDuel | None:
    """A duel for this player once matchmaking has loaded (it loads in the background at start)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            return await services.duels.next_duel(player, None)
        except DuelsUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def play(services: Services, players: Sequence[str], appeal: Mapping[ObjectId, float], votes: int,
               rng: random.Random) -> int:
    """Up to `votes` votes, the players taking turns; fewer when no player has a pair left to judge."""
    cast, idle = 0, 0
    with Progress("voting", total=votes, unit="vote") as bar:
        while cast < votes and idle < len(players):
            player = players[(cast + idle) % len(players)]
            duel = await next_duel(services, player)
            if duel is None:  # this player has judged every pair matchmaking would offer
                idle += 1
                continue
            idle = 0
            choice = simulated_choice(appeal.get(duel.left["_id"], 0.0), appeal.get(duel.right["_id"], 0.0), rng)
            await services.duels.vote(duel.id, player, choice)
            cast += 1
            bar.update()
    if cast < votes:
        log.warning("demo.votes_short", cast=cast, asked=votes, reason="every player judged every pair offered")
    return cast


async def settle(services: Services) -> None:
    """Until the projector has applied every vote, so the ratings are in place when the command ends."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        if await services.projector.lag_seconds() == 0:
            return
        await asyncio.sleep(0.2)
    log.warning("demo.ratings_pending", fix="the running service's projector applies the rest")
