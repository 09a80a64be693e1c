"""The celebrity offset wired into the real vote path: fitted from the log, applied, replayed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from bson import ObjectId

from gaming.ratings import Outcome
from photoduel.settings import Settings
from tests.servers import LiveServer
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_ok, wait_ready
from tests.votes import settled


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with LiveServer(make_settings(celebrity_refit_votes=20)) as live:
        yield live


@pytest.fixture(scope="module")
def photos(server: LiveServer) -> list[dict[str, Any]]:
    server.wait_model()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        ids = [upload_ok(http, jpeg_bytes(generated_photo(700 + i)), auth_header(f"owner{i}"))["id"]
               for i in range(8)]
        for i, pid in enumerate(ids):
            wait_ready(http, pid, auth_header(f"owner{i}"))

    async def mark() -> list[dict[str, Any]]:
        db = server.services.db
        oids = [ObjectId(pid) for pid in ids]
        while await db.photos.count_documents({"_id": {"$in": oids}, "celebrity": {"$exists": True}}) < len(ids):
            await asyncio.sleep(0.1)  # the faces job has looked at every photo
        # What the faces job writes when it recognises an enrolled person.
        for pid in ids[:2]:
            await db.photos.update_one({"_id": ObjectId(pid)}, {"$set": {"celebrity": {"people": [
                {"name": "Famous Person", "confidence": 0.99, "distance": 0.2}]}}})
        return [await server.services.photos.get(ObjectId(pid)) for pid in ids]

    return server.run(mark())


def vote(server: LiveServer, player: str, left: dict[str, Any], right: dict[str, Any], choice: Outcome) -> Any:
    async def go() -> Any:
        ticket = server.services.duels.issue(player, left, right)
        outcome = await server.services.duels.vote(ticket.id, player, choice)
        await settled(server)  # applied, in order, before the next vote or the re-fit reads the log
        return outcome

    return server.run(go())


def test_the_offset_is_fitted_from_biased_votes_and_discounts_celebrity_wins(
    server: LiveServer, photos: list[dict[str, Any]]
) -> None:
    rng = random.Random(3)
    celebrities, others = photos[:2], photos[2:]
    assert server.run(server.services.celebrity_offset.current()) is None  # no votes yet: no discount
    for n in range(60):  # voters prefer the famous face 85% of the time; photos are otherwise alike
        celeb, other = rng.choice(celebrities), rng.choice(others)
        winner = Outcome.LEFT if rng.random() < 0.85 else Outcome.RIGHT
        vote(server, f"fan-{n}", celeb, other, winner)
    for n in range(40):
        a, b = rng.sample(others, 2)
        vote(server, f"fan-x{n}", a, b, rng.choice([Outcome.LEFT, Outcome.RIGHT]))

    offset = server.run(server.services.celebrity_offset.refit(min_new_votes=20))
    assert offset is not None and offset > 1.0  # skill units: fame is worth a real advantage
    assert server.run(server.services.celebrity_offset.current()) == {"kind": "celebrity_offset", "offset": offset}

    async def ratings() -> tuple[dict[str, Any], dict[str, Any]]:
        return ((await server.services.photos.get(celebrities[0]["_id"]))["rating"],
                (await server.services.photos.get(others[0]["_id"]))["rating"])

    celeb_before, other_before = server.run(ratings())
    vote(server, "judge-1", celebrities[0], others[0], Outcome.LEFT)  # the celebrity wins again
    celeb_after, _ = server.run(ratings())
    gain_with_offset = celeb_after["mu"] - celeb_before["mu"]

    from gaming.duels.records import rating_from_fields
    from gaming.ratings import rate_duel

    plain, _ = rate_duel(rating_from_fields(celeb_before), rating_from_fields(other_before), Outcome.LEFT,
                         server.services.rating_env)
    assert 0 <= gain_with_offset < plain.mu - celeb_before["mu"]  # an expected win, worth less

    judged = server.run(server.services.db.votes.find_one({"player": "judge-1"}))
    batch = server.run(server.services.db.rating_batches.find_one({"entries.vote": judged["_id"]}))
    last = next(e for e in batch["entries"] if e["vote"] == judged["_id"])
    assert batch["adjustment"] == {"kind": "celebrity_offset", "offset": offset}
    assert last["left_celebrity"] is True and last["right_celebrity"] is False

    replayed = server.run(server.services.projector.replay())  # the log reproduces the discounted ratings
    for photo in photos:
        assert server.run(server.services.photos.get(photo["_id"]))["rating"] == replayed[photo["_id"]]
