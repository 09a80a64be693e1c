"""Request ids and logs an operator can alert on, over real HTTP.

Each request gets an id (the client's `X-Request-ID` when it is safe, else a new one), echoed in the
response, in every log line of the request and in a masked error's extensions. A client's mistake is an
info line without a traceback; only the unexpected is an error, with its traceback and the request id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId

from photoduel.settings import Settings
from tests.servers import LiveServer
from tests.tokens import auth_header

SEARCH = "query($t: String!) { searchPhotos(text: $t, first: 5) { id } }"
REJECT = "mutation($id: ID!, $tags: [String!]!) { rejectTags(photoId: $id, tags: $tags) { id } }"
PHOTO = "query($id: ID!) { photo(id: $id) { id title } }"
GENERATED = re.compile(r"[0-9a-f]{32}")


class EmitTimeCapture(logging.Handler):
    """Formats each record when it is emitted, with the service's own formatter, as the real handler
    does: the request id comes from the emitting request's context, for stdlib loggers too."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.formatter_ = formatter or logging.Formatter()
        self.lines: list[tuple[logging.LogRecord, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record, self.formatter_.format(record)))

    def mentioning(self, text: str) -> list[tuple[logging.LogRecord, str]]:
        return [(r, line) for r, line in self.lines if text in line]


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with LiveServer(make_settings(rate_limit_searches="1/hour"), run_worker=False) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


@pytest.fixture
def logs() -> Iterator[EmitTimeCapture]:
    root = logging.getLogger()
    capture = EmitTimeCapture(root.handlers[0].formatter if root.handlers else None)
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def post(client: httpx.Client, query: str, variables: dict[str, Any] | None = None, *,
         request_id: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    extra = {"X-Request-ID": request_id} if request_id is not None else {}
    return client.post("/graphql", json={"query": query, "variables": variables or {}},
                       headers={**(headers or {}), **extra})


def test_a_safe_request_id_is_echoed(client: httpx.Client) -> None:
    for given in ("client-req-1", "9b2c8f0e-4a1d-4c55-9a8e-0c1f2d3e4b5a", "app.1:2_3"):
        assert post(client, "{ me { id } }", request_id=given).headers["x-request-id"] == given


def test_a_request_id_is_generated_when_absent(client: httpx.Client) -> None:
    first, second = (post(client, "{ me { id } }").headers["x-request-id"] for _ in range(2))
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second
    assert GENERATED.fullmatch(client.get("/healthz").headers["x-request-id"])


@pytest.mark.parametrize("hostile", ["x" * 65, "a b", "id\"inject", "<script>", "", "id;drop=1", "é"])
def test_a_hostile_request_id_is_replaced(client: httpx.Client, hostile: str) -> None:
    response = client.post("/graphql", json={"query": "{ me { id } }"},
                           headers=[("X-Request-ID", hostile.encode("utf-8"))])  # type: ignore[arg-type]
    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert echoed != hostile and GENERATED.fullmatch(echoed)


def test_the_request_id_is_in_every_log_line_of_its_request(client: httpx.Client, logs: EmitTimeCapture) -> None:
    response = post(client, SEARCH, {"t": "   "}, request_id="trace-me-42", headers=auth_header("tracer"))
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    ours = logs.mentioning("trace-me-42")
    events = [line for _, line in ours]
    assert any("graphql.client_error" in line for line in events), events  # ours (structlog)
    assert any('"POST /graphql HTTP/1.1" 200' in line for line in events), events  # uvicorn's (stdlib)
    access = [line for _, line in logs.lines if '"POST /graphql HTTP/1.1"' in line]
    assert access and all("trace-me-42" in line for line in access)


def test_client_errors_are_info_lines_without_a_traceback(
    client: httpx.Client, server: LiveServer, logs: EmitTimeCapture
) -> None:
    other_photo = {"_id": ObjectId(), "owner": "someone-else", "status": "READY", "sha256": "x",
                   "created_at": datetime.now(UTC)}
    server.run(server.services.photos.collection.insert_one(other_photo))
    user = auth_header("careless")
    mistakes = {
        "GRAPHQL_VALIDATION_FAILED": ("{ noSuchField }", {}, {}),
        "BAD_USER_INPUT": (SEARCH, {"t": ""}, auth_header("typist")),
        "NOT_FOUND": (REJECT, {"id": str(ObjectId()), "tags": ["a"]}, user),
        "FORBIDDEN": (REJECT, {"id": str(other_photo["_id"]), "tags": ["a"]}, user),
        "UNAUTHENTICATED": ("{ nextDuel { id } }", {}, {}),
        "RATE_LIMITED": (SEARCH, {"t": "a dog"}, user),
    }
    post(client, SEARCH, {"t": "a cat"}, headers=user)  # the one search this user may make
    for n, (expected, (query, variables, headers)) in enumerate(mistakes.items()):
        response = post(client, query, variables, request_id=f"mistake-{n}", headers=headers)
        assert response.status_code in (200, 400), response.text
        got = [e.get("extensions", {}).get("code") for e in response.json()["errors"]]
        assert got and (got[0] == expected or expected == "GRAPHQL_VALIDATION_FAILED"), (expected, got)
    for n, expected in enumerate(mistakes):
        lines = logs.mentioning(f"mistake-{n}")
        assert lines, expected
        assert all(record.levelno < logging.WARNING for record, _ in lines), (expected, lines)
        assert all(record.exc_info is None and "Traceback" not in line for record, line in lines), expected
        assert any("graphql.client_error" in line for _, line in lines) or expected == "UNAUTHENTICATED"
    assert not [line for record, line in logs.lines if record.levelno >= logging.ERROR], "an error-level line"


def test_an_unexpected_error_is_masked_with_its_request_id_and_logged_with_a_traceback(
    client: httpx.Client, server: LiveServer, logs: EmitTimeCapture
) -> None:
    broken = {"_id": ObjectId(), "owner": "someone", "status": "READY", "sha256": "broken"}  # no created_at
    server.run(server.services.photos.collection.insert_one(broken))
    response = post(client, PHOTO, {"id": str(broken["_id"])})
    error = response.json()["errors"][0]
    assert error["message"] == "Unexpected error." and error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    request_id = response.headers["x-request-id"]
    assert error["extensions"]["requestId"] == request_id
    lines = [(record, line) for record, line in logs.mentioning(request_id) if record.levelno >= logging.ERROR]
    assert lines, "the masked error has an error-level log line with its request id"
    assert any("KeyError" in line and "Traceback" in line for _, line in lines)
