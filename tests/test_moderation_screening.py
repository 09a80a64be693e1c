"""Screening at ingest over real HTTP: a photo over a threshold is written HIDDEN, its owner is told why,
it is in no duel, list or search, and an admin's decision brings it back or keeps it out.

The tiny CLIP cannot judge content, so the threshold here is set where every photo crosses it (gore at 0):
what is tested is the plumbing (the scores ingest stores are the screening's for the photo's embedding)
and what a held photo is kept out of. tests/test_ml_screening.py checks the scores and thresholds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from bson import ObjectId

from ml.pipelines.photo_vectors import photo_collection
from ml.screening import ClipScreening
from photoduel.settings import Settings
from tests.servers import LiveServer, error_code, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, upload_many

ADMIN = auth_header("moderator", admin=True)
OWNERS = ("ann", "ben", "cat")
MINE = ("{ me { photos(first: 20) { edges { node { id status moderation { state source reasons "
        "scores { label score } note decidedBy } } } } } }")
NOTIFICATIONS = "{ notifications(first: 50) { edges { node { kind title body photoId } } } }"
QUEUE = ("query($after: String) { moderationQueue(first: 2, after: $after) { edges { node { photo { id status } "
         "moderation { state source reasons } reports screening { label score } } } "
         "pageInfo { hasNextPage endCursor } } }")
MODERATE = ("mutation($id: ID!, $d: ModerationDecision!, $note: String) { moderatePhoto(id: $id, decision: $d, "
            "note: $note) { id status moderation { state source reasons note } } }")
NEXT = "{ nextDuel { id left { id } right { id } } }"
SKIP = "mutation($id: ID!) { skipDuel(duelId: $id) }"


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with LiveServer(make_settings(moderation_thresholds={"gore": 0.0}, worker_batch_size=8,
                                  near_duplicate_cosine=0.999)) as live:
        yield live


@pytest.fixture(scope="module")
def held(client: httpx.Client) -> dict[str, str]:
    """One photo per owner, each held back by screening: owner -> photo id."""
    owned = upload_many(client, [generated_photo(300 + i) for i in range(len(OWNERS))], OWNERS,
                        titles=[f"{owner}'s" for owner in OWNERS], status="HIDDEN")
    return {owner: photo_id for photo_id, owner in owned.items()}


def my_photos(client: httpx.Client, owner: str) -> dict[str, dict[str, Any]]:
    edges = graphql(client, MINE, headers=auth_header(owner))["data"]["me"]["photos"]["edges"]
    return {e["node"]["id"]: e["node"] for e in edges}


def notifications(client: httpx.Client, owner: str) -> list[dict[str, Any]]:
    body = graphql(client, NOTIFICATIONS, headers=auth_header(owner))
    return [e["node"] for e in body["data"]["notifications"]["edges"]]


def test_the_owner_sees_why_the_photo_is_held_and_is_told(client: httpx.Client, server: LiveServer,
                                                          held: dict[str, str]) -> None:
    photo = my_photos(client, "ann")[held["ann"]]
    assert photo["status"] == "HIDDEN"
    moderation = photo["moderation"]
    assert moderation["state"] == "PENDING" and moderation["source"] == "SCREENING"
    assert moderation["reasons"] == ["gore"] and [s["label"] for s in moderation["scores"]] == ["gore"]
    assert moderation["decidedBy"] is None
    told = [n for n in notifications(client, "ann") if n["photoId"] == held["ann"]]
    assert [n["kind"] for n in told] == ["MODERATION"]  # instead of the tag suggestions, not besides them
    assert "gore" in told[0]["body"] and "ann's" in told[0]["body"]

    # the stored scores are the screening's for the photo's own embedding: no second image pass
    doc = server.run(server.services.photos.get(ObjectId(held["ann"])))
    assert set(doc["screening"]["scores"]) == {"nudity", "gore", "violence"}
    embedder = server.services.models.embedder()
    collection = photo_collection(embedder.model_id, embedder.dim)
    vector = server.run(server.services.vectors.get_vectors(collection, [held["ann"]]))[held["ann"]]
    expected = ClipScreening(embedder).scores([], vector[None, :])[0]
    np.testing.assert_allclose([doc["screening"]["scores"][label] for label in ("nudity", "gore", "violence")],
                               expected, atol=1e-3)
    assert doc["screening"]["model"] == f"clip-zero-shot:{embedder.model_id}"


def test_a_held_photo_is_in_no_list_search_or_duel(client: httpx.Client, held: dict[str, str]) -> None:
    stranger = auth_header("dora")
    for photo_id in held.values():
        assert graphql(client, "query($id: ID!) { photo(id: $id) { id } }", {"id": photo_id},
                       headers=stranger)["data"]["photo"] is None
    listed = graphql(client, "{ photos(first: 100) { edges { node { id } } } }", headers=stranger)
    assert not set(held.values()) & {e["node"]["id"] for e in listed["data"]["photos"]["edges"]}
    found = graphql(client, '{ searchPhotos(text: "a photo", first: 50) { id } }', headers=stranger)
    assert not set(held.values()) & {p["id"] for p in found["data"]["searchPhotos"]}
    deadline = time.monotonic() + 60
    while "errors" in (duel := graphql(client, NEXT, headers=stranger)) and time.monotonic() < deadline:
        assert error_code(duel) == "UNAVAILABLE"  # the catalogue is still loading
        time.sleep(0.5)
    assert duel == {"data": {"nextDuel": None}}
    assert graphql(client, "{ featured { id } }")["data"]["featured"] == []


def test_the_queue_and_the_decisions(client: httpx.Client, server: LiveServer, held: dict[str, str]) -> None:
    first = graphql(client, QUEUE, headers=ADMIN)["data"]["moderationQueue"]
    assert first["pageInfo"]["hasNextPage"] is True
    second = graphql(client, QUEUE, {"after": first["pageInfo"]["endCursor"]}, headers=ADMIN)["data"]["moderationQueue"]
    queued = [e["node"] for e in first["edges"] + second["edges"]]
    assert sorted(c["photo"]["id"] for c in queued) == sorted(held.values())
    waited = [server.run(server.services.photos.get(ObjectId(c["photo"]["id"])))["moderation"]["hidden_at"]
              for c in queued]
    assert waited == sorted(waited)  # the longest waiting first
    assert all(c["moderation"]["source"] == "SCREENING" and c["reports"] == 0 for c in queued)
    assert {s["label"] for s in queued[0]["screening"]} == {"nudity", "gore", "violence"}

    for photo_id in (held["ann"], held["ben"]):
        approved = graphql(client, MODERATE, {"id": photo_id, "d": "APPROVE"}, headers=ADMIN)["data"]["moderatePhoto"]
        assert approved["status"] == "READY" and approved["moderation"]["state"] == "APPROVED"
    rejected = graphql(client, MODERATE, {"id": held["cat"], "d": "REJECT", "note": "Not for this site."},
                       headers=ADMIN)["data"]["moderatePhoto"]
    assert rejected["status"] == "HIDDEN" and rejected["moderation"]["state"] == "REJECTED"
    assert graphql(client, QUEUE, headers=ADMIN)["data"]["moderationQueue"]["edges"] == []

    told = [n["title"] for n in notifications(client, "ann") if n["photoId"] == held["ann"]]
    assert told == ["Photo visible again", "Photo held for review"]  # newest first
    removed = [n for n in notifications(client, "cat") if n["title"] == "Photo removed"]
    assert len(removed) == 1 and "Not for this site." in removed[0]["body"]
    assert my_photos(client, "cat")[held["cat"]]["moderation"]["note"] == "Not for this site."

    # approved photos play again (this process's catalogue took them back); the rejected one never does
    for photo_id in (held["ann"], held["ben"]):  # one category: a photo's first duels are within its own
        graphql(client, 'mutation($id: ID!) { setCategory(id: $id, category: "abstract") { id } }', {"id": photo_id},
                headers=ADMIN)
    player = auth_header("dora")
    deadline = time.monotonic() + 30  # a catalogue reload racing the approvals undoes them until its next poll
    while (duel := graphql(client, NEXT, headers=player)["data"]["nextDuel"]) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert duel is not None and {duel["left"]["id"], duel["right"]["id"]} == {held["ann"], held["ben"]}
    assert graphql(client, SKIP, {"id": duel["id"]}, headers=player)["data"]["skipDuel"] is True
    assert graphql(client, NEXT, headers=player)["data"]["nextDuel"] is None  # the one pair left is judged
    similar = graphql(client, "query($id: ID!) { similarPhotos(photoId: $id) { photo { id } } }",
                      {"id": held["ann"]})["data"]["similarPhotos"]
    assert [s["photo"]["id"] for s in similar] == [held["ben"]]
