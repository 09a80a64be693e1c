"""Security headers on every response and CORS for the configured origins, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from photoduel.settings import Settings
from tests.servers import LiveServer

ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.net"


@pytest.fixture(scope="module")
def client(make_settings: Callable[..., Settings]) -> Iterator[httpx.Client]:
    settings = make_settings(cors_origins=f"{ALLOWED}, https://admin.example.com", behind_tls=True)
    with LiveServer(settings, run_worker=False) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        yield http


def _api_responses(client: httpx.Client) -> list[httpx.Response]:
    return [
        client.get("/healthz"),
        client.post("/graphql", json={"query": "{ me { id } }"}),
        client.post("/graphql", json={"query": "{ nope }"}),  # an error answer
        client.get("/images/000000000000000000000000/display"),  # a 404
        client.post("/graphql", content=b"{", headers={"content-type": "application/json"}),  # unparsable
    ]


def test_every_api_response_carries_the_security_headers(client: httpx.Client) -> None:
    for response in _api_responses(client):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", response.url
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert headers["strict-transport-security"].startswith("max-age=")  # behind_tls
        assert headers["x-request-id"]


def test_the_dev_graphiql_page_is_not_locked_by_the_api_policy_but_cannot_be_framed(client: httpx.Client) -> None:
    page = client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert page.headers["x-frame-options"] == "DENY"


def _preflight(client: httpx.Client, origin: str) -> httpx.Response:
    return client.options("/graphql", headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, apollo-require-preflight",
    })


def test_a_preflight_from_an_allowed_origin_is_answered(client: httpx.Client) -> None:
    response = _preflight(client, ALLOWED)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "apollo-require-preflight" in allowed_headers
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers  # bearer tokens, not cookies


def test_a_preflight_from_another_origin_is_refused(client: httpx.Client) -> None:
    response = _preflight(client, REFUSED)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_a_cross_origin_request_sees_the_request_id_only_when_allowed(client: httpx.Client) -> None:
    allowed = client.post("/graphql", json={"query": "{ me { id } }"}, headers={"origin": ALLOWED})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    exposed = allowed.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed and "retry-after" in exposed
    other = client.post("/graphql", json={"query": "{ me { id } }"}, headers={"origin": REFUSED})
    assert "access-control-allow-origin" not in other.headers
