"""Vote integrity through the real vote path, projector, screening chore and commands (embedded database).

A ballot stuffer among honest voters is flagged by the chore, their later votes weigh nothing, a rebuild
leaves out their earlier ones too and `ratings rebuild --check` agrees; an admin's clear, then a rebuild,
gives back the ratings without the flag. New and anonymous accounts' votes are recorded with what their
weight is computed from.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from gaming.duels.records import initial_rating_fields
from gaming.ratings import Outcome
from gaming.vote_weights import VoteWeighting
from photoduel.services import open_services
from photoduel.settings import Settings
from storage.photos import READY
from storage.voter_flags import VoterFlagRepository
from tests.test_cli_commands import run_cli

JUDGED: dict[str, set[frozenset[ObjectId]]] = {}


async def _seed(services: Any, count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    docs = [{"_id": ObjectId(), "owner": f"owner{i // 4}", "status": READY, "category": "test", "sha256": f"s{i}",
             "created_at": now, "ready_at": now, "neighbours": [], "quality": {"score": 0.5},
             "rating": initial_rating_fields(0.5, services.rating_env)} for i in range(count)]
    await services.photos.collection.insert_many(docs)
    return docs


async def _vote(services: Any, player: str, left: dict[str, Any], right: dict[str, Any], choice: Outcome,
                anonymous: bool = False) -> None:
    pair = frozenset((left["_id"], right["_id"]))
    if pair in JUDGED.setdefault(player, set()):
        return  # a player judges a pair once
    JUDGED[player].add(pair)
    duel = services.duels.issue(player, left, right)
    assert (await services.duels.vote(duel.id, player, choice, anonymous=anonymous)).accepted


async def _honest_round(services: Any, photos: list[dict[str, Any]], quality: list[float], rng: random.Random,
                        voters: int, votes: int) -> None:
    for n in range(votes):
        a, b = rng.sample(range(len(photos)), 2)
        p_a = 1 / (1 + math.exp(-1.7 * (quality[a] - quality[b])))
        player = f"honest{n % voters}"
        await _vote(services, player, photos[a], photos[b], Outcome.LEFT if rng.random() < p_a else Outcome.RIGHT)


async def _stuff(services: Any, photos: list[dict[str, Any]], rng: random.Random, votes: int) -> None:
    """Always owner0's photo (photos 0-3), against the closest-rated photo it has not met yet: the pairs
    matchmaking offers, for a stuffer who redraws until owner0's photo is in the duel."""
    for n in range(votes):
        if n % 10 == 0:
            await services.projector.drain(settle=True)
            ratings = await services.photos.stored_ratings()
        mine = photos[rng.randrange(4)]
        judged = JUDGED.setdefault("stuffer", set())
        other = min((p for p in photos[4:] if frozenset((mine["_id"], p["_id"])) not in judged),
                    key=lambda p: abs(ratings[p["_id"]]["mu"] - ratings[mine["_id"]]["mu"]))
        if rng.random() < 0.5:
            await _vote(services, "stuffer", mine, other, Outcome.LEFT)
        else:
            await _vote(services, "stuffer", other, mine, Outcome.RIGHT)


def _owner0_mu(ratings: dict[ObjectId, dict[str, Any]], photos: list[dict[str, Any]]) -> float:
    return sum(ratings[p["_id"]]["mu"] for p in photos[:4]) / 4


def test_a_stuffer_is_flagged_left_out_rebuilt_and_a_cleared_flag_rebuilds_the_unflagged_result(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(vote_result_wait_seconds=0.0, log_level="WARNING")
    rng = random.Random(5)
    JUDGED.clear()

    async def go() -> None:
        async with open_services(settings, load_model=False) as services:
            photos = await _seed(services, 40)
            quality = [0.0] * 4 + [rng.gauss(0, 1) for _ in range(36)]
            projector, screening = services.projector, services.voter_screening
            flags = VoterFlagRepository(services.db)
            await _honest_round(services, photos, quality, rng, voters=12, votes=300)
            await _stuff(services, photos, rng, 60)
            await projector.drain(settle=True)
            inflated = _owner0_mu(await services.photos.stored_ratings(), photos)

            assert await screening.screen_recent(force=True) == ["stuffer"]  # and none of the honest voters
            flag = await flags.get("stuffer")
            assert flag is not None and flag["status"] == "flagged" and flag["detector"] == "vote-integrity/1"
            owner_finding = next(f for f in flag["findings"] if f["test"] == "owner")
            assert owner_finding["detail"] == "owner0" and owner_finding["statistic"] >= owner_finding["threshold"]
            assert await screening.screen_recent(force=True) == []  # already flagged: not again

            # from the next batch on, the stuffer's votes weigh nothing: no rating and no count moves
            before = await services.photos.stored_ratings()
            await _stuff(services, photos, rng, 10)
            await projector.drain(settle=True)
            assert await services.photos.stored_ratings() == before
            entries = [e async for b in services.db.rating_batches.find({}) for e in b["entries"]]
            assert [e["weight"] for e in entries if e.get("player") == "stuffer"][-10:] == [0.0] * 10
            assert await services.photos.stored_ratings() == await projector.replay()

            # a rebuild leaves out the votes before the flag as well; a replay (--check) still agrees
            await projector.rebuild()
            rebuilt = await services.photos.stored_ratings()
            assert rebuilt == await projector.replay()
            assert _owner0_mu(rebuilt, photos) < inflated - 1.0

            # the flag was wrong after all: cleared, rebuilt -> every vote at its normal weight
            assert (await flags.decide("stuffer", "cleared", by="test", note="false positive"))["status"] == "cleared"
            assert await projector.replay() == rebuilt  # nothing changes until the rebuild
            await projector.rebuild()
            cleared = await services.photos.stored_ratings()
            assert cleared == await projector.replay()
            expected = {p["_id"]: initial_rating_fields(0.5, services.rating_env) for p in photos}
            weighting = VoteWeighting()
            async for batch in services.db.rating_batches.find({}).sort("_id", 1):
                for e in batch["entries"]:
                    expected[e["left"]], expected[e["right"]] = projector.rate(
                        expected[e["left"]], expected[e["right"]], e["choice"], False, False, None,
                        weight=weighting.weight_of(e))
            assert cleared == expected
            assert _owner0_mu(cleared, photos) > _owner0_mu(rebuilt, photos) + 1.0
            # a cleared voter is screened again only on votes cast after the clear
            assert await screening.screen_recent(force=True) == []

    asyncio.run(go())
    check = run_cli(settings, "ratings", "rebuild", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 photos differ" in check.stdout
    listed = run_cli(settings, "voters", "list")
    assert listed.returncode == 0 and "stuffer\tcleared\towner=owner0" in listed.stdout, listed.stdout + listed.stderr
    confirmed = run_cli(settings, "voters", "confirm", "stuffer", "--note", "seen again")
    assert confirmed.returncode == 0 and "stuffer\tconfirmed" in confirmed.stdout
    assert run_cli(settings, "voters", "clear", "nobody").returncode == 1


def test_new_and_anonymous_votes_are_recorded_with_their_history_and_move_ratings_less(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(vote_result_wait_seconds=0.0)
    JUDGED.clear()

    async def go() -> None:
        async with open_services(settings, load_model=False) as services:
            photos = await _seed(services, 8)
            for n in range(3):  # a registered voter with some history
                await _vote(services, "regular", photos[0], photos[4 + n], Outcome.LEFT)
            await _vote(services, "guest", photos[1], photos[7], Outcome.LEFT, anonymous=True)
            logged = {(v["player"], v["history"]): v async for v in services.db.votes.find({})}
            assert logged[("regular", 2)]["anonymous"] is False
            assert logged[("guest", 0)]["anonymous"] is True
            await services.projector.drain(settle=True)
            entries = {(e["player"], e["history"]): e async for b in services.db.rating_batches.find({})
                       for e in b["entries"]}
            assert entries[("regular", 0)]["weight"] == 0.5
            assert entries[("regular", 2)]["weight"] == 0.55
            assert entries[("guest", 0)]["weight"] == 0.25
            # both first votes: a win between equal photos; the anonymous one moved its photo half as far
            prior = photos[0]["rating"]["mu"]
            first = entries[("regular", 0)]["left_rating"]["mu"] - prior
            guest = entries[("guest", 0)]["left_rating"]["mu"] - prior
            assert 0 < guest < first and abs(guest / first - 0.5) < 1e-9
            assert await services.photos.stored_ratings() == await services.projector.replay()

    asyncio.run(go())
