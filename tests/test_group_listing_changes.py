"""The similarity groups' listing follows, at once, the changes that alter what a group shows without
changing its members: reports hiding a photo, an admin's APPROVE and REJECT, a deletion, an owner's new
category. Each request summarises the photo's group before it answers (`GroupRanks.refresh_photos`), so
every `groups(...)` read that starts after the request's answer sees the change.

The maintenance chore that otherwise keeps the summaries current runs only at start here (an hour
between passes), so nothing but the request can have brought the listing up to date; the fixture runs
one pass itself after the uploads, so every test starts from current summaries. Every change is made
while players read the listing (all groups, and per category) and ask for duels over real HTTP; the
reads that started after the change's answer are the ones checked.

Photos: the module's copies and crops of `coffee` and of `camera` (a group of three each, as
tests/test_groups.py measures for the tiny CLIP at threshold 0.95), and `chelsea`, `astronaut`,
`rocket`, each a group of its own (at most 0.85 to every other photo here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from bson import ObjectId
from PIL import Image

from photoduel.settings import Settings
from photos.deletion import deletion_job_key
from tests.servers import LiveServer, graphql, wait_job
from tests.tokens import auth_header
from tests.uploads import crop, jpeg_bytes, near_copy, skimage_photo, upload_many

COSINE = 0.95
REPORTS_TO_HIDE = 2
ADMIN = auth_header("listing-admin", admin=True)
GROUP = ("query($id: ID!) { photo(id: $id) { id category group { id size best { id category "
         "rating { mu sigma } } } } }")
LISTING = ("query($c: String) { groups(category: $c, first: 100) { edges { node { id size "
           "best { id category rating { mu sigma } } } } pageInfo { hasNextPage } } }")
REPORT = "mutation($id: ID!) { reportPhoto(id: $id, reason: SPAM) }"
MODERATE = "mutation($id: ID!, $d: ModerationDecision!) { moderatePhoto(id: $id, decision: $d) { id status } }"
SET_CATEGORY = "mutation($id: ID!, $c: String!) { setCategory(id: $id, category: $c) { id category } }"
DELETE = "mutation($id: ID!) { deletePhoto(id: $id) { photoId } }"
NEXT = "query { nextDuel { id } }"
SKIP = "mutation($id: ID!) { skipDuel(duelId: $id) }"
CATEGORIES = "{ categories }"
READERS = 4
READS_AFTER = 3  # reads each reader makes after the change answered, before the scenario ends


@dataclass(frozen=True)
class Subject:
    photo_id: str
    owner: str


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    settings = make_settings(group_cosine=COSINE, maintenance_seconds=3600.0, worker_batch_size=4,
                             moderation_reports_to_hide=REPORTS_TO_HIDE)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def subjects(server: LiveServer, client: httpx.Client) -> dict[str, Subject]:
    coffee, camera = skimage_photo("coffee"), skimage_photo("camera")
    images: dict[str, Image.Image | bytes] = {
        "coffee": coffee, "coffee copy": near_copy(coffee), "coffee crop": crop(coffee, 0.9),
        "camera": camera, "camera crop": crop(camera, 0.9, left=0.0),
        "camera copy": jpeg_bytes(camera.resize((256, 256), Image.Resampling.LANCZOS), quality=60),
        "chelsea": skimage_photo("chelsea"), "astronaut": skimage_photo("astronaut"),
        "rocket": skimage_photo("rocket"),
    }
    owned = upload_many(client, list(images.values()), [f"shooter-{i}" for i in range(len(images))],
                        titles=list(images))
    uploaded = {name: Subject(photo_id, owner) for name, (photo_id, owner) in zip(images, owned.items(), strict=True)}
    # the one summary pass of this module: ingest's joins left the groups stale
    server.run(server.services.group_ranks.run())
    assert server.run(server.services.db.groups.count_documents({"stale": True})) == 0
    sizes = {name: group_of(client, s.photo_id)["size"] for name, s in uploaded.items()}
    assert sizes == {**dict.fromkeys(("coffee", "coffee copy", "coffee crop", "camera", "camera crop",
                                      "camera copy"), 3), "chelsea": 1, "astronaut": 1, "rocket": 1}, sizes
    return uploaded


def group_of(client: httpx.Client, photo_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = graphql(client, GROUP, {"id": photo_id}, headers=headers or ADMIN)
    assert "errors" not in body, body
    group: dict[str, Any] = body["data"]["photo"]["group"]
    assert group is not None, f"photo {photo_id} has no group"
    return group


@dataclass
class Reads:
    """What the readers saw: (category asked for, the listing's nodes), for reads started after the change
    answered; and anything that went wrong on any read."""

    after: list[tuple[str | None, list[dict[str, Any]]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def _read(http: httpx.AsyncClient, reads: Reads, query: str, variables: dict[str, Any],
                headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers or {})
    body: dict[str, Any] = response.json() if response.status_code == 200 else {}
    if response.status_code != 200 or "errors" in body:
        reads.problems.append(f"{query[:40]}: HTTP {response.status_code} {response.text[:300]}")
    return body.get("data") or {}


def during(server: LiveServer, change: Callable[[httpx.AsyncClient], Awaitable[None]],
           categories: tuple[str | None, ...] = (None,)) -> Reads:
    """Run `change` while READERS players read the listing (each of `categories` in turn) and ask for duels
    (and skip them);
    the readers go on until each has made READS_AFTER reads that started after `change` returned."""
    reads = Reads()

    async def reader(http: httpx.AsyncClient, n: int, changed: asyncio.Event) -> None:
        made_after, turn, scenario = 0, n, ObjectId()
        while made_after < READS_AFTER:
            # a player skips at most 10 duels: skips and open tickets are rate-limited per player
            player = auth_header(f"listing-reader-{scenario}-{n}-{(turn - n) // 10}")
            category = categories[turn % len(categories)]
            turn += 1
            started_after = changed.is_set()
            data = await _read(http, reads, LISTING, {"c": category}, player)
            if started_after:
                reads.after.append((category, [e["node"] for e in (data.get("groups") or {}).get("edges", [])]))
                made_after += 1
                assert not data.get("groups", {}).get("pageInfo", {}).get("hasNextPage"), "one page holds them all"
            duel = (await _read(http, reads, NEXT, {}, player)).get("nextDuel")
            if duel is not None:  # skipped, not voted: a vote would move ratings the listing follows a pass later
                await _read(http, reads, SKIP, {"id": duel["id"]}, player)

    async def scenario() -> None:
        changed = asyncio.Event()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            readers = [asyncio.create_task(reader(http, n, changed)) for n in range(READERS)]
            await asyncio.sleep(0.05)  # the readers are reading when the change comes
            await change(http)
            changed.set()
            await asyncio.gather(*readers)

    asyncio.run(scenario())
    assert not reads.problems, reads.problems[:5]
    assert len(reads.after) == READERS * READS_AFTER
    return reads


def report_until_hidden(photo_id: str, tag: str) -> Callable[[httpx.AsyncClient], Awaitable[None]]:
    """REPORTS_TO_HIDE registered players report the photo at the same moment: one of them hides it."""

    async def change(http: httpx.AsyncClient) -> None:
        answers = await asyncio.gather(*(http.post("/graphql", json={"query": REPORT, "variables": {"id": photo_id}},
                                                   headers=auth_header(f"{tag}-reporter-{n}"))
                                         for n in range(REPORTS_TO_HIDE)))
        assert all(a.status_code == 200 and a.json()["data"]["reportPhoto"] is True for a in answers), \
            [a.text for a in answers]

    return change


def mutation(query: str, variables: dict[str, Any], headers: dict[str, str]
             ) -> Callable[[httpx.AsyncClient], Awaitable[None]]:
    async def change(http: httpx.AsyncClient) -> None:
        response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
        assert response.status_code == 200 and "errors" not in response.json(), response.text

    return change


def status(client: httpx.Client, photo_id: str) -> str:
    body = graphql(client, "query($id: ID!) { photo(id: $id) { status } }", {"id": photo_id}, headers=ADMIN)
    photo = body["data"]["photo"]
    return "GONE" if photo is None else str(photo["status"])


def conservative(node: dict[str, Any]) -> float:
    rating = node["best"]["rating"]
    return float(rating["mu"] - 3 * rating["sigma"])


def stored(server: LiveServer, group_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = server.run(server.services.db.groups.find_one({"_id": ObjectId(group_id)}))
    return doc


def listed_ids(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["id"] for n in nodes}


def assert_listing_current(nodes: list[dict[str, Any]]) -> None:
    """Best photo's conservative skill first, every listed group has a best photo to show."""
    assert all(n["best"] is not None and n["size"] > 0 for n in nodes), nodes
    ranks = [conservative(n) for n in nodes]
    assert ranks == sorted(ranks, reverse=True), ranks


def test_a_groups_best_photo_hidden_by_reports_leaves_the_listing_at_once_and_returns_when_approved(
    server: LiveServer, client: httpx.Client, subjects: dict[str, Subject]
) -> None:
    group = group_of(client, subjects["coffee"].photo_id)
    leader = group["best"]["id"]
    assert stored(server, group["id"])["leader"] == ObjectId(leader)

    reads = during(server, report_until_hidden(leader, "coffee"))
    assert status(client, leader) == "HIDDEN"
    after = group_of(client, subjects["coffee"].photo_id if leader != subjects["coffee"].photo_id
                     else subjects["coffee copy"].photo_id)
    next_best = after["best"]["id"]
    assert after["id"] == group["id"] and after["size"] == 2 and next_best != leader
    for _, nodes in reads.after:
        mine = [n for n in nodes if n["id"] == group["id"]]
        assert len(mine) == 1 and mine[0]["best"]["id"] == next_best and mine[0]["size"] == 2, mine
        assert_listing_current(nodes)
    summary = stored(server, group["id"])  # the stored order: the next best's conservative skill
    assert summary["leader"] == ObjectId(next_best) and summary["size"] == 2 and "stale" not in summary

    reads = during(server, mutation(MODERATE, {"id": leader, "d": "APPROVE"}, ADMIN))
    assert status(client, leader) == "READY"
    for _, nodes in reads.after:
        mine = [n for n in nodes if n["id"] == group["id"]]
        assert len(mine) == 1 and mine[0]["best"]["id"] == leader and mine[0]["size"] == 3, mine
        assert_listing_current(nodes)
    summary = stored(server, group["id"])
    assert summary["leader"] == ObjectId(leader) and summary["size"] == 3


def test_a_group_whose_only_photo_is_hidden_drops_out_at_once_and_comes_back_when_approved(
    server: LiveServer, client: httpx.Client, subjects: dict[str, Subject]
) -> None:
    photo = subjects["chelsea"].photo_id
    group = group_of(client, photo)
    category = graphql(client, GROUP, {"id": photo}, headers=ADMIN)["data"]["photo"]["category"]

    reads = during(server, report_until_hidden(photo, "chelsea"), categories=(None, category))
    assert status(client, photo) == "HIDDEN"
    for _, nodes in reads.after:
        assert group["id"] not in listed_ids(nodes)
        assert_listing_current(nodes)
    assert "rank" not in stored(server, group["id"])

    # a REJECT keeps it out; an APPROVE afterwards (the admin changed their mind) brings it back at once
    reads = during(server, mutation(MODERATE, {"id": photo, "d": "REJECT"}, ADMIN), categories=(None, category))
    assert all(group["id"] not in listed_ids(nodes) for _, nodes in reads.after)
    reads = during(server, mutation(MODERATE, {"id": photo, "d": "APPROVE"}, ADMIN), categories=(None, category))
    assert status(client, photo) == "READY"
    for _, nodes in reads.after:
        assert group["id"] in listed_ids(nodes)
        assert_listing_current(nodes)


def test_a_new_category_moves_the_group_between_category_listings_at_once(
    server: LiveServer, client: httpx.Client, subjects: dict[str, Subject]
) -> None:
    subject = subjects["astronaut"]
    group = group_of(client, subject.photo_id)
    old = graphql(client, GROUP, {"id": subject.photo_id}, headers=ADMIN)["data"]["photo"]["category"]
    new = next(c for c in graphql(client, CATEGORIES)["data"]["categories"] if c != old)

    reads = during(server, mutation(SET_CATEGORY, {"id": subject.photo_id, "c": new}, auth_header(subject.owner)),
                   categories=(old, new))
    for category, nodes in reads.after:
        assert (group["id"] in {n["id"] for n in nodes}) is (category == new), (category, nodes)
        assert all(n["best"]["category"] == category for n in nodes), nodes
    assert stored(server, group["id"])["category"] == new


def test_a_deleted_photo_leaves_the_listing_at_once(
    server: LiveServer, client: httpx.Client, subjects: dict[str, Subject]
) -> None:
    camera = group_of(client, subjects["camera"].photo_id)
    leader = camera["best"]["id"]
    owner = next(s.owner for s in subjects.values() if s.photo_id == leader)
    lone = subjects["rocket"]
    rocket = group_of(client, lone.photo_id)

    async def delete_both(http: httpx.AsyncClient) -> None:
        await asyncio.gather(mutation(DELETE, {"id": leader}, auth_header(owner))(http),
                             mutation(DELETE, {"id": lone.photo_id}, auth_header(lone.owner))(http))

    reads = during(server, delete_both)
    rest = [subjects[n].photo_id for n in ("camera", "camera crop", "camera copy") if subjects[n].photo_id != leader]
    next_best = group_of(client, rest[0])["best"]["id"]
    assert next_best in rest
    for _, nodes in reads.after:
        assert rocket["id"] not in {n["id"] for n in nodes}, "a group of one deleted photo still listed"
        mine = [n for n in nodes if n["id"] == camera["id"]]
        assert len(mine) == 1 and mine[0]["best"]["id"] == next_best and mine[0]["size"] == 2, mine
        assert_listing_current(nodes)
    assert stored(server, camera["id"])["leader"] == ObjectId(next_best)
    # the deletion job then takes the photos out of their groups; the summaries it leaves stale say the same
    for photo_id in (leader, lone.photo_id):
        wait_job(server, deletion_job_key(ObjectId(photo_id)), timeout=30)
    assert server.run(server.services.db.photos.count_documents(
        {"_id": {"$in": [ObjectId(leader), ObjectId(lone.photo_id)]}, "group_id": {"$exists": True}})) == 0, \
        "the deletion jobs left the photos in their groups"
    server.run(server.services.group_ranks.run())
    assert stored(server, camera["id"])["leader"] == ObjectId(next_best)
    assert "rank" not in stored(server, rocket["id"])
