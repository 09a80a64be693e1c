"""Group duels and series rounds through the real matchmaker on the real MongoDB-wire server.

While a similarity group's best photo is not settled its contenders duel each other, as often as the
anchor's contention says (`gaming.contenders`); once it is settled they stop. A series round is drawn
from such a group, or around an anchor like a duel. The rules of every duel hold between every two
photos shown: never the player's own, never two of one owner, never near-duplicates, never a pair the
player judged.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId

from gaming.duels.matchmaker import Matchmaker
from gaming.duels.records import rating_fields
from gaming.duels.series_matchmaker import SeriesMatchmaker
from gaming.ratings import Rating, RatingEnv
from storage.photos import PhotoRepository
from storage.votes import VoteRepository, pair_key
from tests.servers import scratch_db

ENV = RatingEnv()
BACKGROUND = 40  # photos 0-39: well voted, two per owner
FIRST, LAST = 40, 44  # the group's contenders, one owner each
TWIN = 45  # in the group, a near-duplicate of photo 40 (another owner)
OWN = 46  # in the group, the player's own photo
GROUP = range(FIRST, OWN + 1)


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Any]:
    async with scratch_db(mongo_uri, "groupduels") as database:
        yield database


def _doc(ids: list[ObjectId], i: int, settled: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": ids[i], "status": "READY", "category": "nature", "owner": f"owner-{i // 2}"}
    if i < BACKGROUND:
        doc["rating"] = rating_fields(Rating(10.0 + 0.5 * i, 1.0), ENV, {"votes": 20})
        doc["neighbours"] = [{"id": ids[j], "similarity": 0.8} for j in range(8) if j != i]
        return doc
    doc["owner"] = "ann" if i == OWN else f"group-owner-{i}"
    doc["group_id"] = ids[FIRST]
    if settled:  # photo 41 far ahead, everyone well voted (and less certain than the rest: anchored first)
        doc["rating"] = rating_fields(Rating(40.0 if i == FIRST + 1 else 15.0, 2.0), ENV, {"votes": 30})
    else:  # an open race between uncertain photos
        doc["rating"] = rating_fields(Rating(25.0 + 0.3 * (i % 3), 3.0), ENV, {"votes": 12})
    doc["neighbours"] = ([{"id": ids[j], "similarity": 0.93} for j in GROUP if j != i]
                         + [{"id": ids[j], "similarity": 0.8} for j in range(8)])
    if i == TWIN:
        doc["duplicate_of"] = ids[FIRST]
    return doc


async def seed(db: Any, *, settled: bool) -> dict[ObjectId, int]:
    ids = [ObjectId() for _ in range(OWN + 1)]
    await db.photos.insert_many([_doc(ids, i, settled) for i in range(len(ids))])
    return {pid: i for i, pid in enumerate(ids)}


def matchmaker(db: Any, seed: int) -> Matchmaker:
    return Matchmaker(PhotoRepository(db), VoteRepository(db), ENV, near_duplicate_cosine=0.95,
                      rng=random.Random(seed))


def assert_duel_rules(photos: list[dict[str, Any]], index: dict[ObjectId, int], player: str) -> None:
    owners = [p["owner"] for p in photos]
    assert player not in owners
    assert len(set(owners)) == len(owners), "two photos of one owner"
    assert not {FIRST, TWIN} <= {index[p["_id"]] for p in photos}, "near-duplicates shown together"


async def test_an_open_groups_contenders_duel_each_other(db: Any) -> None:
    index = await seed(db, settled=False)
    mm = matchmaker(db, 1)
    anchored = group_duels = 0
    for n in range(200):
        pairing = await mm.pick(f"p{n % 10}", "nature")
        assert pairing is not None
        pair = [index[pairing.anchor["_id"]], index[pairing.opponent["_id"]]]
        assert_duel_rules([pairing.anchor, pairing.opponent], index, f"p{n % 10}")
        if pair[0] in GROUP:
            anchored += 1
            group_duels += pairing.group_duel
        if pairing.group_duel:
            assert set(pair) <= set(GROUP) and pairing.similarity == pytest.approx(0.93)
    # the uncertain group photos are the anchors most in need, and their race is open: most of their
    # duels are inside the group (placement aside: they have had their first duels)
    assert anchored >= 100
    assert group_duels / anchored > 0.6
    for _ in range(60):  # ann: never her own photo, in a group duel or any other
        pairing = await mm.pick("ann", "nature")
        assert pairing is not None and "ann" not in (pairing.anchor["owner"], pairing.opponent["owner"])


async def test_a_settled_group_gets_no_group_duels(db: Any) -> None:
    index = await seed(db, settled=True)
    mm = matchmaker(db, 2)
    anchored = 0
    for n in range(300):
        pairing = await mm.pick(f"p{n % 10}", "nature")
        assert pairing is not None
        assert not pairing.group_duel
        anchored += index[pairing.anchor["_id"]] in GROUP
    assert anchored >= 5, "group members are still anchored, only not for group duels"


async def test_pairs_the_player_judged_are_not_offered_again(db: Any) -> None:
    index = await seed(db, settled=False)
    ids = {i: pid for pid, i in index.items()}
    votes = VoteRepository(db)
    for a, b in itertools.combinations(GROUP, 2):  # pj judged every pair of the group already
        await votes.insert({"_id": ObjectId(), "player": "pj", "pair": pair_key(ids[a], ids[b]), "choice": "SKIP"})
    mm = matchmaker(db, 3)
    for _ in range(100):
        pairing = await mm.pick("pj", "nature")
        assert pairing is not None and not pairing.group_duel
        assert {index[pairing.anchor["_id"]], index[pairing.opponent["_id"]]} - set(GROUP)


async def test_series_rounds_come_from_an_open_group_and_keep_the_rules_between_every_two_photos(db: Any) -> None:
    index = await seed(db, settled=False)
    series = SeriesMatchmaker(matchmaker(db, 4), size=4)
    sizes, group_rounds = [], 0
    for n in range(120):
        player = "ann" if n % 4 == 0 else f"p{n % 10}"
        pick = await series.pick(player, "nature")
        assert pick is not None
        shown = [index[p["_id"]] for p in pick.photos]
        sizes.append(len(shown))
        assert len(set(shown)) == len(shown)
        assert_duel_rules(list(pick.photos), index, player)
        if pick.group_round:
            group_rounds += 1
            assert set(shown) <= set(GROUP)
    assert set(sizes) <= {3, 4} and sizes.count(4) > 60
    assert group_rounds >= 30


async def test_series_rounds_of_a_settled_group_come_from_the_anchors_candidates(db: Any) -> None:
    index = await seed(db, settled=True)
    series = SeriesMatchmaker(matchmaker(db, 5), size=3)
    for n in range(80):
        pick = await series.pick(f"p{n % 10}", "nature")
        assert pick is not None and not pick.group_round and len(pick.photos) == 3
        assert_duel_rules(list(pick.photos), index, f"p{n % 10}")
    with pytest.raises(ValueError):
        SeriesMatchmaker(matchmaker(db, 6), size=2)
