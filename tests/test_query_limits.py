"""What one request may ask for, over real HTTP: operation cost, aliases after spreading fragments,
introspection, the body caps by content type, and the caps on list arguments. A refused request runs no
resolver: the mutations here would change stored documents, and nothing changed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from photoduel.settings import Settings
from tests.servers import LiveServer, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_ok, wait_ready

ALICE = auth_header("limits-alice")
ROOT = auth_header("limits-root", admin=True)
THIRTY_ALIASES = "fragment Thirty on Photo { " + " ".join(f"a{i}: id" for i in range(30)) + " }"


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def photo(client: httpx.Client) -> dict[str, Any]:
    uploaded = upload_ok(client, jpeg_bytes(generated_photo(7)), ALICE)
    return wait_ready(client, uploaded["id"], ALICE)


def stored(server: LiveServer, photo_id: str) -> dict[str, Any]:
    from bson import ObjectId

    doc = server.run(server.services.photos.get(ObjectId(photo_id)))
    assert doc is not None
    return {k: doc.get(k) for k in ("tags", "rejected_tags")}  # updated_at: the face check writes it too


def error_code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


# --- cost and aliases ----------------------------------------------------------------------------------


def test_thirty_aliased_searches_are_too_costly(client: httpx.Client) -> None:
    query = "{ " + " ".join(f's{i}: searchPhotos(text: "cat") {{ id }}' for i in range(30)) + " }"
    body = graphql(client, query)
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["cost"] > error["extensions"]["maxCost"] == 5000
    assert "over the limit of 5000" in error["message"]


def test_a_few_searches_are_within_the_cost(client: httpx.Client, server: LiveServer) -> None:
    server.wait_model()
    body = graphql(client, '{ a: searchPhotos(text: "cat", first: 3) { id } b: searchPhotos(text: "dog") { id } }')
    assert "errors" not in body, body


def test_a_page_multiplies_what_it_selects(client: httpx.Client) -> None:
    nested = "duplicateOf { " * 6 + "id" + " }" * 6
    body = graphql(client, f"{{ photos(first: 100) {{ nodes {{ {nested} }} }} }}")  # 100 x 7 objects: within
    assert "errors" not in body, body
    suggestions = "suggestions { tag } celebrity { people { name } } rating { score } quality { score }"
    many = " ".join(f"p{i}: photos(first: 100) {{ nodes {{ {nested} {suggestions} }} }}" for i in range(5))
    body = graphql(client, f"{{ {many} }}")
    assert error_code(body) == "QUERY_TOO_COSTLY"


def test_a_fragment_of_thirty_aliases_spread_twice_is_refused_and_nothing_runs(
        client: httpx.Client, server: LiveServer, photo: dict[str, Any]) -> None:
    before = stored(server, photo["id"])
    twice = (f'mutation {{ rejectTags(photoId: "{photo["id"]}", tags: ["zzz"]) {{ ...Thirty duplicateOf {{ ...Thirty }} }} }}'
             f" {THIRTY_ALIASES}")
    body = graphql(client, twice, headers=ALICE)
    assert error_code(body) == "TOO_MANY_ALIASES"
    assert body["errors"][0]["extensions"]["aliases"] == 60
    assert stored(server, photo["id"]) == before  # the resolver did not run
    assert "errors" not in graphql(client, "query($id: ID!) { photo(id: $id) { ...Thirty } } " + THIRTY_ALIASES,
                                   {"id": photo["id"]}, headers=ALICE)  # one spread: within the limit


def test_nested_fragments_cannot_blow_up(client: httpx.Client) -> None:
    """Four small fragments, each spreading the one before under 30 aliases: 30^3 fields once expanded."""
    fragments = ["fragment F0 on Photo { id }"] + [
        f"fragment F{i} on Photo {{ " + " ".join(f"a{j}: duplicateOf {{ ...F{i - 1} }}" for j in range(30)) + " }"
        for i in range(1, 4)]
    body = graphql(client, '{ photo(id: "x") { ...F3 } } ' + " ".join(fragments))
    assert body["data"] is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"QUERY_TOO_COSTLY", "TOO_MANY_ALIASES"}
    assert body["errors"][0]["extensions"]["cost"] == 1 + 30 + 30**2 + 30**3  # photo, then each level
    deep = ["fragment D0 on Photo { duplicateOf { id } }"] + [
        f"fragment D{i} on Photo {{ ...D{i - 1} d: duplicateOf {{ ...D{i - 1} }} }}" for i in range(1, 40)]
    body = graphql(client, '{ photo(id: "x") { ...D39 } } ' + " ".join(deep))  # 2^40 fields: the depth limit
    assert body["data"] is None and body["errors"]


def test_expensive_mutations_are_weighted_and_refused_before_any_upload(
        client: httpx.Client, server: LiveServer) -> None:
    before = server.run(server.services.db.photos.count_documents({}))
    fields = " ".join(f"u{i}: uploadPhoto(file: $file) {{ id }}" for i in range(6))
    operations = {"query": f"mutation($file: Upload!) {{ {fields} }}", "variables": {"file": None}}
    response = client.post("/graphql", data={"operations": json.dumps(operations),
                                             "map": json.dumps({"0": ["variables.file"]})},
                           files={"0": ("a.jpg", jpeg_bytes(generated_photo(1)), "image/jpeg")},
                           headers={**ALICE, "Apollo-Require-Preflight": "true"})
    assert response.status_code == 200
    assert error_code(response.json()) == "QUERY_TOO_COSTLY"
    assert server.run(server.services.db.photos.count_documents({})) == before


def test_a_page_size_from_a_variable_counts_as_the_largest(client: httpx.Client) -> None:
    nested = "duplicateOf { " * 8 + "id" + " }" * 8
    many = " ".join(f"p{i}: photos(first: $n) {{ nodes {{ {nested} }} }}" for i in range(7))
    assert error_code(graphql(client, f"query($n: Int) {{ {many} }}", {"n": 1})) == "QUERY_TOO_COSTLY"
    assert "errors" not in graphql(client, f"query($n: Int = 1) {{ {many} }}", {"n": 1})


# --- introspection -------------------------------------------------------------------------------------

INTROSPECTION = "{ __schema { queryType { name } } }"


def test_introspection_is_on_in_dev(client: httpx.Client) -> None:
    assert graphql(client, INTROSPECTION) == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def test_introspection_is_off_in_prod_unless_turned_on(make_settings: Callable[..., Settings],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)  # prod refuses the emulator
    for overrides, allowed in (({}, False), ({"graphql_introspection": True}, True)):
        with LiveServer(make_settings(env="prod", **overrides), run_worker=False) as live, \
                httpx.Client(base_url=live.url, timeout=30) as http:
            body = graphql(http, INTROSPECTION)
            if allowed:
                assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
            else:
                assert body["data"] is None
                assert error_code(body) == "INTROSPECTION_DISABLED"
                assert len(body["errors"]) == 1
                assert graphql(http, "{ __typename photos(first: 1) { nodes { id } } }")["data"]["__typename"] == "Query"


# --- bodies --------------------------------------------------------------------------------------------


def test_a_json_body_over_its_cap_is_413(client: httpx.Client, server: LiveServer) -> None:
    cap = server.settings.max_json_body_bytes
    padding = " " * cap
    response = client.post("/graphql", content=json.dumps({"query": "{ me { id } }" + padding}),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert str(cap) in error["message"] and "PHOTODUEL_MAX_JSON_BODY_BYTES" in error["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams in
        yield b'{"query": "{ me { id } }", "variables": {"x": "'
        for _ in range(cap // 1024 + 1):
            yield b"x" * 1024
        yield b'"}}'

    streamed = client.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_a_multipart_upload_of_several_megabytes_works(client: httpx.Client) -> None:
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(3).integers(0, 255, (1400, 1400, 3), dtype=np.uint8)
    data = jpeg_bytes(Image.fromarray(noise), quality=100)
    assert len(data) > 3 * 1024 * 1024
    assert upload_ok(client, data, ALICE)["status"] == "PROCESSING"


# --- list arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "count", "cap"), [("acceptTags", 31, 30), ("rejectTags", 31, 30)])
def test_tag_lists_are_capped(client: httpx.Client, server: LiveServer, photo: dict[str, Any], field: str,
                              count: int, cap: int) -> None:
    before = stored(server, photo["id"])
    tags = [f"tag{i}" for i in range(count)]
    body = graphql(client, f"mutation($id: ID!, $tags: [String!]!) {{ {field}(photoId: $id, tags: $tags) {{ id }} }}",
                   {"id": photo["id"], "tags": tags}, headers=ALICE)
    error = body["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "tags", "max": cap}
    assert f"at most {cap}" in error["message"]
    assert stored(server, photo["id"]) == before


def test_vocabulary_additions_are_capped(client: httpx.Client, server: LiveServer) -> None:
    tags = [f"word{i}" for i in range(101)]
    body = graphql(client, "mutation($tags: [String!]!) { addVocabularyTags(tags: $tags) }", {"tags": tags},
                   headers=ROOT)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "tags", "max": 100}
    assert server.run(server.services.vocabulary.extra_tags()) == []


def test_mark_read_ids_are_capped(client: httpx.Client) -> None:
    ids = ["0" * 24] * 101
    body = graphql(client, "mutation($ids: [ID!]!) { markNotificationsRead(ids: $ids) }", {"ids": ids},
                   headers=ALICE)
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["argument"] == "ids"
    assert "100" in error["message"]


def test_enrolment_files_are_capped(client: httpx.Client, server: LiveServer) -> None:
    count = 21
    operations = {"query": "mutation($files: [Upload!]!) { enrollCelebrity(name: \"Many\", files: $files) { name } }",
                  "variables": {"files": [None] * count}}
    files = {str(i): (f"{i}.jpg", b"x", "image/jpeg") for i in range(count)}
    response = client.post("/graphql", data={"operations": json.dumps(operations),
                                             "map": json.dumps({str(i): [f"variables.files.{i}"] for i in range(count)})},
                           files=files, headers={**ROOT, "Apollo-Require-Preflight": "true"})
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "files", "max": 20}
    assert server.run(server.services.gallery.names()) == []


def test_the_stored_rejected_list_is_capped(client: httpx.Client, server: LiveServer, photo: dict[str, Any]) -> None:
    from storage.photos import MAX_REJECTED_TAGS

    mutation = "mutation($id: ID!, $tags: [String!]!) { rejectTags(photoId: $id, tags: $tags) { id } }"
    for batch in range(MAX_REJECTED_TAGS // 30 + 2):
        tags = [f"junk{batch}x{i}" for i in range(30)]
        assert "errors" not in graphql(client, mutation, {"id": photo["id"], "tags": tags}, headers=ALICE)
    rejected = stored(server, photo["id"])["rejected_tags"]
    assert len(rejected) == MAX_REJECTED_TAGS
    assert rejected[-1] == f"junk{MAX_REJECTED_TAGS // 30 + 1}x29"  # the most recent are kept


async def test_racing_tag_acceptances_stay_within_the_cap(server: LiveServer, photo: dict[str, Any]) -> None:
    from storage.photos import MAX_TAGS_PER_PHOTO

    mutation = "mutation($id: ID!, $tags: [String!]!) { acceptTags(photoId: $id, tags: $tags) { id } }"
    batches = [[f"race{n}x{i}" for i in range(20)] for n in range(4)]
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        responses = await asyncio.gather(*[
            http.post("/graphql", json={"query": mutation, "variables": {"id": photo["id"], "tags": tags}},
                      headers=ALICE) for tags in batches])
    bodies = [r.json() for r in responses]
    assert sum("errors" not in b for b in bodies) == 1, bodies  # 20 + 20 > 30: exactly one fits
    assert all(b["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" for b in bodies if "errors" in b)
    assert len(stored(server, photo["id"])["tags"]) == 20 <= MAX_TAGS_PER_PHOTO
