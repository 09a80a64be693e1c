"""Similarity groups over real HTTP, from real uploads through ingest: copies and crops of one photo in
one group, unrelated photos apart, a bridge photo merging two groups, the listing, the group's best
photo following the ratings, one photo per group in promotion, a member deleted (`deletePhoto` and its
job), a blocked user's photos left out, `node(id:)`, and twelve uploads at once grouped by concurrent
ingest batches while readers ask for groups and featured.

The threshold is this module's (0.95), chosen from what tests/test_ml_embedding.py and
bench/group_threshold.py measure for the tiny random CLIP the tests run: resized or recompressed copies
>= 0.99; measured through ingest here, the 90% crops 0.975-0.98, the two halves of `immunohistochemistry`
0.915 apart but 0.963 and 0.970 from the whole (the bridge), and the unrelated photos at most 0.67. A
random model knows nothing of subjects, so these photos are chosen for where its similarities fall; a
failing check prints them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from bson import ObjectId
from PIL import Image

from photoduel.settings import Settings
from photos.deletion import deletion_job_key
from tests.servers import LiveServer, graphql, wait_job
from tests.tokens import auth_header
from tests.uploads import crop, half, jpeg_bytes, near_copy, skimage_photo, upload_many
from tests.votes import settled

COSINE = 0.95
OWNERS = ["ann", "ben", "cat", "dan"]
GROUP = "query($id: ID!) { photo(id: $id) { id group { id size settled best { id } photos(first: 20) { nodes { id } } } } }"
GROUPS = "query($c: String, $a: String) { groups(category: $c, first: 2, after: $a) { edges { cursor node { id size best { id rating { mu sigma } } } } pageInfo { hasNextPage endCursor } } }"
NEXT = "query { nextDuel { id left { id } right { id } } }"
VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    settings = make_settings(group_cosine=COSINE, featured_min_votes=1, featured_max_sigma=8.0,
                             maintenance_seconds=0.5, worker_batch_size=4)
    with LiveServer(settings) as live:
        yield live


def upload_named(client: httpx.Client, images: dict[str, Image.Image | bytes]) -> dict[str, str]:
    """Each image titled with its name, the owners dealt round in upload order, all READY: name -> photo id."""
    owned = upload_many(client, list(images.values()), OWNERS, titles=list(images))
    return dict(zip(images, owned, strict=True))


def group_of(client: httpx.Client, photo_id: str) -> dict[str, Any]:
    body = graphql(client, GROUP, {"id": photo_id})
    assert "errors" not in body, body
    group: dict[str, Any] = body["data"]["photo"]["group"]
    assert group is not None, f"photo {photo_id} has no group"
    return group


def similarities(server: LiveServer, ids: dict[str, str]) -> str:
    """The stored vectors' cosines, to say why a check failed."""
    docs = server.run(server.services.photos.get_many([ObjectId(i) for i in ids.values()]))
    vectors = server.run(server.services.vectors.get_vectors(docs[0]["vector_collection"], list(ids.values())))
    names = list(ids)
    matrix = np.stack([vectors[ids[n]] for n in names])
    sims = matrix @ matrix.T
    return "\n".join(f"{a:>14} " + " ".join(f"{sims[i, j]:.3f}" for j in range(len(names))) for i, a in enumerate(names))


@pytest.fixture(scope="module")
def subjects(server: LiveServer, client: httpx.Client) -> dict[str, str]:
    coffee, camera = skimage_photo("coffee"), skimage_photo("camera")
    return upload_named(client, {
        "coffee": coffee, "coffee copy": near_copy(coffee), "coffee crop": crop(coffee, 0.9),
        "camera": camera, "camera crop": crop(camera, 0.9, left=0.0),
        "camera copy": jpeg_bytes(camera.resize((256, 256), Image.Resampling.LANCZOS), quality=60),
        "chelsea": skimage_photo("chelsea"),
    })


def test_copies_and_crops_of_a_photo_are_one_group_and_unrelated_photos_are_not(
    server: LiveServer, client: httpx.Client, subjects: dict[str, str]
) -> None:
    groups = {name: group_of(client, photo_id) for name, photo_id in subjects.items()}
    why = similarities(server, subjects)
    coffee = {groups[n]["id"] for n in ("coffee", "coffee copy", "coffee crop")}
    camera = {groups[n]["id"] for n in ("camera", "camera crop", "camera copy")}
    assert len(coffee) == 1 and len(camera) == 1, why
    assert len(coffee | camera | {groups["chelsea"]["id"]}) == 3, why
    assert groups["coffee"]["size"] == 3 and groups["camera"]["size"] == 3 and groups["chelsea"]["size"] == 1
    members = {n["id"] for n in groups["coffee"]["photos"]["nodes"]}
    assert members == {subjects[n] for n in ("coffee", "coffee copy", "coffee crop")}
    assert groups["coffee"]["best"]["id"] in members
    # the group has an id of its own (never a photo's, so `node(id:)` tells them apart), founded by one of
    # the subject's photos: which one depends on how ingest batched them (two batches in flight may each
    # found a group; the older group survives the merge), so the test does not fix it
    assert groups["coffee"]["id"] not in subjects.values()
    founder = server.run(server.services.db.groups.find_one({"_id": ObjectId(groups["coffee"]["id"])}))["founder"]
    assert str(founder) in members


def test_a_bridge_photo_merges_two_groups(server: LiveServer, client: httpx.Client) -> None:
    tissue = skimage_photo("immunohistochemistry")
    halves = upload_named(client, {"left half": half(tissue, "left"), "right half": half(tissue, "right")})
    left, right = group_of(client, halves["left half"]), group_of(client, halves["right half"])
    assert left["id"] != right["id"], similarities(server, halves)
    whole = upload_named(client, {"whole": tissue})
    everything = {**halves, **whole}
    merged = {group_of(client, photo_id)["id"] for photo_id in everything.values()}
    assert merged == {min(left["id"], right["id"])}, similarities(server, everything)
    assert group_of(client, whole["whole"])["size"] == 3
    newer = ObjectId(max(left["id"], right["id"]))
    assert server.run(server.services.groups.groups.root(newer)) == ObjectId(min(left["id"], right["id"]))


def listed(client: httpx.Client, category: str | None = None, timeout: float = 30.0,
           until: Callable[[list[dict[str, Any]]], bool] = bool) -> list[dict[str, Any]]:
    """Every page of `groups`, once the summary chore has caught up with what `until` expects."""
    deadline = time.monotonic() + timeout
    while True:
        nodes: list[dict[str, Any]] = []
        after = None
        while True:
            body = graphql(client, GROUPS, {"c": category, "a": after})
            assert "errors" not in body, body
            page = body["data"]["groups"]
            nodes += [e["node"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        if until(nodes) or time.monotonic() > deadline:
            return nodes
        time.sleep(0.2)


def conservative(node: dict[str, Any]) -> float:
    rating = node["best"]["rating"]
    return float(rating["mu"] - 3 * rating["sigma"])


def summarised(server: LiveServer, timeout: float = 30.0) -> None:
    """Until the summary chore has seen every membership change (a new group's rank is its founder's until then)."""
    deadline = time.monotonic() + timeout
    while server.run(server.services.db.groups.count_documents({"stale": True})):
        assert time.monotonic() < deadline, "the summary chore did not catch up"
        time.sleep(0.1)


def test_groups_are_listed_best_first_and_by_category(
    server: LiveServer, client: httpx.Client, subjects: dict[str, str]
) -> None:
    expected = {group_of(client, subjects[n])["id"] for n in ("coffee", "camera", "chelsea")}
    summarised(server)
    nodes = listed(client, until=lambda found: expected <= {n["id"] for n in found})
    assert expected <= {n["id"] for n in nodes}
    assert len({n["id"] for n in nodes}) == len(nodes), "a group on two pages"
    ranks = [conservative(n) for n in nodes]
    assert ranks == sorted(ranks, reverse=True)
    category = graphql(client, GROUP.replace("group {", "category group {"), {"id": subjects["coffee"]})
    name = category["data"]["photo"]["category"]
    in_category = listed(client, name)
    assert group_of(client, subjects["coffee"])["id"] in {n["id"] for n in in_category}
    assert len(in_category) <= len(nodes)
    assert listed(client, "no-such-category", timeout=0) == []


def test_the_best_photo_follows_the_ratings_and_featured_shows_one_per_group(
    server: LiveServer, client: httpx.Client, subjects: dict[str, str]
) -> None:
    members = {subjects[n] for n in ("coffee", "coffee copy", "coffee crop")}
    before = group_of(client, subjects["coffee"])["best"]["id"]
    favourite = next(m for m in sorted(members) if m != before)
    votes = 0
    for n in range(80):  # vote the favourite up and its group's other members down until it leads
        judge = auth_header(f"judge-{n}")
        duel = graphql(client, NEXT, headers=judge)["data"]["nextDuel"]
        if duel is None:
            continue
        left, right = duel["left"]["id"], duel["right"]["id"]
        choice = "LEFT" if left == favourite or (right in members and left not in members) else "RIGHT"
        assert graphql(client, VOTE, {"id": duel["id"], "c": choice}, headers=judge)["data"]["voteDuel"]["accepted"]
        votes += 1
        if votes % 10 == 0:
            server.run(settled(server))
            if group_of(client, subjects["coffee"])["best"]["id"] == favourite:
                break
    server.run(settled(server))
    group = group_of(client, subjects["coffee"])
    ratings = {d["_id"]: d["rating"]["conservative"]
               for d in server.run(server.services.photos.get_many([ObjectId(m) for m in members]))}
    assert group["best"]["id"] == str(max(ratings, key=ratings.__getitem__)) == favourite, ratings
    # the listing follows within a chore pass
    nodes = listed(client, until=lambda found: any(n["id"] == group["id"] and n["best"]["id"] == favourite
                                                   for n in found))
    assert any(n["id"] == group["id"] and n["best"]["id"] == favourite for n in nodes)

    featured = graphql(client, "{ featured(first: 50) { id group { id } } }")["data"]["featured"]
    every = graphql(client, "{ featured(first: 50, onePerGroup: false) { id group { id } } }")["data"]["featured"]
    shown = [p["group"]["id"] for p in featured]
    assert len(shown) == len(set(shown)), "two photos of one group featured"
    assert len(every) > len(featured), "the check had members of one group to leave out"
    assert {p["id"] for p in featured} <= {p["id"] for p in every}
    board = "query($a: String) { leaderboard(first: 2, after: $a, onePerGroup: true) { edges { node { id group { id } } } pageInfo { hasNextPage endCursor } } }"
    seen: list[str] = []
    after = None
    while True:
        page = graphql(client, board, {"a": after})["data"]["leaderboard"]
        seen += [e["node"]["group"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == len(shown), "a group came back on a later page"


def test_a_group_of_one_is_settled_once_its_photo_is(client: httpx.Client, subjects: dict[str, str]) -> None:
    group = group_of(client, subjects["chelsea"])
    photo = graphql(client, "query($id: ID!) { photo(id: $id) { rating { votes sigma } } }",
                    {"id": subjects["chelsea"]})["data"]["photo"]
    assert group["settled"] is (photo["rating"]["votes"] >= 1 and photo["rating"]["sigma"] <= 8.0)


def owner_of(subjects: dict[str, str], name: str) -> str:
    """Who uploaded a subject photo (`upload_named` deals the owners round in upload order)."""
    return OWNERS[list(subjects).index(name) % len(OWNERS)]


def test_a_member_deleted_leaves_the_group_consistent(
    server: LiveServer, client: httpx.Client, subjects: dict[str, str]
) -> None:
    group = group_of(client, subjects["camera"])
    leaving = group["best"]["id"]
    name = next(n for n, i in subjects.items() if i == leaving)
    body = graphql(client, "mutation($id: ID!) { deletePhoto(id: $id) { photoId } }", {"id": leaving},
                   headers=auth_header(owner_of(subjects, name)))
    assert "errors" not in body, body
    rest = [subjects[n] for n in ("camera", "camera crop", "camera copy") if subjects[n] != leaving]
    after = group_of(client, rest[0])  # at once: a deleted photo is no member
    assert after["id"] == group["id"] and after["size"] == 2
    assert {n["id"] for n in after["photos"]["nodes"]} == set(rest)
    assert after["best"]["id"] in rest
    # the deletion job takes the photo out of its group, and the listing follows
    wait_job(server, deletion_job_key(ObjectId(leaving)), timeout=30)
    assert "group_id" not in server.run(server.services.db.photos.find_one({"_id": ObjectId(leaving)}, {"group_id": 1})), \
        "the deletion job left the photo in its group"
    nodes = listed(client, until=lambda found: any(n["id"] == group["id"] and n["size"] == 2 for n in found))
    assert any(n["id"] == group["id"] and n["size"] == 2 and n["best"]["id"] in rest for n in nodes)
    assert group_of(client, rest[1])["id"] == group["id"]


def test_a_blocked_users_photos_are_left_out_of_a_group(client: httpx.Client, subjects: dict[str, str]) -> None:
    viewer = auth_header("blocker")
    blocked = owner_of(subjects, "coffee copy")
    body = graphql(client, "mutation($id: ID!) { blockUser(id: $id) }", {"id": blocked}, headers=viewer)
    assert body.get("data", {}).get("blockUser") is True, body
    seen = graphql(client, GROUP, {"id": subjects["coffee"]}, headers=viewer)["data"]["photo"]["group"]
    everyone = group_of(client, subjects["coffee"])
    assert everyone["size"] == 3 and seen["size"] == 2
    assert {n["id"] for n in seen["photos"]["nodes"]} == {subjects["coffee"], subjects["coffee crop"]}
    assert seen["best"]["id"] != subjects["coffee copy"]


def test_a_group_is_fetched_again_by_its_id(client: httpx.Client, subjects: dict[str, str]) -> None:
    group = group_of(client, subjects["chelsea"])
    body = graphql(client, "query($id: ID!) { node(id: $id) { __typename id ... on PhotoGroup { size } } }",
                   {"id": group["id"]})
    assert body["data"]["node"] == {"__typename": "PhotoGroup", "id": group["id"], "size": group["size"]}, body


CONCURRENT_SUBJECTS = ("astronaut", "brick", "grass")  # at most 0.85 to each other and the module's others
UPLOAD = "mutation($f: Upload!, $t: String) { uploadPhoto(file: $f, title: $t) { id } }"
STATUS = "query($id: ID!) { photo(id: $id) { status } }"
FEATURED = "{ featured(first: 50) { id group { id } } }"


def variants(name: str) -> list[bytes]:
    """A photo and three copies of it as other apps re-save them: resized, recompressed, both."""
    image = skimage_photo(name)
    return [jpeg_bytes(image), near_copy(image), jpeg_bytes(image, quality=40),
            jpeg_bytes(image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS), quality=60)]


async def _ask(http: httpx.AsyncClient, problems: list[str], query: str, variables: dict[str, Any],
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers or {})
    body: dict[str, Any] = response.json() if response.status_code == 200 else {}
    if response.status_code != 200 or "errors" in body:
        problems.append(f"{query[:40]}: HTTP {response.status_code} {response.text[:300]}")
    return body.get("data") or {}


async def _upload(http: httpx.AsyncClient, problems: list[str], data: bytes, owner: str, title: str) -> str | None:
    operations = json.dumps({"query": UPLOAD, "variables": {"f": None, "t": title}})
    response = await http.post("/graphql", data={"operations": operations, "map": '{"0": ["variables.f"]}'},
                               files={"0": ("photo.jpg", data, "image/jpeg")},
                               headers={**auth_header(owner), "Apollo-Require-Preflight": "true"})
    body = response.json() if response.status_code == 200 else {}
    if response.status_code != 200 or "errors" in body:
        problems.append(f"upload: HTTP {response.status_code} {response.text[:300]}")
        return None
    photo_id: str = body["data"]["uploadPhoto"]["id"]
    return photo_id


async def _reader(http: httpx.AsyncClient, problems: list[str], subject_of: dict[str, str], done: asyncio.Event,
                  seed: int) -> int:
    """Reads groups while ingest groups the photos: a group shown never holds two subjects, and featured
    never shows two photos of one group."""
    rng, reads = random.Random(seed), 0
    while not done.is_set():
        if subject_of:
            photo_id = rng.choice(sorted(subject_of))
            group = ((await _ask(http, problems, GROUP, {"id": photo_id})).get("photo") or {}).get("group")
            if group is not None:
                members = {n["id"] for n in group["photos"]["nodes"]}
                if group["best"] is not None:
                    members.add(group["best"]["id"])
                subjects = {subject_of.get(m, "another") for m in members}
                if len(subjects) > 1:
                    problems.append(f"group {group['id']} of {photo_id} holds {subjects}")
        shown = [p["group"]["id"] for p in (await _ask(http, problems, FEATURED, {})).get("featured", []) if p["group"]]
        if len(shown) != len(set(shown)):
            problems.append(f"two photos of one group featured: {shown}")
        reads += 1
    return reads


def test_many_uploads_at_once_with_readers_end_in_one_group_per_subject(
    server: LiveServer, subjects: dict[str, str]
) -> None:
    """Twelve photographers upload copies of three subjects at the same moment; ingest groups them in
    concurrent batches (two in flight, four photos each) while readers ask for groups and featured."""
    problems: list[str] = []
    subject_of: dict[str, str] = {}

    async def scenario() -> dict[str, str]:
        done = asyncio.Event()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            readers = [asyncio.create_task(_reader(http, problems, subject_of, done, seed)) for seed in range(4)]
            uploads = [(name, i, data) for name in CONCURRENT_SUBJECTS for i, data in enumerate(variants(name))]
            ids = await asyncio.gather(*(_upload(http, problems, data, f"shooter-{n}", f"{name} {i}")
                                         for n, (name, i, data) in enumerate(uploads)))
            for photo_id, (name, _, _) in zip(ids, uploads, strict=True):
                if photo_id is not None:
                    subject_of[photo_id] = name
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                statuses = await asyncio.gather(*(_ask(http, problems, STATUS, {"id": i}) for i in subject_of))
                if all((s.get("photo") or {}).get("status") == "READY" for s in statuses):
                    break
                await asyncio.sleep(0.2)
            done.set()
            assert min(await asyncio.gather(*readers)) > 0
        return {photo_id: name for photo_id, name in subject_of.items()}

    uploaded = asyncio.run(scenario())
    assert not problems, problems[:5]
    assert len(uploaded) == 12
    with server.client() as client:
        groups = {photo_id: group_of(client, photo_id) for photo_id in uploaded}
        by_subject = {name: {groups[i]["id"] for i, n in uploaded.items() if n == name} for name in CONCURRENT_SUBJECTS}
        why = similarities(server, {f"{n} {i}": pid for i, (pid, n) in enumerate(uploaded.items())})
        assert all(len(found) == 1 for found in by_subject.values()), (by_subject, why)
        assert len(set.union(*by_subject.values())) == 3, why
        assert all(g["size"] == 4 for g in groups.values()), why


def test_a_photo_in_a_duel_shows_no_group(client: httpx.Client, subjects: dict[str, str]) -> None:
    body = graphql(client, "query { nextDuel { left { group { id } } right { group { id } } } }",
                   headers=auth_header("judge-blind"))
    duel = body["data"]["nextDuel"]
    assert duel is not None and duel["left"]["group"] is None and duel["right"]["group"] is None
