"""Profiles and an owner's own photos over real HTTP: display names (validated, unique regardless of case,
one winner under concurrency), `Photo.owner` everywhere but in a duel, `me.photos` with PROCESSING and
FAILED photos, and the owner's (or an admin's) edits of a title and a category."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ml.vocabulary import Vocabulary
from photoduel.settings import Settings
from tests.servers import LiveServer, error_code, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_all, upload_ok, wait_all, wait_ready

DORA, EMIL, ROOT = auth_header("dora"), auth_header("emil"), auth_header("root", admin=True)
ME = "{ me { id displayName } }"
SET_NAME = "mutation($n: String!) { setDisplayName(name: $n) { id displayName } }"
OWNER = "owner { id displayName photoCount }"
PHOTO = f"query($id: ID!) {{ photo(id: $id) {{ id title category modelCategory {OWNER} }} }}"
UPDATE = "mutation($id: ID!, $t: String) { updatePhoto(id: $id, title: $t) { id title } }"
SET_CATEGORY = "mutation($id: ID!, $c: String!) { setCategory(id: $id, category: $c) { id category modelCategory } }"
MY_PHOTOS = """query($s: PhotoStatus, $first: Int, $after: String) { me { photos(status: $s, first: $first, after: $after) {
  edges { cursor node { id status failureReason failure { reason at } } } pageInfo { hasNextPage endCursor } } } }"""


@pytest.fixture(scope="module")
def photos(client: httpx.Client) -> dict[str, list[str]]:
    """Two READY photos of dora's and one of emil's."""
    uploaded = upload_all(client, [generated_photo(1800 + seed) for seed in range(3)], ["dora", "dora", "emil"],
                          titles=[f"shot {seed}" for seed in range(3)])
    ready = wait_all(client, uploaded)
    return {owner: [pid for pid in ready if uploaded[pid] == owner] for owner in ("dora", "emil")}


def photo(client: httpx.Client, photo_id: str) -> dict[str, Any]:
    body = graphql(client, PHOTO, {"id": photo_id})
    assert "errors" not in body, body
    return body["data"]["photo"]


def test_a_display_name_is_validated_and_unique_regardless_of_case(client: httpx.Client) -> None:
    ana, bo = auth_header("ana"), auth_header("bo")
    set_ana = graphql(client, SET_NAME, {"n": "  Ana   Lee "}, headers=ana)
    assert set_ana["data"]["setDisplayName"] == {"id": "ana", "displayName": "Ana Lee"}
    for bad, rule in [("ab", "3 to 30"), ("x" * 31, "3 to 30"), ("   ", "3 to 30"), ("al!ce", "only letters"),
                      (".ana", "starts and ends"), ("ana-", "starts and ends"), ("a\tb c", "only letters")]:
        refused = graphql(client, SET_NAME, {"n": bad}, headers=ana)
        assert error_code(refused) == "BAD_USER_INPUT" and rule in refused["errors"][0]["message"], (bad, refused)
        assert refused["errors"][0]["extensions"]["argument"] == "name"
    assert graphql(client, ME, headers=ana)["data"]["me"]["displayName"] == "Ana Lee"

    for taken in ("Ana Lee", "ANA lee", "ana  LEE"):
        assert error_code(graphql(client, SET_NAME, {"n": taken}, headers=bo)) == "DISPLAY_NAME_TAKEN"
    assert (graphql(client, ME, headers=bo)["data"]["me"] or {}).get("displayName") is None
    assert graphql(client, SET_NAME, {"n": "ana lee"}, headers=ana)["data"]["setDisplayName"]["displayName"] == "ana lee"
    assert graphql(client, SET_NAME, {"n": "Ana2"}, headers=ana)["data"]["setDisplayName"]["displayName"] == "Ana2"
    # the old name is free again
    assert graphql(client, SET_NAME, {"n": "Ana Lee"}, headers=bo)["data"]["setDisplayName"]["displayName"] == "Ana Lee"
    assert error_code(graphql(client, SET_NAME, {"n": "Someone"})) == "UNAUTHENTICATED"
    admin = graphql(client, SET_NAME, {"n": "The Admin"}, headers=ROOT)
    assert admin["data"]["setDisplayName"] == {"id": "root", "displayName": "The Admin"}


def test_eight_users_asking_for_one_name_at_once_get_one_winner(client: httpx.Client, server: LiveServer) -> None:
    barrier = threading.Barrier(8)

    def ask(i: int) -> dict[str, Any]:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            barrier.wait(30)
            return graphql(http, SET_NAME, {"n": "Racer" if i % 2 else "RACER"}, headers=auth_header(f"racer-{i}"))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    winners = [a for a in answers if "errors" not in a]
    assert len(winners) == 1, answers
    assert sorted(error_code(a) for a in answers if "errors" in a) == ["DISPLAY_NAME_TAKEN"] * 7
    holders = server.run(server.services.db.users.count_documents({"display_name_key": "racer"}))
    assert holders == 1


def test_a_photo_shows_its_owner_except_inside_a_duel(client: httpx.Client, photos: dict[str, list[str]]) -> None:
    assert graphql(client, SET_NAME, {"n": "Dora D"}, headers=DORA)["data"]["setDisplayName"]
    shown = photo(client, photos["dora"][0])
    assert shown["owner"] == {"id": "dora", "displayName": "Dora D", "photoCount": 2}
    listed = graphql(client, f"{{ photos(first: 50) {{ nodes {{ id {OWNER} }} }} }}")["data"]["photos"]["nodes"]
    owners = {p["id"]: p["owner"] for p in listed}
    assert owners[photos["dora"][1]] == {"id": "dora", "displayName": "Dora D", "photoCount": 2}
    assert owners[photos["emil"][0]] == {"id": "emil", "displayName": None, "photoCount": 1}

    duel = graphql(client, f"{{ nextDuel {{ id left {{ id {OWNER} }} right {{ id {OWNER} }} }} }}",
                   headers=auth_header("player"))["data"]["nextDuel"]
    assert duel is not None
    assert duel["left"]["owner"] is None and duel["right"]["owner"] is None


def test_the_owner_or_an_admin_changes_a_title(client: httpx.Client, photos: dict[str, list[str]]) -> None:
    pid = photos["dora"][0]
    assert graphql(client, UPDATE, {"id": pid, "t": "  Dusk  "}, headers=DORA)["data"]["updatePhoto"]["title"] == "Dusk"
    too_long = graphql(client, UPDATE, {"id": pid, "t": "x" * 201}, headers=DORA)
    assert error_code(too_long) == "BAD_USER_INPUT" and too_long["errors"][0]["extensions"]["argument"] == "title"
    assert error_code(graphql(client, UPDATE, {"id": pid, "t": "Mine now"}, headers=EMIL)) == "FORBIDDEN"
    assert photo(client, pid)["title"] == "Dusk"
    assert graphql(client, UPDATE, {"id": pid, "t": "Dawn"}, headers=ROOT)["data"]["updatePhoto"]["title"] == "Dawn"
    assert graphql(client, UPDATE, {"id": pid, "t": " "}, headers=DORA)["data"]["updatePhoto"]["title"] is None
    for unknown in (str(ObjectId()), "not-an-id"):
        assert error_code(graphql(client, UPDATE, {"id": unknown, "t": "x"}, headers=DORA)) == "NOT_FOUND"
    assert error_code(graphql(client, UPDATE, {"id": pid, "t": "x"})) == "UNAUTHENTICATED"
    assert photo(client, pid)["title"] is None


def test_the_owner_or_an_admin_moves_a_photo_to_another_category(
    client: httpx.Client, server: LiveServer, photos: dict[str, list[str]]
) -> None:
    pid = photos["dora"][1]
    model = photo(client, pid)["category"]
    others = [c for c in Vocabulary.load_default().categories if c != model]

    def listed(category: str) -> list[str]:
        query = "query($c: String) { photos(category: $c, first: 50) { nodes { id } } }"
        return [p["id"] for p in graphql(client, query, {"c": category})["data"]["photos"]["nodes"]]

    assert pid in listed(model)
    moved = graphql(client, SET_CATEGORY, {"id": pid, "c": f" {others[0].upper()} "}, headers=DORA)
    assert moved["data"]["setCategory"] == {"id": pid, "category": others[0], "modelCategory": model}
    assert pid in listed(others[0]) and pid not in listed(model)

    def catalogued() -> str:
        catalogue = server.services.catalogue
        return str(catalogue.name(int(catalogue.category[catalogue.index[ObjectId(pid)]]))[1])

    assert catalogued() == others[0]  # this process's duel catalogue saw it at once

    for bad in ("no-such-category", ""):
        refused = graphql(client, SET_CATEGORY, {"id": pid, "c": bad}, headers=DORA)
        assert error_code(refused) == "BAD_USER_INPUT" and refused["errors"][0]["extensions"]["argument"] == "category"
    assert error_code(graphql(client, SET_CATEGORY, {"id": pid, "c": others[1]}, headers=EMIL)) == "FORBIDDEN"
    for unknown in (str(ObjectId()), "not-an-id"):
        assert error_code(graphql(client, SET_CATEGORY, {"id": unknown, "c": others[1]}, headers=DORA)) == "NOT_FOUND"
    assert photo(client, pid)["category"] == others[0]

    by_admin = graphql(client, SET_CATEGORY, {"id": pid, "c": others[1]}, headers=ROOT)["data"]["setCategory"]
    assert by_admin == {"id": pid, "category": others[1], "modelCategory": model}  # still the model's
    assert catalogued() == others[1]
    back = graphql(client, SET_CATEGORY, {"id": pid, "c": model}, headers=DORA)["data"]["setCategory"]
    assert back == {"id": pid, "category": model, "modelCategory": model}


def test_my_photos_list_processing_and_failed_ones_newest_first(make_settings: Callable[..., Settings]) -> None:
    """A deployment of its own: photos uploaded while no worker runs; one loses its image and fails, one
    gets READY, and one uploaded after the worker stopped stays PROCESSING."""
    settings = make_settings(job_max_attempts=1, job_retry_base_seconds=0.05)
    fay, gus = auth_header("fay"), auth_header("gus")
    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        broken, fine = (upload_ok(http, jpeg_bytes(generated_photo(1900 + i)), fay)["id"] for i in range(2))
        upload_ok(http, jpeg_bytes(generated_photo(1902)), gus)

        async def lose_display_rendition() -> None:
            doc = await api.services.db.photos.find_one({"_id": ObjectId(broken)})
            await api.services.blobs.delete(doc["blobs"]["display"])

        api.run(lose_display_rendition())
    with LiveServer(settings) as worker, httpx.Client(base_url=worker.url, timeout=60) as http:
        worker.wait_model()
        assert wait_ready(http, fine, fay)["status"] == "READY"
        assert wait_ready(http, broken, fay)["status"] == "FAILED"
    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        pending = upload_ok(http, jpeg_bytes(generated_photo(1903)), fay)["id"]

        def page(status: str | None = None, first: int = 10, after: str | None = None) -> dict[str, Any]:
            body = graphql(http, MY_PHOTOS, {"s": status, "first": first, "after": after}, headers=fay)
            assert "errors" not in body, body
            return body["data"]["me"]["photos"]

        everything = page()
        assert [(e["node"]["id"], e["node"]["status"]) for e in everything["edges"]] == [
            (pending, "PROCESSING"), (fine, "READY"), (broken, "FAILED")]
        failed = everything["edges"][2]["node"]
        assert "image unreadable" in failed["failure"]["reason"] and failed["failure"]["at"]
        assert failed["failureReason"] == failed["failure"]["reason"]
        assert everything["edges"][0]["node"]["failure"] is None

        first = page(first=2)
        assert [e["node"]["id"] for e in first["edges"]] == [pending, fine] and first["pageInfo"]["hasNextPage"]
        rest = page(first=2, after=first["pageInfo"]["endCursor"])
        assert [e["node"]["id"] for e in rest["edges"]] == [broken] and not rest["pageInfo"]["hasNextPage"]
        assert [e["node"]["id"] for e in page("FAILED")["edges"]] == [broken]
        assert [e["node"]["id"] for e in page("PROCESSING")["edges"]] == [pending]
        assert error_code(graphql(http, MY_PHOTOS, {"after": "nonsense"}, headers=fay)) == "BAD_USER_INPUT"

        gus_photos = graphql(http, MY_PHOTOS, {}, headers=gus)["data"]["me"]["photos"]["edges"]
        assert len(gus_photos) == 1 and gus_photos[0]["node"]["id"] not in (pending, fine, broken)
        assert graphql(http, MY_PHOTOS, {})["data"]["me"] is None  # anonymous: no user, no list

        # edits of a photo that is not READY: the title, yes; the category, not before the model chose one
        assert graphql(http, UPDATE, {"id": pending, "t": "Soon"}, headers=fay)["data"]["updatePhoto"]["title"] == "Soon"
        early = graphql(http, SET_CATEGORY, {"id": pending, "c": "food"}, headers=fay)
        assert error_code(early) == "BAD_USER_INPUT" and early["errors"][0]["extensions"]["argument"] == "id"
        # another user cannot even tell it exists
        assert error_code(graphql(http, UPDATE, {"id": pending, "t": "x"}, headers=gus)) == "NOT_FOUND"
