"""Duels over real HTTP: matchmaking rules, the vote log under concurrency, error codes, promotion."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from photoduel.settings import Settings
from tests.servers import LiveServer, error_code, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, near_copy, skimage_photo, upload_all, upload_ok, wait_all
from tests.votes import settled, vote_id, wait_applied

NEXT = "query($c: String) { nextDuel(category: $c) { id expiresAt left { id rating { score } quality { score } owner { id } } right { id rating { score } quality { score } owner { id } } } }"
VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted left { id rating { mu sigma votes wins losses draws score } } right { id rating { mu sigma votes } } } }"
SKIP = "mutation($id: ID!) { skipDuel(duelId: $id) }"
OWNERS = ["ann", "ben", "cat", "dan"]


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    settings = make_settings(featured_min_votes=1, featured_max_sigma=8.0, worker_batch_size=8)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def photos(client: httpx.Client) -> dict[str, Any]:
    """16 photos from four owners, plus a near-duplicate of one of them by another owner."""
    sources = [skimage_photo(n) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    sources += [generated_photo(seed) for seed in range(12)]
    owners = upload_all(client, sources, OWNERS)
    original = next(iter(owners))
    copy_id = upload_ok(client, near_copy(sources[0]), auth_header("ben"))["id"]
    owners[copy_id] = "ben"
    ready = wait_all(client, owners)
    assert ready[copy_id]["duplicateOf"] == {"id": original}
    return {"owners": owners, "original": original, "copy": copy_id, "ready": ready}


def photo_doc(server: LiveServer, photo_id: str) -> dict[str, Any]:
    doc = server.run(server.services.photos.get(ObjectId(photo_id)))
    assert doc is not None
    return doc


def test_a_player_never_gets_own_photos_near_duplicates_or_repeated_pairs(
    client: httpx.Client, photos: dict[str, Any]
) -> None:
    player = auth_header("ann")
    seen: set[frozenset[str]] = set()
    duels = 0
    for _ in range(60):
        duel = graphql(client, NEXT, headers=player)["data"]["nextDuel"]
        if duel is None:
            break
        pair = frozenset((duel["left"]["id"], duel["right"]["id"]))
        assert len(pair) == 2
        assert pair not in seen, "a pair this player already judged came back"
        assert pair != frozenset((photos["original"], photos["copy"])), "near-duplicates were paired"
        for side in ("left", "right"):
            assert photos["owners"][duel[side]["id"]] != "ann", "the player was shown their own photo"
            assert duel[side]["rating"] is None and duel[side]["quality"] is None  # shown blind
            assert duel[side]["owner"] is None  # and anonymous
        owners = {photos["owners"][duel["left"]["id"]], photos["owners"][duel["right"]["id"]]}
        assert len(owners) == 2, "a duel between two photos of the same owner"
        seen.add(pair)
        body = graphql(client, VOTE, {"id": duel["id"], "c": "LEFT"}, headers=player)
        assert body["data"]["voteDuel"]["accepted"] is True
        duels += 1
    assert duels >= 20  # many distinct pairs were available before running out


def test_next_duel_needs_a_user(client: httpx.Client, photos: dict[str, Any]) -> None:
    assert error_code(graphql(client, NEXT)) == "UNAUTHENTICATED"


def test_vote_errors_each_have_their_code_and_change_nothing(
    client: httpx.Client, server: LiveServer, photos: dict[str, Any]
) -> None:
    player, other = auth_header("zoe"), auth_header("yan")
    duel = graphql(client, NEXT, headers=player)["data"]["nextDuel"]
    first = graphql(client, VOTE, {"id": duel["id"], "c": "RIGHT"}, headers=player)["data"]["voteDuel"]
    assert first["accepted"] is True
    votes_before = server.run(server.services.db.votes.count_documents({"choice": {"$ne": "SKIP"}}))
    server.run(settled(server))  # the first vote's photo writes land just after its answer
    left_before = photo_doc(server, duel["left"]["id"])["rating"]
    assert left_before == first["left"]["rating"] | {k: left_before[k] for k in left_before if k not in
                                                     first["left"]["rating"]}

    retried = graphql(client, VOTE, {"id": duel["id"], "c": "RIGHT"}, headers=player)["data"]["voteDuel"]
    assert retried["accepted"] is False  # the first result, not a second count
    assert retried["left"]["rating"] == first["left"]["rating"]
    changed = graphql(client, VOTE, {"id": duel["id"], "c": "LEFT"}, headers=player)
    assert error_code(changed) == "ALREADY_VOTED"

    someone_elses = graphql(client, VOTE, {"id": duel["id"], "c": "LEFT"}, headers=other)
    assert error_code(someone_elses) == "FORBIDDEN"
    forged = duel["id"][:-4] + ("AAAA" if duel["id"][-4:] != "AAAA" else "BBBB")
    for unknown in (str(ObjectId()), "not-an-id", forged):
        missing = graphql(client, VOTE, {"id": unknown, "c": "LEFT"}, headers=player)
        assert error_code(missing) == "NOT_FOUND"

    fresh = graphql(client, NEXT, headers=player)["data"]["nextDuel"]
    stale = server.services.duels.issue(  # the same pair, signed with an expiry in the past
        "zoe", photo_doc(server, fresh["left"]["id"]), photo_doc(server, fresh["right"]["id"]),
        expires_at=datetime.now(UTC) - timedelta(seconds=1))
    expired = graphql(client, VOTE, {"id": stale.id, "c": "LEFT"}, headers=player)
    assert error_code(expired) == "DUEL_EXPIRED"

    skipped = graphql(client, NEXT, headers=player)["data"]["nextDuel"]
    assert graphql(client, SKIP, {"id": skipped["id"]}, headers=player)["data"]["skipDuel"] is True
    after_skip = graphql(client, VOTE, {"id": skipped["id"], "c": "LEFT"}, headers=player)
    assert error_code(after_skip) == "ALREADY_VOTED"

    assert server.run(server.services.db.votes.count_documents({"choice": {"$ne": "SKIP"}})) == votes_before
    assert photo_doc(server, duel["left"]["id"])["rating"] == left_before


def test_fifty_concurrent_votes_on_one_photo_lose_nothing(
    client: httpx.Client, server: LiveServer, photos: dict[str, Any]
) -> None:
    target = photos["original"]
    others = [pid for pid, owner in photos["owners"].items() if pid not in (target, photos["copy"])]
    target_doc = photo_doc(server, target)
    votes_before = target_doc["rating"]["votes"]

    async def issue_tickets() -> list[tuple[str, str]]:
        tickets = []
        for i in range(50):
            player = f"crowd-{i}"
            opponent = await server.services.photos.get(ObjectId(others[i % len(others)]))
            assert opponent is not None
            left, right = (target_doc, opponent) if i % 2 else (opponent, target_doc)
            tickets.append((server.services.duels.issue(player, left, right).id, player))
        return tickets

    tickets = server.run(issue_tickets())
    choices = ["LEFT", "RIGHT", "DRAW"]

    async def vote_all() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            async def one(i: int, duel_id: str, player: str) -> dict[str, Any]:
                response = await http.post("/graphql", json={"query": VOTE, "variables": {
                    "id": duel_id, "c": choices[i % 3]}}, headers=auth_header(player))
                return response.json()
            return await asyncio.gather(*(one(i, d, p) for i, (d, p) in enumerate(tickets)))

    results = asyncio.run(vote_all())
    assert all("errors" not in r and r["data"]["voteDuel"]["accepted"] for r in results)

    ids = [vote_id(server, d) for d, _ in tickets]
    applied = wait_applied(server, ids)

    async def check() -> tuple[int, dict[str, Any], dict[ObjectId, dict[str, Any]]]:
        logged = await server.services.db.votes.count_documents({"_id": {"$in": ids}})
        await settled(server)
        doc = await server.services.photos.get(ObjectId(target))
        return logged, doc, await server.services.projector.replay()

    logged, doc, replayed = server.run(check())
    assert logged == applied == 50
    assert doc["rating"]["votes"] == votes_before + 50
    assert doc["rating"] == replayed[doc["_id"]]  # the stored rating is exactly the log's projection
    for photo_id in photos["owners"]:
        assert photo_doc(server, photo_id)["rating"] == replayed[ObjectId(photo_id)]


BOARD = "query($p: LeaderboardPeriod, $c: String) { leaderboard(period: $p, category: $c, first: 50) { edges { node { id category rating { score votes sigma } } } } }"


def test_leaderboard_featured_and_score_order(make_settings: Callable[..., Settings]) -> None:
    """A deployment of its own: the board holds exactly this test's photos and votes, whatever ran before."""
    settings = make_settings(featured_min_votes=1, featured_max_sigma=8.0, worker_batch_size=8)
    with LiveServer(settings) as live, live.client() as http:
        owners = upload_all(http, [generated_photo(700 + i) for i in range(6)], OWNERS)
        wait_all(http, owners)
        voted: set[str] = set()
        for n in range(10):
            judge = auth_header(f"judge-{n}")
            duel = graphql(http, NEXT, headers=judge)["data"]["nextDuel"]
            body = graphql(http, VOTE, {"id": duel["id"], "c": ["LEFT", "RIGHT", "DRAW"][n % 3]}, headers=judge)
            assert body["data"]["voteDuel"]["accepted"] is True
            voted |= {duel["left"]["id"], duel["right"]["id"]}
        live.run(settled(live))

        def board(period: str | None = None, category: str | None = None) -> list[dict[str, Any]]:
            body = graphql(http, BOARD, {"p": period, "c": category})
            return [e["node"] for e in body["data"]["leaderboard"]["edges"]]

        nodes = board()
        assert nodes, "photos with votes are on the leaderboard"
        assert {n["id"] for n in nodes} <= voted, "only photos with votes are on the leaderboard"
        scores = [n["rating"]["score"] for n in nodes]
        assert scores == sorted(scores, reverse=True)
        assert all(n["rating"]["votes"] >= 1 for n in nodes)
        # featured shows one photo per similarity group by default; across groups it is the board's top
        featured = graphql(http, "{ featured(first: 3, onePerGroup: false) { id } }")["data"]["featured"]
        assert [f["id"] for f in featured] == [n["id"] for n in nodes[:3]]
        diverse = graphql(http, "{ featured(first: 3) { id } }")["data"]["featured"]
        one_each = graphql(http, "{ leaderboard(first: 3, onePerGroup: true) { nodes { id } } }")
        assert [f["id"] for f in diverse] == [n["id"] for n in one_each["data"]["leaderboard"]["nodes"]]
        by_score = graphql(http, "{ photos(orderBy: SCORE, first: 100) { edges { node { rating { score } } } } }")
        ordered = [e["node"]["rating"]["score"] for e in by_score["data"]["photos"]["edges"]]
        assert ordered == sorted(ordered, reverse=True) and len(ordered) == len(owners)

        # category: only that category's photos, in the same order; an unknown one is empty
        category = nodes[0]["category"]
        assert board(category=category) == [n for n in nodes if n["category"] == category]
        assert board("WEEK", "nothing-here") == []
        # period: a photo uploaded eight days ago leaves the day's and the week's board, not the month's
        old = nodes[0]["id"]
        live.run(live.services.db.photos.update_one(
            {"_id": ObjectId(old)}, {"$set": {"created_at": datetime.now(UTC) - timedelta(days=8)}}))
        recent = [n for n in nodes if n["id"] != old]
        assert board("WEEK") == recent
        assert board("DAY") == recent
        assert board("MONTH") == nodes
        assert board("ALL") == board() == nodes


def test_ratings_rebuild_command_reproduces_the_stored_ratings(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with LiveServer(settings) as live, live.client() as http:
        wait_all(http, upload_all(http, [generated_photo(500 + i) for i in range(6)], OWNERS))
        for n in range(8):
            duel = graphql(http, NEXT, headers=auth_header(f"voter-{n}"))["data"]["nextDuel"]
            graphql(http, VOTE, {"id": duel["id"], "c": ["LEFT", "RIGHT", "DRAW"][n % 3]},
                    headers=auth_header(f"voter-{n}"))
    env = {**os.environ, "PHOTODUEL_MONGODB_URI": settings.mongodb_uri or "",
           "PHOTODUEL_MONGODB_DATABASE": settings.mongodb_database, "PHOTODUEL_DATA_DIR": str(settings.data_dir),
           "PHOTODUEL_MILVUS_URI": settings.milvus_uri or "", "PHOTODUEL_LOG_LEVEL": "WARNING"}
    check = subprocess.run([sys.executable, "-m", "photoduel.cli", "ratings", "rebuild", "--check"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 photos differ" in check.stdout
