"""The API over real HTTP: health, readiness, a GraphQL query, and who is calling."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.servers import LiveServer, graphql
from tests.tokens import auth_header, mint_token

ME = "{ me { id email admin } }"


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_mongodb_milvus_and_the_model(client: httpx.Client, server: LiveServer) -> None:
    server.wait_model()
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"]["mongodb"]["status"] == "up"
    assert body["checks"]["milvus"]["status"] == "up"
    assert body["checks"]["model"]["status"] == "ready"


def test_a_graphql_query_over_http(client: httpx.Client) -> None:
    body = graphql(client, "{ photos(first: 5) { edges { node { id } } pageInfo { hasNextPage endCursor } } }")
    assert body == {"data": {"photos": {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}}}


def test_get_is_for_queries_only(client: httpx.Client) -> None:
    ok = client.get("/graphql", params={"query": "{ me { id } }"})
    assert ok.status_code == 200 and ok.json() == {"data": {"me": None}}
    refused = client.get("/graphql", params={"query": 'mutation { rejectTags(photoId: "x", tags: ["a"]) { id } }'})
    assert refused.status_code in (400, 405)  # mutations only over POST: a GET link must never change state
    assert "mutation" in refused.text.lower()


def test_me_anonymous_is_null(client: httpx.Client) -> None:
    assert graphql(client, ME) == {"data": {"me": None}}


def test_me_with_a_valid_token_creates_the_user(client: httpx.Client, server: LiveServer) -> None:
    body = graphql(client, ME, headers=auth_header("alice"))
    assert body["data"]["me"] == {"id": "alice", "email": "alice@example.com", "admin": False}
    doc = server.run(server.services.users.get("alice"))
    assert doc is not None and doc["created_at"] is not None


def test_admin_claim_gives_admin(client: httpx.Client) -> None:
    body = graphql(client, ME, headers=auth_header("root", admin=True))
    assert body["data"]["me"]["admin"] is True


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Bearer " + mint_token("mallory", project_id="someone-elses-project"),
        "Bearer " + mint_token("mallory", expires_in=-3600, issued_ago=7200),
        "Bearer " + mint_token("mallory", issuer="https://evil.example.com/demo-photoduel"),
        "Basic YWxpY2U6c2VjcmV0",
    ],
    ids=["garbage", "wrong-project", "expired", "forged-issuer", "not-bearer"],
)
def test_bad_tokens_are_unauthenticated(client: httpx.Client, header: str) -> None:
    response = client.post("/graphql", json={"query": ME}, headers={"Authorization": header})
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"]


def test_page_size_is_capped(client: httpx.Client) -> None:
    body = graphql(client, "{ photos(first: 1000) { edges { cursor } } }")
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "first"}


def test_a_bad_cursor_is_bad_user_input(client: httpx.Client) -> None:
    body = graphql(client, '{ photos(after: "garbage!!") { edges { cursor } } }')
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_query_depth_is_limited(client: httpx.Client) -> None:
    deep = "{ photos { edges { node { " + "duplicateOf { " * 12 + "id" + " }" * 12 + " } } } }"
    body = graphql(client, deep)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


def test_graphiql_is_served_in_dev(client: httpx.Client) -> None:
    response = client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
