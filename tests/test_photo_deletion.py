"""Deleting a photo over real HTTP: who may, what leaves at once, what the job removes, and what stays.

The photo under test has neighbours (it is in other photos' kept lists), votes (applied by the projector)
and an open duel (a ticket not answered yet). After `deletePhoto` it is in no list, search, similar photos,
featured set or duel, its image URL answers 404, the ticket is refused; once the job has run its blobs,
vector rows, list entries and notifications are gone, the lists that held it are full again (refilled
with the next nearest photos, and still full after the next ingest), and its votes are marked and still
replay every other photo's rating exactly. A photo deleted while its ingest batch runs is not
resurrected and leaves no vector row. Players playing without pause while photos are deleted and a new
one is ingested see no failure and no deleted photo in a duel drawn after its deletion was answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from bson import ObjectId

from photoduel.features import ingest_handler
from photoduel.settings import Settings
from photos.deletion import PHOTO_DELETION, deletion_job_key
from photos.queries import Viewer
from storage.job_kinds import INGEST
from storage.jobs import Defer, Done
from tests.servers import LiveServer, error_code, wait_job
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, skimage_photo, upload_many, upload_ok, wait_ready
from tests.votes import settled, vote_id

K = 4
DELETE = "mutation($id: ID!) { deletePhoto(id: $id) { photoId deletedAt } }"
PHOTO = "query($id: ID!) { photo(id: $id) { id status url(variant: DISPLAY) } }"
LIST = "{ photos(first: 100) { nodes { id } } }"
SIMILAR = "query($id: ID!) { similarPhotos(photoId: $id, first: 100) { photo { id } } }"
SEARCH = "{ searchPhotos(text: \"a photo\", first: 100) { id } }"
FEATURED = "{ featured(first: 100, onePerGroup: false) { id } leaderboard(first: 100) { nodes { id } } }"
NEXT = "{ nextDuel { id left { id } right { id } } }"
VOTE = "mutation($id: ID!) { voteDuel(duelId: $id, choice: LEFT) { accepted } }"
OWNERS = ["ann", "ben", "cat"]
PLAYERS = 8
ANN, BEN, ADMIN = auth_header("ann"), auth_header("ben"), auth_header("root", admin=True)


def gql(client: httpx.Client, query: str, headers: dict[str, str] | None = None, **variables: Any) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables}, headers=headers or {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    settings = make_settings(neighbours_k=K, worker_batch_size=4, featured_min_votes=1, featured_max_sigma=8.0,
                             near_duplicate_cosine=0.999)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def photos(client: httpx.Client) -> dict[str, str]:
    """Twelve READY photos (photo id -> owner): every kept list is full."""
    images = [skimage_photo(n) for n in ("astronaut", "coffee", "chelsea")] + [generated_photo(700 + i) for i in range(9)]
    return upload_many(client, images, OWNERS)


def doc(server: LiveServer, photo_id: str | ObjectId) -> dict[str, Any] | None:
    found: dict[str, Any] | None = server.run(server.services.photos.get(ObjectId(photo_id)))
    return found


def held_by(server: LiveServer, photo_id: ObjectId) -> list[dict[str, Any]]:
    """The photos whose kept list holds this one."""
    found: list[dict[str, Any]] = server.run(
        server.services.db.photos.find({"neighbours.id": photo_id}).to_list(None))
    return found


def exact_top_k(server: LiveServer, collection: str) -> dict[ObjectId, list[ObjectId]]:
    """Brute-force cosine top k of every READY photo among the READY photos, from the stored vectors."""
    ready = server.run(server.services.db.photos.find({"status": "READY"}, {"_id": 1}).to_list(None))
    ids = [d["_id"] for d in ready]
    stored = server.run(server.services.vectors.get_vectors(collection, [str(i) for i in ids]))
    matrix = np.stack([stored[str(i)] for i in ids])
    sims = matrix @ matrix.T
    return {photo_id: [ids[j] for j in np.argsort(-sims[row]) if j != row][:K] for row, photo_id in enumerate(ids)}


def test_who_may_delete_a_photo(client: httpx.Client, server: LiveServer, photos: dict[str, str]) -> None:
    anns = [pid for pid, owner in photos.items() if owner == "ann"]
    bens = [pid for pid, owner in photos.items() if owner == "ben"]
    victim, admins_pick = anns[-1], bens[-1]

    assert error_code(gql(client, DELETE, BEN, id=victim)) == "FORBIDDEN"
    assert error_code(gql(client, DELETE, id=victim)) == "UNAUTHENTICATED"
    for unknown in (str(ObjectId()), "not-an-id"):
        assert error_code(gql(client, DELETE, ANN, id=unknown)) == "NOT_FOUND"
    assert doc(server, victim)["status"] == "READY"  # type: ignore[index]

    first = gql(client, DELETE, ANN, id=victim)["data"]["deletePhoto"]
    assert first["photoId"] == victim
    assert gql(client, DELETE, ANN, id=victim)["data"]["deletePhoto"] == first  # idempotent: the same answer
    assert error_code(gql(client, DELETE, BEN, id=victim)) == "NOT_FOUND"  # gone: its existence is not told
    assert gql(client, DELETE, ADMIN, id=victim)["data"]["deletePhoto"] == first

    by_admin = gql(client, DELETE, ADMIN, id=admins_pick)["data"]["deletePhoto"]
    assert by_admin["photoId"] == admins_pick
    assert doc(server, admins_pick)["deletion"]["by"] == "admin"  # type: ignore[index]
    for photo_id in (victim, admins_pick):
        wait_job(server, deletion_job_key(ObjectId(photo_id)))
        assert gql(client, PHOTO, auth_header(photos[photo_id]), id=photo_id)["data"]["photo"] is None


def vote_pairs(server: LiveServer, client: httpx.Client, victim: str, others: list[str]) -> str:
    """Votes on pairs with and without the victim, all applied; returns an open ticket that holds it."""
    services = server.services
    pairs = [(victim, others[0]), (others[1], victim), (others[0], others[1]), (victim, others[2]),
             (others[2], others[0])]
    for i, (left, right) in enumerate(pairs):
        player = f"voter-{i}"
        ticket = services.duels.issue(player, doc(server, left), doc(server, right))
        assert gql(client, VOTE, auth_header(player), id=ticket.id)["data"]["voteDuel"]["accepted"] is True
    server.run(settled(server))
    return str(services.duels.issue("voter-open", doc(server, victim), doc(server, others[1])).id)


def visible_ids(client: httpx.Client, photos: dict[str, str], victim: str) -> set[str]:
    """Every id the public reads return, and the ids any similarPhotos answer holds."""
    seen = {p["id"] for p in gql(client, LIST)["data"]["photos"]["nodes"]}
    seen |= {p["id"] for p in gql(client, SEARCH)["data"]["searchPhotos"]}
    boards = gql(client, FEATURED)["data"]
    seen |= {p["id"] for p in boards["featured"]} | {p["id"] for p in boards["leaderboard"]["nodes"]}
    for photo_id in photos:
        similar = gql(client, SIMILAR, id=photo_id)
        if "errors" not in similar:
            seen |= {s["photo"]["id"] for s in similar["data"]["similarPhotos"]}
    return seen


def test_a_deleted_photo_leaves_every_read_and_its_traces_and_its_votes_still_replay(
    client: httpx.Client, server: LiveServer, photos: dict[str, str]
) -> None:
    services = server.services
    live = [pid for pid in photos if doc(server, pid)["status"] == "READY"]  # type: ignore[index]
    victim = max(live, key=lambda pid: len(held_by(server, ObjectId(pid))))
    vid, owner = ObjectId(victim), auth_header(photos[victim])
    holders = [d["_id"] for d in held_by(server, vid)]
    assert holders, "the photo under test is in no other photo's list"
    others = [pid for pid in live if pid != victim and photos[pid] != photos[victim]]
    open_ticket = vote_pairs(server, client, victim, others)
    before = doc(server, victim)
    assert before is not None and before["rating"]["votes"] == 3
    url = gql(client, PHOTO, id=victim)["data"]["photo"]["url"]
    assert client.get(url).status_code == 200
    assert victim in visible_ids(client, photos, victim)
    server.run(services.notifications.announce_featured(before))  # a notification about it, besides its suggestions
    ratings_before = server.run(services.photos.stored_ratings())

    gql(client, DELETE, owner, id=victim)

    # at once, whatever the job has done yet
    assert victim not in visible_ids(client, photos, victim)
    assert gql(client, PHOTO, owner, id=victim)["data"]["photo"] is None
    assert client.get(url).status_code == 404
    assert error_code(gql(client, SIMILAR, id=victim)) == "NOT_FOUND"
    assert error_code(gql(client, VOTE, auth_header("voter-open"), id=open_ticket)) == "NOT_FOUND"
    for player in ("ann", "ben", "cat", "dan"):
        for _ in range(6):
            duel = gql(client, NEXT, auth_header(player))["data"]["nextDuel"]
            if duel is None:
                break
            assert victim not in (duel["left"]["id"], duel["right"]["id"])

    wait_job(server, deletion_job_key(vid))
    tombstone = doc(server, victim)
    assert tombstone is not None and tombstone["status"] == "DELETED" and "finished_at" in tombstone["deletion"]
    assert set(tombstone) <= {"_id", "owner", "status", "deletion", "sha256", "created_at", "updated_at", "ready_at",
                              "rating", "rating_seq", "quality"}, sorted(tombstone)
    assert tombstone["quality"] == {"score": before["quality"]["score"]}
    for blob_id in before["blobs"].values():
        assert server.run(services.db["images.files"].count_documents({"_id": blob_id})) == 0
    assert server.run(services.vectors.get_vectors(before["vector_collection"], [victim])) == {}
    assert held_by(server, vid) == []
    exact = exact_top_k(server, before["vector_collection"])
    for holder in holders:  # refilled at once with the next nearest: each list is its exact top k again
        held = doc(server, holder)
        assert held is not None and held["neighbours_short"] is False
        assert [e["id"] for e in held["neighbours"]] == exact[holder]
    assert server.run(services.db.outbox.count_documents({"data.photoId": victim})) == 0
    votes = server.run(services.db.votes.find({"$or": [{"left": vid}, {"right": vid}]}).to_list(None))
    assert len(votes) == 3 and all(v["deleted_photos"] == [vid] for v in votes)
    assert server.run(services.db.votes.count_documents({"deleted_photos": {"$exists": True}})) == 3

    # every other photo's rating is what it was, and what a replay of the log gives
    stored = server.run(services.photos.stored_ratings())
    replayed = server.run(services.projector.replay())
    assert stored == ratings_before
    assert {pid: replayed[pid] for pid in stored} == stored

    # the same bytes may be uploaded again: a new photo, not the tombstone
    again = upload_ok(client, jpeg_bytes(skimage_photo("rocket")), auth_header("dan"))
    wait_ready(client, again["id"], auth_header("dan"))
    for holder in holders:  # and full after the next ingest
        held = doc(server, holder)
        assert held is not None and len(held["neighbours"]) == K and held["neighbours_short"] is False


def test_a_photo_deleted_mid_ingest_is_not_resurrected_and_leaves_no_vector(
    make_settings: Callable[..., Settings],
) -> None:
    """The worker is driven by hand: the ingest batch reads the photo PROCESSING, the deletion lands while
    the batch is in the model (its `before_batch` step), the deletion job is deferred while the batch runs,
    and after it the photo is a tombstone with nothing left in the vector index."""
    settings = make_settings(neighbours_k=K, worker_batch_size=4)
    with LiveServer(settings, run_worker=False) as api, api.client() as http:
        services = api.services
        neighbour_ids = [upload_ok(http, jpeg_bytes(generated_photo(900 + i)), BEN)["id"] for i in range(3)]
        victim = upload_ok(http, jpeg_bytes(generated_photo(990)), ANN)["id"]
        jobs = api.run(services.jobs.lease("hand", [INGEST], limit=10, lease_seconds=60))
        assert len(jobs) == 4
        handler = ingest_handler(services)
        deferred: list[Any] = []

        async def delete_during_the_batch() -> None:
            await services.photo_deletion.delete(Viewer(uid="ann"), victim)
            leased = await services.jobs.lease("hand", [PHOTO_DELETION], limit=1, lease_seconds=60)
            outcome = (await services.photo_deletion.finish(leased))[leased[0].id]
            deferred.append(outcome)
            await services.jobs.defer(leased[0], "hand", delay=0.0, reason=getattr(outcome, "reason", ""))

        handler.before_batch.append(delete_during_the_batch)
        outcomes = api.run(handler.handle(jobs))
        assert all(isinstance(o, Done) for o in outcomes.values())
        assert isinstance(deferred[0], Defer)  # its ingest was still running
        vid = ObjectId(victim)
        assert doc(api, vid)["status"] == "DELETED"  # type: ignore[index]
        collection = doc(api, neighbour_ids[0])["vector_collection"]  # type: ignore[index]
        assert api.run(services.vectors.get_vectors(collection, [victim])) != {}  # the batch wrote its row
        api.run(services.jobs.complete_many([(job, {}) for job in jobs], "hand"))

        leased = api.run(services.jobs.lease("hand", [PHOTO_DELETION], limit=1, lease_seconds=60))
        assert isinstance(api.run(services.photo_deletion.finish(leased))[leased[0].id], Done)
        assert api.run(services.vectors.get_vectors(collection, [victim])) == {}
        assert doc(api, vid)["status"] == "DELETED"  # type: ignore[index]
        assert held_by(api, vid) == []
        assert api.run(services.db.outbox.count_documents({"data.photoId": victim})) == 0
        for photo_id in neighbour_ids:
            assert doc(api, photo_id)["status"] == "READY"  # type: ignore[index]


@dataclass
class Play:
    """What the players saw while photos were deleted under them (times are `time.monotonic()`)."""

    deleted_at: dict[str, float] = field(default_factory=dict)  # photo -> when its deletion was acknowledged
    drawn: list[tuple[float, frozenset[str]]] = field(default_factory=list)  # (request sent, the duel's photos)
    votes: list[tuple[float, frozenset[str], str, str]] = field(default_factory=list)  # (sent, photos, outcome, id)
    codes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


async def _post(http: httpx.AsyncClient, play: Play, query: str, headers: dict[str, str],
                **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    if response.status_code != 200:
        play.problems.append(f"HTTP {response.status_code}: {response.text[:200]}")
        return {}
    body: dict[str, Any] = response.json()
    for error in body.get("errors", []):
        play.codes[error.get("extensions", {}).get("code", "?")] += 1
    return body


async def _player(base_url: str, name: str, stop: asyncio.Event, play: Play) -> None:
    headers = auth_header(name)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        while not stop.is_set():
            sent = time.monotonic()
            duel = ((await _post(http, play, NEXT, headers)).get("data") or {}).get("nextDuel")
            if duel is None:
                await asyncio.sleep(0.1)
                continue
            pair = frozenset((duel["left"]["id"], duel["right"]["id"]))
            play.drawn.append((sent, pair))
            sent = time.monotonic()
            body = await _post(http, play, VOTE, headers, id=duel["id"])
            result = (body.get("data") or {}).get("voteDuel")
            outcome = "accepted" if result and result["accepted"] else error_code(body) if body.get("errors") else str(body)
            play.votes.append((sent, pair, outcome, duel["id"]))


async def _deleter(base_url: str, victims: list[tuple[str, dict[str, str]]], stop: asyncio.Event, play: Play) -> None:
    """Deletes the victims one by one while the game runs, lets it run on a while, then stops it."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        await asyncio.sleep(1.0)
        for victim, headers in victims:
            body = await _post(http, play, DELETE, headers, id=victim)
            if ((body.get("data") or {}).get("deletePhoto") or {}).get("photoId") != victim:
                play.problems.append(f"delete {victim}: {body}")
            play.deleted_at[victim] = time.monotonic()
            await asyncio.sleep(0.7)
        await asyncio.sleep(1.5)
    stop.set()


def test_players_keep_playing_while_photos_are_deleted_and_ingest_runs(
    client: httpx.Client, server: LiveServer, photos: dict[str, str]
) -> None:
    """Eight players draw and answer duels without pause while three photos (one per owner, one of them by an
    admin) are deleted and a new photo is ingested. No request fails; a duel drawn after a deletion was
    acknowledged never holds that photo, and a vote sent after it on a ticket that holds it is refused with
    NOT_FOUND (the only error anyone sees); afterwards every vote counted is in the log (and a refused one
    only if it raced the deletion), every rating is what a replay gives, and every kept list is full again
    without the deleted photos."""
    services = server.services
    live = [pid for pid in photos if doc(server, pid)["status"] == "READY"]  # type: ignore[index]
    victims = [next(pid for pid in live if photos[pid] == owner) for owner in OWNERS]
    by = [auth_header(photos[victims[0]]), ADMIN, auth_header(photos[victims[2]])]
    play = Play()

    async def game() -> dict[str, Any]:
        stop = asyncio.Event()
        players = [_player(server.url, f"racer-{n}", stop, play) for n in range(PLAYERS)]
        arrival = asyncio.to_thread(upload_ok, client, jpeg_bytes(generated_photo(777)), auth_header("ben"))
        results = await asyncio.gather(arrival, _deleter(server.url, list(zip(victims, by, strict=True)), stop, play),
                                       *players)
        arrived: dict[str, Any] = results[0]
        return arrived

    arrived = asyncio.run(game())

    assert not play.problems, play.problems[:5]
    assert set(play.deleted_at) == set(victims)
    assert set(play.codes) <= {"NOT_FOUND"}, play.codes
    refused = [v for v in play.votes if v[2] != "accepted"]
    assert all(outcome == "NOT_FOUND" and pair & set(victims) for _, pair, outcome, _ in refused), refused
    accepted = [v for v in play.votes if v[2] == "accepted"]
    assert len(accepted) >= 20, f"only {len(accepted)} votes counted"
    assert any(sent > max(play.deleted_at.values()) for sent, *_ in accepted), "the game went on after the deletions"
    for victim, acknowledged in play.deleted_at.items():
        assert not [pair for sent, pair in play.drawn if sent > acknowledged and victim in pair], victim
        assert not [v for v in accepted if v[0] > acknowledged and victim in v[1]], victim

    for victim in victims:
        wait_job(server, deletion_job_key(ObjectId(victim)))
        assert held_by(server, ObjectId(victim)) == []
    wait_ready(client, arrived["id"], auth_header("ben"))
    server.run(settled(server))
    counted = {vote_id(server, duel_id) for *_, duel_id in accepted}
    logged = {v["_id"] for v in server.run(
        services.db.votes.find({"player": {"$regex": "^racer-"}}, {"_id": 1}).to_list(None))}
    assert counted <= logged
    for sent, pair, _, duel_id in refused:  # in the log only if it was sent before the deletion was answered
        if vote_id(server, duel_id) in logged:  # (written, then its photo found deleted as the answer was made)
            assert any(sent < play.deleted_at[victim] for victim in pair & set(victims)), pair
    assert logged <= counted | {vote_id(server, duel_id) for *_, duel_id in refused}
    for victim in victims:  # every vote on a deleted photo is marked, those cast in the race included
        vid = ObjectId(victim)
        on_it = server.run(services.db.votes.find({"$or": [{"left": vid}, {"right": vid}]}).to_list(None))
        assert all(vid in v.get("deleted_photos", []) for v in on_it)
    stored = server.run(services.photos.stored_ratings())
    replayed = server.run(services.projector.replay())
    assert {pid: replayed[pid] for pid in stored} == stored
    ready = server.run(services.db.photos.find({"status": "READY"}, {"neighbours": 1}).to_list(None))
    assert len(ready) > K
    for photo in ready:
        assert len(photo["neighbours"]) == K, photo["_id"]
        assert not {str(e["id"]) for e in photo["neighbours"]} & set(victims)
