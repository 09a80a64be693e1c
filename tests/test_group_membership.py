"""Similarity-group membership on the real database: joins racing each other, merges, the size cap,
members leaving, and the listing summaries following membership and ratings.

The photos here are documents with hand-made links (what ingest derives from the kept neighbour lists,
tests/test_groups.py does it from real uploads), so the races can be run many times over: every join
of a chain at once, in shuffled orders, each link known to one side only (as when only the batch that
searched second saw the other's photo).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from gaming.contenders import GroupPolicy
from gaming.duels.group_ranks import GroupRanks
from gaming.duels.groups import GroupReads
from gaming.ratings import RatingEnv
from ml.pipelines.grouping import GroupBackfill, IngestGrouping
from storage.group_membership import SimilarityGroups
from storage.groups import GroupRepository
from storage.mongo import ensure_indexes
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.rating_params import RatingParamsRepository
from tests.servers import scratch_db

ENV = RatingEnv()


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Any]:
    async with scratch_db(mongo_uri, "groups") as database:
        await ensure_indexes(database)
        yield database


def membership(db: Any, max_size: int = 100) -> SimilarityGroups:
    return SimilarityGroups(GroupRepository(db), PhotoRepository(db), max_size=max_size)


def ranks(db: Any) -> GroupRanks:
    photos, groups = PhotoRepository(db), GroupRepository(db)
    reads = GroupReads(groups, photos, ENV, GroupPolicy(min_votes=1, max_sigma=8.0))
    return GroupRanks(reads, groups, photos, RatingBatchRepository(db), RatingParamsRepository(db))


def rating(mu: float, sigma: float, votes: int = 0) -> dict[str, Any]:
    return {"mu": mu, "sigma": sigma, "conservative": mu - ENV.k * sigma, "votes": votes}


async def add_photos(db: Any, count: int, *, status: str = "READY", category: str = "landscape") -> list[dict[str, Any]]:
    docs = [{"_id": ObjectId(), "owner": f"owner-{i % 3}", "sha256": uuid.uuid4().hex, "status": status,
             "category": category, "rating": rating(25.0 + i * 0.01, 5.0), "created_at": datetime.now(UTC)}
            for i in range(count)]
    await db.photos.insert_many(docs)
    return docs


async def group_ids(db: Any, docs: list[dict[str, Any]]) -> list[ObjectId | None]:
    found = {d["_id"]: d.get("group_id") async for d in db.photos.find({"_id": {"$in": [d["_id"] for d in docs]}})}
    return [found[d["_id"]] for d in docs]


async def live_groups(db: Any) -> list[dict[str, Any]]:
    return await db.groups.find({"merged_into": {"$exists": False}}).to_list(None)


async def test_a_chain_joined_all_at_once_ends_in_one_group_with_every_member(db: Any) -> None:
    """Photo i links to photo i-1 only, and every join runs at the same time, in a shuffled order: the
    links are known to one side each, so each join may find its link without a group yet."""
    groups = membership(db)
    for seed in range(4):
        chain = await add_photos(db, 24)
        order = list(range(len(chain)))
        random.Random(seed).shuffle(order)
        await asyncio.gather(*(groups.join(chain[i], [chain[i - 1]["_id"]] if i else []) for i in order))
        found = await group_ids(db, chain)
        assert None not in found, "a member was lost"
        assert len(set(found)) == 1, f"seed {seed}: one subject in {len(set(found))} groups"
        (group,) = set(found)
        founded = await db.groups.find({"founder": {"$in": [d["_id"] for d in chain]}}).to_list(None)
        assert group == min(g["_id"] for g in founded), "the oldest group survives"
        for doc in founded:  # every other one merged, and its id leads to the one left
            assert doc["_id"] == group or await GroupRepository(db).root(doc["_id"]) == group


async def test_two_chains_joined_at_once_stay_two_groups(db: Any) -> None:
    groups = membership(db)
    left, right = await add_photos(db, 10), await add_photos(db, 10)
    joins = [groups.join(chain[i], [chain[i - 1]["_id"]] if i else []) for chain in (left, right)
             for i in range(len(chain))]
    random.Random(7).shuffle(joins)
    await asyncio.gather(*joins)
    assert len(set(await group_ids(db, left))) == 1 and len(set(await group_ids(db, right))) == 1
    assert set(await group_ids(db, left)).isdisjoint(await group_ids(db, right))


async def test_a_bridge_merges_two_groups_into_the_older_and_the_newer_id_leads_there(db: Any) -> None:
    groups = membership(db)
    a, b, c, bridge = await add_photos(db, 4)
    first = await groups.join(a, [])
    await groups.join(b, [a["_id"]])
    second = await groups.join(c, [])
    assert first != second
    merged = await groups.join(bridge, [c["_id"], a["_id"]])  # nearest first: it enters c's group
    assert merged == min(first, second)
    assert set(await group_ids(db, [a, b, c, bridge])) == {merged}
    assert await GroupRepository(db).root(max(first, second)) == merged
    assert [g["_id"] for g in await live_groups(db)] == [merged]


async def test_joining_again_changes_nothing(db: Any) -> None:
    groups = membership(db)
    a, b = await add_photos(db, 2)
    await groups.join(a, [])
    group = await groups.join(b, [a["_id"]])
    before = await db.groups.find_one({"_id": group})
    assert await groups.join(b, [a["_id"]]) == group
    assert await groups.join(a, [b["_id"]]) == group
    assert (await db.groups.find_one({"_id": group}))["changes"] == before["changes"]


async def test_a_full_group_takes_no_more_and_groups_merge_only_when_they_fit(db: Any) -> None:
    groups = membership(db, max_size=3)
    photos = await add_photos(db, 5)
    for i, photo in enumerate(photos):  # each links to every earlier one, nearest (latest) first
        await groups.join(photo, [p["_id"] for p in reversed(photos[:i])])
    found = await group_ids(db, photos)
    assert found[0] == found[1] == found[2] is not None
    assert found[3] == found[4] != found[0], "the fourth starts its own group, the fifth joins it"
    assert (await db.groups.find_one({"_id": found[3]}))["founder"] == photos[3]["_id"]
    # a photo linking to both groups cannot merge them (3 + 2 > 3): it joins the nearest with room
    bridge = (await add_photos(db, 1))[0]
    assert await groups.join(bridge, [photos[0]["_id"], photos[3]["_id"]]) == found[3]
    assert len(await live_groups(db)) == 2


async def test_failed_or_deleted_photos_are_not_claimed(db: Any) -> None:
    groups = membership(db)
    ready = (await add_photos(db, 1))[0]
    failed = (await add_photos(db, 1, status="FAILED"))[0]
    deleted = (await add_photos(db, 1, status="DELETED"))[0]
    await groups.join(ready, [failed["_id"], deleted["_id"]])
    assert await group_ids(db, [failed, deleted]) == [None, None]
    assert await groups.join(failed, []) is None


async def test_a_member_leaves_and_the_summary_follows(db: Any) -> None:
    groups, chore = membership(db), ranks(db)
    photos = await add_photos(db, 3)
    await db.photos.update_one({"_id": photos[1]["_id"]}, {"$set": {"rating": rating(30.0, 1.0, votes=12)}})
    for i, photo in enumerate(photos):
        group = await groups.join(photo, [photos[0]["_id"]] if i else [])
    assert await group_ids(db, photos) == [group] * 3
    await chore.run()
    doc = await db.groups.find_one({"_id": group})
    assert (doc["size"], doc["leader"], doc["rank"]) == (3, photos[1]["_id"], pytest.approx(27.0))
    assert "stale" not in doc

    assert await groups.remove_member(photos[1]["_id"]) == group
    assert await groups.remove_member(photos[1]["_id"]) is None  # safe to repeat
    assert await group_ids(db, photos) == [group, None, group]
    assert (await db.groups.find_one({"_id": group}))["stale"] is True
    await chore.run()
    doc = await db.groups.find_one({"_id": group})
    assert (doc["size"], doc["leader"]) == (2, photos[2]["_id"])

    # the founder leaving changes nothing about the group's id; the last member leaving unlists it
    for photo in (photos[0], photos[2]):
        await groups.remove_member(photo["_id"])
    await chore.run()
    doc = await db.groups.find_one({"_id": group})
    assert doc["size"] == 0 and "rank" not in doc and "category" not in doc
    assert (await GroupRepository(db).ranked_page(None, first=10, after=None)).docs == []


async def test_the_summary_follows_rating_batches_once_their_ratings_are_written(db: Any) -> None:
    groups, chore = membership(db), ranks(db)
    a, b = await add_photos(db, 2)
    await groups.join(a, [])
    group = await groups.join(b, [a["_id"]])
    await chore.run()  # the first pass takes its position (no batch yet) and summarises the stale group
    assert (await db.groups.find_one({"_id": group}))["leader"] == b["_id"]

    # batch 1 rates `a` up; its record is written before the photo (as the projector does)
    await db.rating_batches.insert_one({"_id": 1, "ratings": [{"id": a["_id"], "rating": rating(40.0, 2.0, 3)}]})
    await chore.run()
    assert (await db.groups.find_one({"_id": group}))["leader"] == b["_id"], "taken before its rating was written"
    assert (await db.rating_params.find_one({"_id": "group_ranks"}))["followed_seq"] == 0

    await db.photos.update_one({"_id": a["_id"]}, {"$set": {"rating": rating(40.0, 2.0, 3), "rating_seq": 1}})
    await chore.run()
    doc = await db.groups.find_one({"_id": group})
    assert (doc["leader"], doc["rank"]) == (a["_id"], pytest.approx(34.0))
    assert (await db.rating_params.find_one({"_id": "group_ranks"}))["followed_seq"] == 1


async def test_a_summary_does_not_hide_a_membership_change_it_did_not_see(db: Any) -> None:
    groups, repository = membership(db), GroupRepository(db)
    a, b = await add_photos(db, 2)
    group = await groups.join(a, [])
    changes = (await repository.changes([group]))[group]
    await groups.join(b, [a["_id"]])  # after the count was read, before the summary is written
    written = await repository.write_summaries({group: (changes, {"size": 1, "leader": a["_id"],
                                                                  "category": "landscape", "rank": 10.0})})
    assert written == 0
    assert (await db.groups.find_one({"_id": group}))["stale"] is True


async def test_photos_made_ready_before_groups_existed_join_theirs_in_one_walk(db: Any) -> None:
    """Legacy READY photos with neighbour lists and no group: the chore walks them in passes of a few photos
    and groups them as ingest would; once past the last photo it is done, and grouped photos stay put."""
    photos = await add_photos(db, 7)
    a, b, c, d, e, f, failed = photos
    links = [(a, [(b, 0.97)]), (b, [(a, 0.97), (c, 0.93)]), (c, [(b, 0.93)]), (d, [(e, 0.99)]), (e, [(d, 0.99)]),
             (f, [(a, 0.5)])]
    for photo, near in links:
        await db.photos.update_one({"_id": photo["_id"]}, {"$set": {"neighbours": [
            {"id": other["_id"], "similarity": similarity} for other, similarity in near]}})
    await db.photos.update_one({"_id": failed["_id"]}, {"$set": {"status": "FAILED"}})
    grouping = IngestGrouping(membership(db), cosine=0.9)
    chore = GroupBackfill(PhotoRepository(db), RatingParamsRepository(db), grouping, per_pass=3)
    grouped = [await chore.run() for _ in range(4)]
    assert sum(grouped) == 6 and grouped[-1] == 0
    assert (await db.rating_params.find_one({"_id": "group_backfill"}))["done"] is True
    found = await group_ids(db, photos)
    assert found[0] == found[1] == found[2] is not None, "a chain above the threshold is one group"
    assert found[3] == found[4] is not None and found[3] != found[0]
    assert found[5] not in (None, found[0], found[3]), "a photo linked below the threshold is alone"
    assert found[6] is None, "a failed photo is in no group"
    before = await db.groups.count_documents({})
    late = (await add_photos(db, 1))[0]  # READY after the walk: ingest groups it, the chore no more
    assert await chore.run() == 0 and await group_ids(db, [late]) == [None]
    assert await db.groups.count_documents({}) == before


async def test_a_change_nothing_reports_reaches_the_listing_through_the_sweep(db: Any) -> None:
    """A moderator hiding the best photo, or its owner moving it to another category, tells the groups
    nothing: the sweep of the least recently summarised groups brings the listing up to date."""
    groups, chore = membership(db), ranks(db)
    a, b = await add_photos(db, 2)
    await db.photos.update_one({"_id": b["_id"]}, {"$set": {"rating": rating(30.0, 1.0, votes=12)}})
    await groups.join(a, [])
    group = await groups.join(b, [a["_id"]])
    await chore.run()
    assert (await db.groups.find_one({"_id": group}))["leader"] == b["_id"]
    await db.photos.update_one({"_id": b["_id"]}, {"$set": {"status": "HIDDEN"}})
    await db.photos.update_one({"_id": a["_id"]}, {"$set": {"category": "portrait"}})
    await chore.run()
    doc = await db.groups.find_one({"_id": group})
    assert (doc["size"], doc["leader"], doc["category"]) == (1, a["_id"], "portrait")
    page = await GroupRepository(db).ranked_page("portrait", first=10, after=None)
    assert [d["_id"] for d in page.docs] == [group]
