"""Boundary duels through the real matchmaker on the real MongoDB-wire server.

The featured cut is settled by duels between its contenders, so an anchor straddling the cut may meet a
photo near the cut that is not among its visual neighbours. The same rules as for every duel still hold:
never the player's own photos, never two photos of one owner, never near-duplicates.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from bson import ObjectId

from gaming.duels.matchmaker import Matchmaker
from gaming.duels.records import rating_fields
from gaming.featured import featured_boundary_array, featured_cut_ranks
from gaming.ratings import Rating, RatingEnv
from storage.photos import PhotoRepository
from storage.votes import VoteRepository
from tests.servers import scratch_db

ENV = RatingEnv()
COUNT = 40
FAR_BELOW = 8  # every photo's neighbour list holds only photos 0-7, far below the cut
TWINS = (36, 37)  # near the cut, each in the other's list at near-duplicate similarity


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Any]:
    """An empty database of its own on the session's server, dropped afterwards."""
    async with scratch_db(mongo_uri, "cut") as database:
        yield database


@pytest.fixture
async def catalogue(db: Any) -> AsyncIterator[tuple[Any, list[ObjectId]]]:
    ids = [ObjectId() for _ in range(COUNT)]
    docs = []
    for i, pid in enumerate(ids):
        near_cut = i >= COUNT - 10
        # mu 10..33.4; the cut (90th percentile) is near photo 35; contenders are still uncertain
        rating = Rating(10.0 + 0.6 * i, 4.0 if near_cut else 1.0)
        neighbours = [{"id": ids[j], "similarity": 0.8} for j in range(FAR_BELOW) if j != i]
        if i in TWINS:
            twin = ids[TWINS[1] if i == TWINS[0] else TWINS[0]]
            neighbours.insert(0, {"id": twin, "similarity": 0.99})
        docs.append({
            "_id": pid, "status": "READY", "category": "nature", "owner": f"owner-{i // 2}",
            "rating": rating_fields(rating, ENV, {"votes": 20}), "neighbours": neighbours,
        })
    docs[3]["owner"] = "ann"  # the player's own photo
    await db.photos.insert_many(docs)
    yield db, ids


async def test_contenders_meet_at_the_cut_and_the_duel_rules_still_hold(
    catalogue: tuple[Any, list[ObjectId]],
) -> None:
    db, ids = catalogue
    index = {pid: i for i, pid in enumerate(ids)}
    matchmaker = Matchmaker(PhotoRepository(db), VoteRepository(db), ENV, near_duplicate_cosine=0.95, rng=random.Random(7))
    at_cut = listed = 0
    for _ in range(150):
        pairing = await matchmaker.pick("ann", "nature")
        assert pairing is not None
        a, b = index[pairing.anchor["_id"]], index[pairing.opponent["_id"]]
        assert "ann" not in (pairing.anchor["owner"], pairing.opponent["owner"])
        assert pairing.anchor["owner"] != pairing.opponent["owner"]
        assert {a, b} != set(TWINS), "near-duplicates were paired"
        if min(a, b) >= FAR_BELOW:  # no list holds such a pair: a boundary (or fallback) duel
            assert pairing.similarity is None
            at_cut += min(a, b) >= COUNT - 10 - 2  # both contenders for the cut
        else:
            listed += pairing.similarity is not None
    assert at_cut >= 30, "straddling anchors should often meet other contenders for the cut"
    assert listed >= 10, "neighbour duels go on beside them"


async def test_the_cut_equals_the_quantile_of_every_mu(db: Any) -> None:
    """The service reads the cut off its in-memory catalogue; it must be the cut the simulation computes
    from every mu, for any catalogue size, per category and across all, and ignore unrated photos."""
    rng = random.Random(3)
    matchmaker = Matchmaker(PhotoRepository(db), VoteRepository(db), ENV, near_duplicate_cosine=0.95)
    assert await matchmaker.boundary("empty") == ENV.mu
    mus: dict[str, list[float]] = {}
    for category, size in (("one", 1), ("two", 2), ("eleven", 11), ("many", 137)):
        mus[category] = [rng.uniform(5.0, 45.0) for _ in range(size)]
        await db.photos.insert_many([
            {"status": "READY", "category": category, "owner": "o", "rating": rating_fields(Rating(mu, 3.0), ENV)}
            for mu in mus[category]
        ])
    await db.photos.insert_many([  # neither counts: one is not READY, one not rated yet
        {"status": "PROCESSING", "category": "many", "owner": "o", "rating": rating_fields(Rating(99.0, 3.0), ENV)},
        {"status": "READY", "category": "many", "owner": "o"},
    ])
    await matchmaker.catalogue.reload()  # the catalogue's view is a cache: it saw the empty database
    for category, values in mus.items():
        assert await matchmaker.boundary(category) == pytest.approx(featured_boundary_array(np.array(values)))
    every = [mu for values in mus.values() for mu in values]
    assert await matchmaker.boundary(None) == pytest.approx(featured_boundary_array(np.array(every)))


@pytest.mark.parametrize("count", [1, 2, 3, 10, 11, 20, 101, 1000])
def test_the_cut_ranks_interpolate_like_numpy(count: int) -> None:
    values = np.sort(np.random.default_rng(count).normal(25, 5, size=count))
    lower, upper, weight = featured_cut_ranks(count)
    assert 0 <= lower <= upper < count and 0 <= weight < 1
    assert values[lower] + weight * (values[upper] - values[lower]) == pytest.approx(featured_boundary_array(values))


async def test_the_featured_sets_from_the_catalogue_are_the_ones_the_database_gives(db: Any) -> None:
    """The announcer reads featured sets from the in-memory catalogue; they must be the database's: per
    category the top tenth (at least one) of the settled photos, best conservative skill first."""
    from gaming.duels.catalogue import DuelCatalogue
    from gaming.duels.promotion import Eligibility, Promotion

    rng = random.Random(11)
    docs = []
    for category, size in (("one", 1), ("few", 7), ("many", 143)):
        for _ in range(size):
            rating = Rating(rng.uniform(10, 40), rng.choice([1.0, 2.0, 2.9, 3.5]))
            docs.append({"status": "READY", "category": category, "owner": "o",
                         "rating": rating_fields(rating, ENV, {"votes": rng.choice([0, 5, 10, 30])})})
    docs.append({"status": "PROCESSING", "category": "many", "owner": "o",
                 "rating": rating_fields(Rating(60.0, 1.0), ENV, {"votes": 50})})  # best, but not READY
    await db.photos.insert_many(docs)
    rules = Eligibility(min_votes=10, max_sigma=3.0)
    catalogue = DuelCatalogue(PhotoRepository(db), ENV)
    from_db = await Promotion(PhotoRepository(db), rules).featured_sets()
    from_memory = await Promotion(PhotoRepository(db), rules, catalogue=catalogue).featured_sets()
    assert {c: [d["_id"] for d in ds] for c, ds in from_memory.items()} == \
        {c: [d["_id"] for d in ds] for c, ds in from_db.items()}
    assert len(from_db["many"]) >= 2  # the comparison covers a set of several, ordered


async def test_a_catalogue_reload_keeps_every_photo_at_its_index(db: Any) -> None:
    """Requests hold catalogue indexes across awaits; a reload must never make one point at another photo."""
    from gaming.duels.catalogue import DuelCatalogue

    first = [{"_id": ObjectId(), "status": "READY", "category": "c", "owner": f"o{i}",
              "rating": rating_fields(Rating(20.0 + i, 3.0), ENV)} for i in range(5)]
    await db.photos.insert_many(first)
    catalogue = DuelCatalogue(PhotoRepository(db), ENV)
    await catalogue.reload()
    before = dict(catalogue.index)
    gone = first[0]["_id"]
    await db.photos.update_one({"_id": gone}, {"$set": {"status": "HIDDEN"}})
    await db.photos.insert_many([{"_id": ObjectId(), "status": "READY", "category": "c", "owner": "new",
                                  "rating": rating_fields(Rating(30.0, 3.0), ENV)} for _ in range(3)])
    await catalogue.reload()
    assert all(catalogue.index[pid] == i for pid, i in before.items())
    assert catalogue.size == 8 and not catalogue.live[before[gone]]
    assert list(catalogue.view("c").members) == [i for i in range(8) if i != before[gone]]
