"""A fuzzer over the schema (hypothesis-graphql): generated queries and mutations, valid and with one
schema violation each, literal arguments and JSON variables, anonymous, as a user and as an admin,
against a live server. No answer may be a 5xx, no error may be logged, and the service stays ready."""

from __future__ import annotations

import logging
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, queries

from api.schema import build_schema
from tests.servers import LiveServer
from tests.tokens import auth_header

settings.register_profile(
    "schema-fuzz", max_examples=800, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
CALLERS = [{}, auth_header("fuzz-user"), auth_header("fuzz-admin", admin=True)]
UPLOAD = st.just(graphql.StringValueNode(value="not-a-file"))  # an Upload cannot be a literal: refused
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4),
                           max_leaves=12)
# Operations with variables, so values arrive through variable coercion too, not only as literals.
WITH_VARIABLES = [
    "query($id: ID!, $n: Int) { similarPhotos(photoId: $id, first: $n) { similarity } photo(id: $id) { id } }",
    "query($t: String!, $n: Int) { searchPhotos(text: $t, first: $n) { id } }",
    "query($a: String, $n: Int, $c: String, $o: PhotoOrder!) { photos(after: $a, first: $n, category: $c, "
    "orderBy: $o) { pageInfo { endCursor } } }",
    "query($p: LeaderboardPeriod, $n: Int, $a: String) { leaderboard(period: $p, first: $n, after: $a) { nodes { id } } }",
    "mutation($id: ID!, $tags: [String!]!) { rejectTags(photoId: $id, tags: $tags) { id } }",
    "mutation($id: ID!, $tags: [String!]!) { acceptTags(photoId: $id, tags: $tags) { id } }",
    "mutation($tags: [String!]!) { addVocabularyTags(tags: $tags) }",
    "mutation($ids: [ID!]!) { markNotificationsRead(ids: $ids) }",
    "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }",
    "mutation($token: String!, $p: Platform!) { registerDevice(token: $token, platform: $p) { token } }",
    "mutation($name: String!) { removeCelebrity(name: $name) }",
]
VARIABLE_NAMES = ["id", "n", "t", "a", "c", "o", "p", "tags", "ids", "token", "name"]


def operations() -> st.SearchStrategy[dict[str, Any]]:
    schema = build_schema()._schema
    scalars = {"Upload": UPLOAD}
    generated = st.one_of(*(kind(schema, custom_scalars=scalars, mode=mode)
                            for kind in (queries, mutations) for mode in (Mode.POSITIVE, Mode.NEGATIVE)))
    variables = st.dictionaries(st.sampled_from(VARIABLE_NAMES), JSON_VALUES, max_size=5)
    return st.one_of(
        st.builds(lambda q: {"query": q}, generated),
        st.builds(lambda q, v: {"query": q, "variables": v}, st.sampled_from(WITH_VARIABLES), variables),
    )


def test_generated_operations_never_break_the_service(client: httpx.Client, server: LiveServer,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    statuses: dict[int, int] = {}
    failures: list[tuple[int, dict[str, Any], str]] = []

    @settings(settings.get_profile("schema-fuzz"))
    @given(body=operations())
    def send(body: dict[str, Any]) -> None:
        for caller in CALLERS:  # each operation as every kind of caller: generating it costs more than sending
            response = client.post("/graphql", json=body, headers=caller)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500 or "INTERNAL_SERVER_ERROR" in response.text:
                failures.append((response.status_code, body, response.text[:300]))

    with caplog.at_level(logging.ERROR):
        send()
    assert sum(statuses.values()) >= 2000, statuses
    assert not failures, failures[:5]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage()[:300] for r in errors[:5]]
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
