"""The photographer's series over real HTTP: an owner compares their own photos of one similarity group.

Only a photographer of the group gets series duels, their verdicts never reach a public rating (the
public log and every stored rating are untouched by them, while public duels go on beside), and
`Photo.seriesRank`, shown to the owner only, follows the verdicts. The group is made the real way: copies
and crops of one photo uploaded and grouped by ingest (the threshold as tests/test_groups.py's).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from bson import ObjectId
from PIL import Image

from photoduel.settings import Settings
from photos.deletion import deletion_job_key
from tests.servers import LiveServer, error_code, graphql, wait_job
from tests.tokens import auth_header
from tests.uploads import crop, jpeg_bytes, near_copy, skimage_photo, upload_many
from tests.votes import settled

NEXT = "query($g: ID!) { nextSeriesDuel(groupId: $g) { id left { id rating { mu } } right { id } } }"
VOTE = ("mutation($id: ID!, $c: DuelChoice!) { voteSeriesDuel(duelId: $id, choice: $c) { accepted "
        "left { id seriesRank { rank size votes } } right { id seriesRank { rank size votes } } } }")
RANK = "query($id: ID!) { photo(id: $id) { id group { id } seriesRank { rank size votes } } }"
NEXT_DUEL = "query { nextDuel { id left { id } right { id } } }"
VOTE_DUEL = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"
ANN, BEN, CAT = "ann", "ben", "cat"


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with LiveServer(make_settings(group_cosine=0.95, worker_batch_size=4)) as live:
        yield live


@pytest.fixture(scope="module")
def photos(server: LiveServer) -> dict[str, str]:
    """ann's four shots of the coffee cup and ben's copy of it (one group); cat's photo of a cat."""
    coffee = skimage_photo("coffee")
    uploads: list[tuple[str, str, bytes]] = [
        ("ann whole", ANN, jpeg_bytes(coffee)), ("ann crop", ANN, jpeg_bytes(crop(coffee, 0.9))),
        ("ann left", ANN, jpeg_bytes(crop(coffee, 0.9, left=0.0))),
        ("ann small", ANN, jpeg_bytes(coffee.resize((256, 256), Image.Resampling.LANCZOS), quality=60)),
        ("ben copy", BEN, near_copy(coffee)),
        ("cat chelsea", CAT, jpeg_bytes(skimage_photo("chelsea"))),
    ]
    names, owners, images = zip(*uploads, strict=True)
    with server.client() as http:
        owned = upload_many(http, images, owners, titles=names)
    return dict(zip(names, owned, strict=True))


def group_of(http: httpx.Client, photo_id: str, viewer: str) -> str:
    group = graphql(http, RANK, {"id": photo_id}, headers=auth_header(viewer))["data"]["photo"]["group"]
    assert group is not None
    return str(group["id"])


def ann_photos(ids: dict[str, str]) -> list[str]:
    return [ids[n] for n in ("ann whole", "ann crop", "ann left", "ann small")]


def test_only_a_photographer_of_the_group_gets_series_duels(server: LiveServer, photos: dict[str, str]) -> None:
    with server.client() as http:
        group = group_of(http, photos["ann whole"], ANN)
        assert {group_of(http, p, ANN) for p in [*ann_photos(photos), photos["ben copy"]]} == {group}
        duel = graphql(http, NEXT, {"g": group}, headers=auth_header(ANN))["data"]["nextSeriesDuel"]
        assert duel is not None and duel["left"]["rating"] is None  # shown as a duel is: blind
        assert {duel["left"]["id"], duel["right"]["id"]} <= set(ann_photos(photos))
        assert error_code(graphql(http, NEXT, {"g": group}, headers=auth_header(CAT))) == "FORBIDDEN"
        assert graphql(http, NEXT, {"g": group}, headers=auth_header(BEN))["data"]["nextSeriesDuel"] is None  # one
        assert error_code(graphql(http, NEXT, {"g": str(ObjectId())}, headers=auth_header(ANN))) == "NOT_FOUND"
        assert error_code(graphql(http, NEXT, {"g": "no-such-group"}, headers=auth_header(ANN))) == "NOT_FOUND"
        assert error_code(graphql(http, NEXT, {"g": group})) == "UNAUTHENTICATED"
        # the ticket is ann's, and private: neither another player nor voteDuel can answer it
        assert error_code(graphql(http, VOTE, {"id": duel["id"], "c": "LEFT"}, headers=auth_header(BEN))) == "FORBIDDEN"
        assert error_code(graphql(http, VOTE_DUEL, {"id": duel["id"], "c": "LEFT"}, headers=auth_header(ANN))) == "NOT_FOUND"
        public = graphql(http, NEXT_DUEL, headers=auth_header("dan"))["data"]["nextDuel"]
        assert error_code(graphql(http, VOTE, {"id": public["id"], "c": "LEFT"}, headers=auth_header("dan"))) == "NOT_FOUND"


async def _ann(url: str, group: str, favourite: str, worst: str, deadline: float, problems: list[str]) -> int:
    """ann on two devices at once: always prefers her favourite, always rejects her worst shot."""
    verdicts = 0
    async with httpx.AsyncClient(base_url=url, timeout=40) as http:
        while time.monotonic() < deadline:
            response = await http.post("/graphql", json={"query": NEXT, "variables": {"g": group}},
                                       headers=auth_header(ANN))
            duel = response.json()["data"]["nextSeriesDuel"]
            if duel is None:
                return verdicts  # every pair judged
            left, right = duel["left"]["id"], duel["right"]["id"]
            choice = ("LEFT" if left == favourite or right == worst else "RIGHT" if right == favourite or left == worst
                      else random.choice(["LEFT", "RIGHT", "DRAW"]))
            body = (await http.post("/graphql", json={"query": VOTE, "variables": {"id": duel["id"], "c": choice}},
                                    headers=auth_header(ANN))).json()
            if error_code(body) == "ALREADY_VOTED":  # the other device judged this pair meanwhile
                continue
            if "errors" in body or not body["data"]["voteSeriesDuel"]["accepted"]:
                problems.append(str(body))
            verdicts += 1
    return verdicts


async def _public(url: str, player: str, deadline: float, problems: list[str]) -> int:
    votes = 0
    async with httpx.AsyncClient(base_url=url, timeout=40) as http:
        while time.monotonic() < deadline:
            duel = (await http.post("/graphql", json={"query": NEXT_DUEL}, headers=auth_header(player))).json()[
                "data"]["nextDuel"]
            if duel is None:
                await asyncio.sleep(0.1)
                continue
            body = (await http.post("/graphql", json={"query": VOTE_DUEL, "variables": {"id": duel["id"], "c": "LEFT"}},
                                    headers=auth_header(player))).json()
            if "errors" in body:
                problems.append(str(body))
            votes += 1
    return votes


def test_private_verdicts_rank_the_owners_series_and_never_touch_public_ratings(
    server: LiveServer, photos: dict[str, str]
) -> None:
    mine = ann_photos(photos)
    favourite, worst = photos["ann left"], photos["ann small"]
    problems: list[str] = []
    with server.client() as http:
        group = group_of(http, favourite, ANN)

    async def play() -> tuple[list[int], list[int]]:
        deadline = time.monotonic() + 10
        owners = [_ann(server.url, group, favourite, worst, deadline, problems) for _ in range(2)]
        players = [_public(server.url, f"public-{n}", deadline - 5, problems) for n in range(4)]
        both = await asyncio.gather(asyncio.gather(*owners), asyncio.gather(*players))
        return list(both[0]), list(both[1])

    verdicts, public = asyncio.run(play())
    assert not problems, problems[:3]
    assert sum(verdicts) == 6, "four photos, six pairs, each judged once"  # then nextSeriesDuel is null
    assert sum(public) >= 5

    db = server.services.db
    server.run(settled(server))
    stored = server.run(server.services.photos.stored_ratings())
    replayed = server.run(server.services.projector.replay())  # the public log alone
    for pid in map(ObjectId, mine):
        assert stored[pid]["mu"] == pytest.approx(replayed[pid]["mu"], abs=1e-9)
        assert stored[pid]["votes"] == server.run(db.votes.count_documents({
            "$or": [{"left": pid}, {"right": pid}], "choice": {"$ne": "SKIP"}}))
    private_ids = server.run(db.series_votes.distinct("_id"))
    assert len(private_ids) == 6 and not server.run(db.votes.count_documents({"_id": {"$in": private_ids}}))

    with server.client() as http:
        ranks = {pid: graphql(http, RANK, {"id": pid}, headers=auth_header(ANN))["data"]["photo"]["seriesRank"]
                 for pid in mine}
        assert ranks[favourite] == {"rank": 1, "size": 4, "votes": 3}
        assert ranks[worst]["rank"] == 4 and sorted(r["rank"] for r in ranks.values()) == [1, 2, 3, 4]
        for viewer in (BEN, CAT):  # the owner's only
            assert graphql(http, RANK, {"id": favourite}, headers=auth_header(viewer))["data"]["photo"][
                "seriesRank"] is None
        assert graphql(http, RANK, {"id": favourite})["data"]["photo"]["seriesRank"] is None
        ben = graphql(http, RANK, {"id": photos["ben copy"]}, headers=auth_header(BEN))["data"]["photo"]
        assert ben["seriesRank"] is None  # a series of one photo


def test_a_deleted_photo_leaves_the_series_and_its_verdicts_go(server: LiveServer, photos: dict[str, str]) -> None:
    gone = photos["ann small"]
    db = server.services.db
    with server.client() as http:
        body = graphql(http, "mutation($id: ID!) { deletePhoto(id: $id) { photoId } }", {"id": gone},
                       headers=auth_header(ANN))
        assert "errors" not in body, body
        wait_job(server, deletion_job_key(ObjectId(gone)))
        assert server.run(db.series_votes.count_documents({"$or": [{"left": ObjectId(gone)},
                                                                   {"right": ObjectId(gone)}]})) == 0, \
            "the deletion job did not remove the photo's verdicts"
        rank = graphql(http, RANK, {"id": photos["ann left"]}, headers=auth_header(ANN))["data"]["photo"]["seriesRank"]
        assert rank == {"rank": 1, "size": 3, "votes": 2}
