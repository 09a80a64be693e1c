"""Rate limits over real HTTP: each limit refuses the request past it with RATE_LIMITED and `retryAfter`
before its resolver runs (nothing is written); the per-IP limit answers 429 with Retry-After; and two
API servers on one database share every bucket.

The limits are set small here; the defaults (photoduel/settings.py) fit a real player.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from accounts.rate_limits import Action
from gaming.duels.records import initial_rating_fields
from gaming.ratings import RatingEnv
from photoduel.settings import Settings
from tests.servers import LiveServer, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload
from tests.votes import vote_id

NEXT = "query { nextDuel { id left { id } right { id } } }"
VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"
SKIP = "mutation($id: ID!) { skipDuel(duelId: $id) }"
SEARCH = "query($t: String!) { searchPhotos(text: $t, first: 5) { id } }"
REJECT = "mutation($id: ID!, $tags: [String!]!) { rejectTags(photoId: $id, tags: $tags) { id } }"
ENROL = "mutation($name: String!, $files: [Upload!]!) { enrollCelebrity(name: $name, files: $files) { name } }"
ME = "{ me { id } }"

LIMITS = {
    "rate_limit_votes": "100/hour", "rate_limit_daily_votes": 6, "rate_limit_duels": "4/hour",
    "rate_limit_open_tickets": 2, "rate_limit_skips": "2/hour", "rate_limit_uploads": "2/hour",
    "rate_limit_searches": "2/hour", "rate_limit_enrolments": "2/hour", "rate_limit_tag_edits": "2/hour",
}


def seed_photos(server: LiveServer, count: int = 12) -> list[dict[str, Any]]:
    """READY photos as ingest leaves them (these servers run no worker and no model)."""
    now = datetime.now(UTC)
    docs = [{"_id": ObjectId(), "owner": f"owner{i % 4}", "status": "READY", "category": "test", "sha256": f"s{i}",
             "created_at": now, "ready_at": now, "neighbours": [], "quality": {"score": 0.2 + 0.05 * i},
             "rating": initial_rating_fields(0.2 + 0.05 * i, RatingEnv())} for i in range(count)]
    server.run(server.services.photos.collection.insert_many(docs))
    server.run(server.services.catalogue.reload())
    return docs


def tickets(server: LiveServer, player: str, photos: list[dict[str, Any]], count: int, start: int = 0) -> list[str]:
    """Duel ids for distinct pairs, as nextDuel would hand them out."""
    pairs = [(a, b) for a in range(len(photos)) for b in range(a + 1, len(photos))][start:start + count]
    return [server.services.duels.issue(player, photos[a], photos[b]).id for a, b in pairs]


def refused(body: dict[str, Any], limit: str) -> int:
    """The RATE_LIMITED error's retryAfter; the field itself is null (its resolver did not run)."""
    assert body.get("data") is None or all(v is None for v in body["data"].values()), body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED", body
    assert error["extensions"]["limit"] == limit, body
    retry = error["extensions"]["retryAfter"]
    assert isinstance(retry, int) and retry >= 1
    return retry


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


def vote_stored(server: LiveServer, duel_id: str) -> bool:
    return server.run(server.services.db.votes.count_documents({"_id": vote_id(server, duel_id)})) == 1


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with LiveServer(make_settings(**LIMITS), run_worker=False) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def photos(server: LiveServer) -> list[dict[str, Any]]:
    return seed_photos(server)


def test_votes_past_the_daily_cap_are_refused_until_the_next_utc_day(
    client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]]
) -> None:
    player = auth_header("daily-voter")
    duel_ids = tickets(server, "daily-voter", photos, 7)
    for duel_id in duel_ids[:6]:
        assert graphql(client, VOTE, {"id": duel_id, "c": "LEFT"}, headers=player)["data"]["voteDuel"]["accepted"]
    retry = refused(graphql(client, VOTE, {"id": duel_ids[6], "c": "LEFT"}, headers=player), "votes_daily")
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert retry <= (midnight - now).total_seconds() + 2
    assert not vote_stored(server, duel_ids[6])
    assert server.run(server.services.db.votes.count_documents({"player": "daily-voter"})) == 6


def test_open_tickets_are_capped_and_an_answer_frees_one(
    client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]]
) -> None:
    player = auth_header("drawer")
    drawn = [graphql(client, NEXT, headers=player)["data"]["nextDuel"] for _ in range(2)]
    assert all(drawn), drawn
    retry = refused(graphql(client, NEXT, headers=player), "open_tickets")
    assert 299 <= retry <= 301  # one of 2 frees itself every duel_ttl_seconds (600) / 2
    assert graphql(client, VOTE, {"id": drawn[0]["id"], "c": "RIGHT"}, headers=player)["data"]["voteDuel"]["accepted"]
    assert graphql(client, NEXT, headers=player)["data"]["nextDuel"] is not None


def test_duels_fetched_are_limited(client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]]) -> None:
    player = auth_header("fetcher")
    for _ in range(4):
        duel = graphql(client, NEXT, headers=player)["data"]["nextDuel"]
        assert duel is not None
        assert graphql(client, VOTE, {"id": duel["id"], "c": "DRAW"}, headers=player)["data"]["voteDuel"]["accepted"]
    retry = refused(graphql(client, NEXT, headers=player), "duels")
    assert 899 <= retry <= 901  # 4 per hour: one every 900 s


def test_skips_are_limited(client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]]) -> None:
    player = auth_header("skipper")
    duel_ids = tickets(server, "skipper", photos, 3)
    for duel_id in duel_ids[:2]:
        assert graphql(client, SKIP, {"id": duel_id}, headers=player)["data"]["skipDuel"] is True
    refused(graphql(client, SKIP, {"id": duel_ids[2]}, headers=player), "skips")
    assert not vote_stored(server, duel_ids[2])
    assert vote_stored(server, duel_ids[1])


def test_uploads_are_limited_and_a_refused_one_creates_no_photo(client: httpx.Client, server: LiveServer) -> None:
    owner = auth_header("uploader")
    for seed in range(2):
        response = upload(client, jpeg_bytes(generated_photo(300 + seed)), owner)
        assert "errors" not in response.json(), response.text
    response = upload(client, jpeg_bytes(generated_photo(302)), owner)
    assert response.status_code == 200
    refused(response.json(), "uploads")
    assert server.run(server.services.photos.collection.count_documents({"owner": "uploader"})) == 2


def test_searches_are_limited_per_caller(client: httpx.Client) -> None:
    for _ in range(2):  # anonymous: counted per address; the model is off here, so UNAVAILABLE is fine
        assert "RATE_LIMITED" not in codes(graphql(client, SEARCH, {"t": "a cat"}))
    refused(graphql(client, SEARCH, {"t": "a cat"}), "searches")
    signed_in = graphql(client, SEARCH, {"t": "a cat"}, headers=auth_header("searcher"))
    assert "RATE_LIMITED" not in codes(signed_in)  # a signed-in user has buckets of their own


def test_tag_edits_are_limited_and_a_refused_one_changes_nothing(client: httpx.Client, server: LiveServer) -> None:
    photo = {"_id": ObjectId(), "owner": "tagger", "status": "READY", "sha256": "tagged", "tags": [],
             "created_at": datetime.now(UTC)}
    server.run(server.services.photos.collection.insert_one(photo))
    owner, pid = auth_header("tagger"), str(photo["_id"])
    for tag in ("dog", "cat"):
        assert graphql(client, REJECT, {"id": pid, "tags": [tag]}, headers=owner)["data"]["rejectTags"]["id"] == pid
    refused(graphql(client, REJECT, {"id": pid, "tags": ["bird"]}, headers=owner), "tag_edits")
    stored = server.run(server.services.photos.get(photo["_id"]))
    assert stored is not None and stored["rejected_tags"] == ["dog", "cat"]


def test_enrolments_are_limited(client: httpx.Client, server: LiveServer) -> None:
    admin = {**auth_header("root", admin=True), "Apollo-Require-Preflight": "true"}

    def enrol() -> dict[str, Any]:
        operations = {"query": ENROL, "variables": {"name": "Nobody Famous", "files": [None]}}
        response = client.post("/graphql", data={"operations": json.dumps(operations),
                                                 "map": json.dumps({"0": ["variables.files.0"]})},
                               files={"0": ("p.jpg", b"not an image", "image/jpeg")}, headers=admin)
        return response.json()

    for _ in range(2):
        assert codes(enrol()) == ["BAD_USER_INPUT"]  # the resolver ran, and refused the file
    refused(enrol(), "enrolments")
    assert server.run(server.services.gallery.enrolled()) == []


def test_a_refused_request_costs_nothing(client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]]) -> None:
    """nextDuel refused by the open-ticket limit gives its duel token back: what is left of the duel
    bucket (shared, plus what this process holds of it) is what the two granted draws left of the 4
    per hour: 2, plus a trickle of refill."""
    player = auth_header("careful")
    assert all(graphql(client, NEXT, headers=player)["data"]["nextDuel"] for _ in range(2))
    for _ in range(3):
        refused(graphql(client, NEXT, headers=player), "open_tickets")
    buckets = server.services.db.rate_limits
    duels = server.run(buckets.find_one({"_id": "duels:user:careful"}))
    assert duels is not None
    left = duels["tokens"] + server.services.rate_limits.claimed(Action.DUEL, "user:careful")
    assert 2.0 <= left < 2.1
    tickets_left = server.run(buckets.find_one({"_id": "open_tickets:user:careful"}))
    assert tickets_left is not None and tickets_left["tokens"] < 1
    assert tickets_left["expires_at"] > datetime.now(UTC)  # kept until it would be full again


def test_the_per_ip_limit_answers_429_with_retry_after_before_anything_runs(
    make_settings: Callable[..., Settings]
) -> None:
    with LiveServer(make_settings(rate_limit_ip="3/hour"), run_worker=False) as live, \
            httpx.Client(base_url=live.url, timeout=30) as http:
        for _ in range(5):
            assert http.get("/healthz").status_code == 200  # probes are never limited
        for _ in range(3):
            assert graphql(http, ME, headers=auth_header("early"))["data"]["me"]["id"] == "early"
        response = http.post("/graphql", json={"query": ME}, headers=auth_header("late"))
        assert response.status_code == 429
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert int(response.headers["retry-after"]) == body["errors"][0]["extensions"]["retryAfter"]
        assert 1199 <= int(response.headers["retry-after"]) <= 1201
        assert response.headers["x-request-id"] and response.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in response.headers  # not behind TLS here
        assert live.run(live.services.users.get("late")) is None  # auth and the resolver never ran


def test_limits_hold_across_two_api_servers_on_one_database(make_settings: Callable[..., Settings]) -> None:
    """Votes alternate between two servers (each its own client, loop and caches) and meet one limit."""
    shared = {"rate_limit_votes": "3/hour", "rate_limit_daily_votes": 0, "duel_secret": "s" * 32}
    first = make_settings(**shared)
    second = make_settings(**shared, mongodb_database=first.mongodb_database)
    with LiveServer(first, run_worker=False) as a, LiveServer(second, run_worker=False) as b, \
            httpx.Client(base_url=a.url, timeout=60) as via_a, httpx.Client(base_url=b.url, timeout=60) as via_b:
        photos = seed_photos(a)
        duel_ids = tickets(a, "roamer", photos, 4)
        player = auth_header("roamer")
        for duel_id, http in zip(duel_ids[:3], (via_a, via_b, via_a), strict=True):
            assert graphql(http, VOTE, {"id": duel_id, "c": "LEFT"}, headers=player)["data"]["voteDuel"]["accepted"]
        retry = refused(graphql(via_b, VOTE, {"id": duel_ids[3], "c": "LEFT"}, headers=player), "votes")
        assert 1199 <= retry <= 1201
        assert not vote_stored(a, duel_ids[3])
        assert a.run(a.services.db.votes.count_documents({"player": "roamer"})) == 3
