"""Automatic persisted queries (Apollo's protocol), the allow-list mode with `photoduel
register-operations`, and the GraphQL-over-HTTP media type, over real HTTP."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.graphql_http import GRAPHQL_RESPONSE_JSON, response_media_type
from photoduel.settings import Settings
from tests.servers import LiveServer, settings_env
from tests.tokens import auth_header

ALICE = auth_header("apq-alice")
ROOT = auth_header("apq-root", admin=True)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(sha256: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def stored_hashes(server: LiveServer) -> set[str]:
    async def hashes() -> set[str]:
        return {d["_id"] async for d in server.services.persisted_queries.collection.find({}, {"_id": 1})}

    return set(server.run(hashes()))


# --- automatic persisted queries -----------------------------------------------------------------------


def test_round_trip_over_post_and_get(client: httpx.Client, server: LiveServer) -> None:
    query = "query Photos($n: Int) { photos(first: $n) { nodes { id } } }"
    digest = sha(query)
    unknown = client.post("/graphql", json={"extensions": apq(digest), "variables": {"n": 2}})
    assert unknown.status_code == 200
    assert unknown.headers["content-type"] == "application/json"
    assert unknown.json()["errors"] == [{"message": "PersistedQueryNotFound",
                                         "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]
    assert digest not in stored_hashes(server)

    registered = client.post("/graphql", json={"query": query, "extensions": apq(digest), "variables": {"n": 2}})
    assert registered.json() == {"data": {"photos": {"nodes": []}}}
    assert digest in stored_hashes(server)

    by_hash = client.post("/graphql", json={"extensions": apq(digest), "variables": {"n": 2}})
    assert by_hash.json() == {"data": {"photos": {"nodes": []}}}
    by_get = client.get("/graphql", params={"extensions": json.dumps(apq(digest)), "variables": json.dumps({"n": 1}),
                                            "operationName": "Photos"})
    assert by_get.status_code == 200 and by_get.json() == {"data": {"photos": {"nodes": []}}}


def test_a_wrong_hash_is_refused_and_not_stored(client: httpx.Client, server: LiveServer) -> None:
    query = "{ me { id } }"
    wrong = sha("something else")
    body = client.post("/graphql", json={"query": query, "extensions": apq(wrong)}).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert sha(query) in body["errors"][0]["message"]
    assert {wrong, sha(query)}.isdisjoint(stored_hashes(server))


@pytest.mark.parametrize("extensions", [
    {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}},
    {"persistedQuery": {"version": 1, "sha256Hash": "not hex"}},
    {"persistedQuery": "yes"},
])
def test_a_malformed_persisted_query_is_refused(client: httpx.Client, extensions: dict[str, Any]) -> None:
    body = client.post("/graphql", json={"query": "{ me { id } }", "extensions": extensions}).json()
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_SUPPORTED"


def test_an_invalid_operation_is_not_stored(client: httpx.Client, server: LiveServer) -> None:
    query = "{ noSuchField }"
    body = client.post("/graphql", json={"query": query, "extensions": apq(sha(query))}).json()
    assert body["data"] is None and body["errors"]
    assert sha(query) not in stored_hashes(server)


def test_a_mutation_never_runs_over_get(client: httpx.Client, server: LiveServer) -> None:
    mutation = 'mutation { unregisterDevice(token: "no-such-device") }'
    assert client.post("/graphql", json={"query": mutation, "extensions": apq(sha(mutation))},
                       headers=ALICE).json() == {"data": {"unregisterDevice": False}}
    assert sha(mutation) in stored_hashes(server)
    refused = client.get("/graphql", params={"extensions": json.dumps(apq(sha(mutation)))}, headers=ALICE)
    assert refused.status_code in (400, 405)
    assert "mutation" in refused.text.lower()
    refused_text = client.get("/graphql", params={"query": mutation, "extensions": json.dumps(apq(sha(mutation)))},
                              headers=ALICE)
    assert refused_text.status_code in (400, 405)


# --- the allow-list ------------------------------------------------------------------------------------

ALLOWED = """query Mine {
  me { id }
}
"""


@pytest.fixture(scope="module")
def allow_list_server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with LiveServer(make_settings(persisted_queries_only=True), run_worker=False) as live:
        yield live


def test_allow_list_mode_runs_only_registered_operations(allow_list_server: LiveServer, tmp_path: Path) -> None:
    live = allow_list_server
    with httpx.Client(base_url=live.url, timeout=60) as http:
        refused = http.post("/graphql", json={"query": ALLOWED}, headers=ALICE).json()
        assert refused["errors"][0]["extensions"]["code"] == "OPERATION_NOT_ALLOWED"
        refused = http.post("/graphql", json={"query": ALLOWED, "extensions": apq(sha(ALLOWED))}, headers=ALICE).json()
        assert refused["errors"][0]["extensions"]["code"] == "OPERATION_NOT_ALLOWED"
        assert sha(ALLOWED) not in stored_hashes(live)  # a client registers nothing in this mode

        path = tmp_path / "mine.graphql"
        path.write_text(ALLOWED)
        done = subprocess.run([sys.executable, "-m", "photoduel.cli", "register-operations", str(path)],
                              env=settings_env(live.settings), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert sha(ALLOWED) in done.stdout

        expected = {"data": {"me": {"id": "apq-alice"}}}
        assert http.post("/graphql", json={"query": ALLOWED}, headers=ALICE).json() == expected
        assert http.post("/graphql", json={"extensions": apq(sha(ALLOWED))}, headers=ALICE).json() == expected
        printed = "query Mine {\n  me {\n    id\n  }\n}"  # as graphql-js's print() sends it
        assert http.post("/graphql", json={"query": printed}, headers=ALICE).json() == expected

        other = "{ me { email } }"
        assert http.post("/graphql", json={"query": other}, headers=ALICE).json()["errors"][0]["extensions"][
            "code"] == "OPERATION_NOT_ALLOWED"
        by_admin = http.post("/graphql", json={"query": other}, headers=ROOT).json()
        assert by_admin == {"data": {"me": {"email": "apq-root@example.com"}}}
        assert http.post("/graphql", json={"query": other}, headers=ALICE).json() == {
            "data": {"me": {"email": "apq-alice@example.com"}}}  # an admin's operation is registered


def test_register_operations_refuses_a_file_that_does_not_parse(allow_list_server: LiveServer,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "broken.graphql"
    path.write_text("query { me { id }")
    done = subprocess.run([sys.executable, "-m", "photoduel.cli", "register-operations", str(path)],
                          env=settings_env(allow_list_server.settings), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "broken.graphql" in done.stderr


# --- application/graphql-response+json -----------------------------------------------------------------


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "application/json"),
    ("*/*", "application/json"),
    ("application/json", "application/json"),
    (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
    (f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
    (f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5", "application/json"),
    (f"{GRAPHQL_RESPONSE_JSON};q=0", "application/json"),
])
def test_media_type_negotiation(accept: str | None, expected: str) -> None:
    assert response_media_type(accept) == expected


NEW = {"Accept": GRAPHQL_RESPONSE_JSON}


def test_graphql_response_json_is_answered_with_its_status_codes(client: httpx.Client) -> None:
    ok = client.post("/graphql", json={"query": "{ me { id } }"}, headers=NEW)
    assert ok.status_code == 200 and ok.headers["content-type"] == GRAPHQL_RESPONSE_JSON
    assert ok.json() == {"data": {"me": None}}

    for query in ("{ noSuchField }", "{ me { id }", '{ photo(id: "x") { ' + " ".join(
            f"a{i}: id" for i in range(31)) + " } }"):
        refused = client.post("/graphql", json={"query": query}, headers=NEW)
        assert refused.status_code == 400, query
        assert refused.headers["content-type"] == GRAPHQL_RESPONSE_JSON
        assert "data" not in refused.json() and refused.json()["errors"]

    field_error = client.post("/graphql", json={"query": "mutation { skipDuel(duelId: \"x\") }"}, headers=NEW)
    assert field_error.status_code == 200  # it executed: a field's error is not the request's
    assert field_error.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_graphql_response_json_for_a_request_that_is_not_graphql(client: httpx.Client) -> None:
    bad_json = client.post("/graphql", content=b"{not json", headers={**NEW, "Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.headers["content-type"] == GRAPHQL_RESPONSE_JSON
    assert bad_json.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    no_query = client.post("/graphql", json={}, headers=NEW)
    assert no_query.status_code == 400 and "data" not in no_query.json()
    mutation_over_get = client.get("/graphql", params={"query": "mutation { skipDuel(duelId: \"x\") }"}, headers=NEW)
    assert mutation_over_get.status_code in (400, 405)
    assert mutation_over_get.headers["content-type"] == GRAPHQL_RESPONSE_JSON


def test_legacy_clients_keep_200_and_application_json(client: httpx.Client) -> None:
    for headers in ({}, {"Accept": "application/json"}, {"Accept": "*/*"}):
        refused = client.post("/graphql", json={"query": "{ noSuchField }"}, headers=headers)
        assert refused.status_code == 200
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["data"] is None
    unknown = client.post("/graphql", json={"extensions": apq("0" * 64)}, headers=NEW)
    assert unknown.status_code == 200  # Apollo's link resends the text on this answer, whatever the media type
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"
