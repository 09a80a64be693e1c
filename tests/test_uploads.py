"""Uploads over real HTTP multipart, through the real worker, tiny CLIP and milvus-lite, to READY."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from photoduel.settings import Settings
from tests.servers import LiveServer, graphql
from tests.tokens import auth_header
from tests.uploads import (
    fetch_photo,
    generated_photo,
    jpeg_bytes,
    near_copy,
    skimage_photo,
    upload,
    upload_ok,
    wait_ready,
)

ALICE = auth_header("alice")
BOB = auth_header("bob")


@pytest.fixture(scope="module")
def astronaut(client: httpx.Client) -> dict[str, Any]:
    photo = upload_ok(client, jpeg_bytes(skimage_photo("astronaut")), ALICE, title="Eileen")
    return wait_ready(client, photo["id"], ALICE)


def stored_counts(server: LiveServer) -> tuple[int, int, int]:
    db = server.services.db

    async def counts() -> tuple[int, int, int]:
        return (await db.photos.count_documents({}), await db["images.files"].count_documents({}),
                await db.jobs.count_documents({}))

    return server.run(counts())


def test_upload_reaches_ready_with_suggestions_category_and_quality(astronaut: dict[str, Any]) -> None:
    assert astronaut["status"] == "READY"
    assert astronaut["title"] == "Eileen"
    assert astronaut["category"]
    assert len(astronaut["suggestions"]) > 0
    for suggestion in astronaut["suggestions"]:
        assert suggestion["source"] in {"clip", "neighbours", "clip+neighbours"}
        assert 0.0 <= suggestion["score"] <= 1.0
    quality = astronaut["quality"]
    assert 0.0 <= quality["score"] <= 1.0
    assert all(0.0 <= quality[k] <= 1.0 for k in ("sharpness", "exposure", "noise", "resolution", "aesthetic"))
    assert 1.0 <= astronaut["rating"]["score"] <= 10.0 and astronaut["rating"]["votes"] == 0


def test_upload_returns_at_once_as_processing(client: httpx.Client) -> None:
    photo = upload_ok(client, jpeg_bytes(generated_photo(101)), ALICE)
    assert photo["status"] in ("PROCESSING", "READY")
    wait_ready(client, photo["id"], ALICE)


def test_the_same_bytes_from_the_same_owner_return_the_same_photo(client: httpx.Client) -> None:
    data = jpeg_bytes(generated_photo(202))
    first = upload_ok(client, data, ALICE)
    second = upload_ok(client, data, ALICE)
    assert first["id"] == second["id"]
    other_owner = upload_ok(client, data, BOB)
    assert other_owner["id"] != first["id"]


def test_renditions_are_served_with_etag_and_no_exif(client: httpx.Client, astronaut: dict[str, Any]) -> None:
    url = astronaut["url"]
    assert url.startswith("http://127.0.0.1:")
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert "max-age" in response.headers["cache-control"]
    etag = response.headers["etag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert not Image.open(io.BytesIO(response.content)).getexif()
    for variant in ("original", "thumbnail"):
        assert client.get(f"/images/{astronaut['id']}/{variant}").status_code == 200
    assert client.get(f"/images/{astronaut['id']}/raw").status_code == 404
    assert client.get("/images/nonsense/display").status_code == 404


def test_a_near_copy_is_most_similar_and_marked_duplicate(client: httpx.Client, astronaut: dict[str, Any]) -> None:
    unrelated = [upload_ok(client, jpeg_bytes(skimage_photo(n)), BOB) for n in ("coffee", "chelsea", "rocket")]
    copy = upload_ok(client, near_copy(skimage_photo("astronaut")), BOB)
    copy = wait_ready(client, copy["id"], BOB)
    for photo in unrelated:
        done = wait_ready(client, photo["id"], BOB)
        assert done["duplicateOf"] is None
    assert copy["duplicateOf"] == {"id": astronaut["id"]}

    query = "query($id: ID!) { similarPhotos(photoId: $id, first: 5) { photo { id } similarity } }"
    similar = graphql(client, query, {"id": copy["id"]})["data"]["similarPhotos"]
    assert similar[0]["photo"]["id"] == astronaut["id"]
    assert similar[0]["similarity"] > 0.95
    assert all(s["similarity"] < similar[0]["similarity"] for s in similar[1:])
    # and the original learnt about its copy (new photos are offered to their neighbours' lists)
    back = graphql(client, query, {"id": astronaut["id"]})["data"]["similarPhotos"]
    assert back[0]["photo"]["id"] == copy["id"]


def test_accepted_tags_make_a_photo_findable_and_feed_neighbours(client: httpx.Client,
                                                                 astronaut: dict[str, Any]) -> None:
    mutation = "mutation($id: ID!, $tags: [String!]!) { acceptTags(photoId: $id, tags: $tags) { tags suggestions { tag } } }"
    body = graphql(client, mutation, {"id": astronaut["id"], "tags": ["Astronaut ", "space suit"]}, headers=ALICE)
    assert body["data"]["acceptTags"]["tags"] == ["astronaut", "space suit"]
    found = graphql(client, '{ photos(tag: "astronaut") { edges { node { id } } } }')["data"]["photos"]["edges"]
    assert [e["node"]["id"] for e in found] == [astronaut["id"]]

    forbidden = graphql(client, mutation, {"id": astronaut["id"], "tags": ["x"]}, headers=BOB)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = graphql(client, mutation, {"id": astronaut["id"], "tags": ["x"]})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    reject = "mutation($id: ID!, $tags: [String!]!) { rejectTags(photoId: $id, tags: $tags) { tags } }"
    assert graphql(client, reject, {"id": astronaut["id"], "tags": ["space suit"]},
                   headers=ALICE)["data"]["rejectTags"]["tags"] == ["astronaut"]

    # A near copy uploaded now gets "astronaut" from its neighbour's accepted tags.
    copy = upload_ok(client, near_copy(skimage_photo("astronaut").rotate(0.5)), auth_header("carol"))
    done = wait_ready(client, copy["id"], auth_header("carol"))
    by_tag = {s["tag"]: s for s in done["suggestions"]}
    assert "astronaut" in by_tag and "neighbours" in by_tag["astronaut"]["source"]


def test_a_tag_filter_is_normalised_the_way_accepted_tags_are(client: httpx.Client) -> None:
    """Accepted tags are stored through `normalise_tag` (trimmed, lower-case, inner spaces collapsed); a
    filter spelled with odd case and a double space must find the photo all the same."""
    tagger = auth_header("tagger")
    photo = upload_ok(client, jpeg_bytes(generated_photo(1515)), tagger)
    wait_ready(client, photo["id"], tagger)
    mutation = "mutation($id: ID!, $tags: [String!]!) { acceptTags(photoId: $id, tags: $tags) { tags } }"
    accepted = graphql(client, mutation, {"id": photo["id"], "tags": ["Harbour At  Dusk"]}, headers=tagger)
    assert accepted["data"]["acceptTags"]["tags"] == ["harbour at dusk"]
    query = "query($tag: String) { photos(tag: $tag, first: 100) { edges { node { id } } } }"
    for spelling in ("harbour at dusk", "  Harbour  AT   dusk ", "HARBOUR\tAT DUSK"):
        found = graphql(client, query, {"tag": spelling})["data"]["photos"]["edges"]
        assert [e["node"]["id"] for e in found] == [photo["id"]], spelling
    blank = graphql(client, query, {"tag": "   "})
    assert blank["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_search_by_text_and_by_category(client: httpx.Client, astronaut: dict[str, Any]) -> None:
    body = graphql(client, '{ searchPhotos(text: "a woman in a space suit", first: 3) { id status } }')
    results = body["data"]["searchPhotos"]
    assert 1 <= len(results) <= 3 and all(r["status"] == "READY" for r in results)
    empty = graphql(client, '{ searchPhotos(text: "   ") { id } }')
    assert empty["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    category = astronaut["category"]
    listed = graphql(client, f'{{ photos(category: "{category}", first: 100) {{ edges {{ node {{ id }} }} }} }}')
    assert astronaut["id"] in [e["node"]["id"] for e in listed["data"]["photos"]["edges"]]


def test_photos_paginate_with_cursors(client: httpx.Client) -> None:
    pager = auth_header("pager")  # its own photos: enough for several pages whatever ran before
    mine = [upload_ok(client, jpeg_bytes(generated_photo(seed)), pager)["id"] for seed in (404, 405, 406, 407, 408)]
    for photo_id in mine:
        wait_ready(client, photo_id, pager)
    query = "query($after: String) { photos(first: 2, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"
    seen: list[str] = []
    after = None
    while True:
        page = graphql(client, query, {"after": after})["data"]["photos"]
        assert 1 <= len(page["edges"]) <= 2
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) >= len(mine)  # no photo twice
    assert set(mine) <= set(seen)  # and none of its own missed


def tiny_png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size over a tiny body: the classic decompression bomb."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def big_flat_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


BAD_INPUTS = {
    "not-an-image": (b"hello, this is a text file\n" * 20, "text/plain", "notes.txt", "NOT_AN_IMAGE"),
    "truncated-jpeg": (jpeg_bytes(skimage_photo("coffee"))[:6000], "image/jpeg", "cut.jpg", "TRUNCATED"),
    "zero-bytes": (b"", "image/jpeg", "empty.jpg", "EMPTY"),
    "decompression-bomb": (tiny_png_claiming(60_000, 60_000), "image/png", "bomb.png", "TOO_MANY_PIXELS"),
    "wrong-declared-type": (jpeg_bytes(generated_photo(7)), "image/png", "photo.png", "TYPE_MISMATCH"),
    "huge-pixel-count": (big_flat_png(8000, 7000), "image/png", "huge.png", "TOO_MANY_PIXELS"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_gets_a_clear_error_and_stores_nothing(client: httpx.Client, server: LiveServer, case: str) -> None:
    data, content_type, filename, reason = BAD_INPUTS[case]
    before = stored_counts(server)
    response = upload(client, data, ALICE, filename=filename, content_type=content_type)
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["reason"] == reason
    assert len(error["message"]) > 10
    assert stored_counts(server) == before


def test_over_the_size_cap(client: httpx.Client, server: LiveServer) -> None:
    before = stored_counts(server)
    cap = server.settings.max_upload_bytes
    just_over = np.random.default_rng(0).bytes(cap + 10)
    response = upload(client, just_over, ALICE)
    assert response.json()["errors"][0]["extensions"]["reason"] == "TOO_LARGE"
    way_over = upload(client, just_over + b"\0" * (2 * 1024 * 1024), ALICE)
    assert way_over.status_code == 413
    assert way_over.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert stored_counts(server) == before


def test_a_missing_file_part(client: httpx.Client, server: LiveServer) -> None:
    before = stored_counts(server)
    operations = '{"query": "mutation($file: Upload!) { uploadPhoto(file: $file) { id } }", "variables": {"file": null}}'
    response = client.post("/graphql", data={"operations": operations, "map": '{"0": ["variables.file"]}'},
                           files={"other": ("x.txt", b"x", "text/plain")},
                           headers={**ALICE, "Apollo-Require-Preflight": "true"})
    assert response.status_code == 400
    assert "missing" in response.text.lower()
    assert stored_counts(server) == before


def test_uploads_need_a_preflight_header_and_a_user(client: httpx.Client, server: LiveServer) -> None:
    before = stored_counts(server)
    no_preflight = upload(client, jpeg_bytes(generated_photo(9)), ALICE, preflight=False)
    assert no_preflight.status_code == 400 and "Apollo-Require-Preflight" in no_preflight.text
    anonymous = upload(client, jpeg_bytes(generated_photo(9)), {})
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert stored_counts(server) == before


def test_processing_photos_are_private_to_their_owner(make_settings: Callable[..., Settings]) -> None:
    """A deployment of its own: while no worker runs, its photo stays PROCESSING for every check."""
    settings = make_settings()
    listing = "{ photos(first: 100) { edges { node { id } } } }"
    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        photo = upload_ok(http, jpeg_bytes(generated_photo(303)), ALICE)
        assert fetch_photo(http, photo["id"], ALICE)["status"] == "PROCESSING"
        assert fetch_photo(http, photo["id"], BOB) is None
        assert fetch_photo(http, photo["id"], {}) is None
        assert fetch_photo(http, photo["id"], auth_header("root", admin=True))["status"] == "PROCESSING"
        listed = graphql(http, listing, headers=BOB)["data"]["photos"]["edges"]
        assert photo["id"] not in [e["node"]["id"] for e in listed]
    with LiveServer(settings) as worker, httpx.Client(base_url=worker.url, timeout=60) as http:
        worker.wait_model()
        done = wait_ready(http, photo["id"], ALICE)
        assert fetch_photo(http, photo["id"], BOB)["status"] == done["status"] == "READY"
        listed = graphql(http, listing, headers=BOB)["data"]["photos"]["edges"]
        assert photo["id"] in [e["node"]["id"] for e in listed]
        assert fetch_photo(http, "not-an-id", BOB) is None
