"""Many players at once, on the embedded server, with ingest, faces and the worker chores running beside.

Every request must answer in bounded time with only the error codes its action can earn, every
acknowledged vote must be applied exactly once, and the stored ratings must be exactly the replay of
the log. On the code before the signed tickets and the projector this hung within seconds: nextDuel's
write to `photos` deadlocked against a vote's rating transaction on the embedded server.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from bson import ObjectId

from photoduel.settings import Settings
from tests.servers import LiveServer, graphql, settings_env
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, skimage_photo, upload, upload_ok, wait_ready
from tests.votes import applied_count, settled, vote_id

NEXT = "query { nextDuel { id left { id } right { id } } }"
VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted applied left { id rating { votes } } } }"
SKIP = "mutation($id: ID!) { skipDuel(duelId: $id) }"
OWNERS = [f"owner-{i}" for i in range(8)]
PLAYERS = 32
BURST_SECONDS = 20.0
# Every request answers within the database deadline plus the vote's result wait and a margin.
ANSWER_BOUND_SECONDS = 15.0
# Clients drop idle connections before uvicorn does (its keep-alive is 5 s): otherwise a request sent on
# a connection the server is closing at that instant fails with a read error, as with any HTTP server.
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    settings = make_settings(featured_min_votes=1, featured_max_sigma=8.0, worker_batch_size=8,
                             maintenance_seconds=1.0, celebrity_refit_votes=10)
    with LiveServer(settings) as live:
        live.wait_model()
        yield live


@pytest.fixture(scope="module")
def catalogue(server: LiveServer) -> list[str]:
    """16 READY photos of 8 owners; two of them recognised celebrities, so the celebrity offset re-fit has work."""
    sources = [skimage_photo(n) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    sources += [generated_photo(900 + seed) for seed in range(12)]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        uploaded = [(upload_ok(http, jpeg_bytes(img), auth_header(OWNERS[i % 8]))["id"], OWNERS[i % 8])
                    for i, img in enumerate(sources)]
        for pid, owner in uploaded:
            wait_ready(http, pid, auth_header(owner))

    async def mark() -> None:
        db = server.services.db
        oids = [ObjectId(pid) for pid, _ in uploaded]
        while await db.photos.count_documents({"_id": {"$in": oids}, "celebrity": {"$exists": True}}) < len(oids):
            await asyncio.sleep(0.1)  # the faces job has looked at every photo
        for pid, _ in uploaded[:2]:  # what the faces job writes when it recognises an enrolled person
            await db.photos.update_one({"_id": ObjectId(pid)}, {"$set": {"celebrity": {"people": [
                {"name": "Famous Person", "confidence": 0.99, "distance": 0.2}]}}})
        await server.services.catalogue.reload()

    server.run(mark())
    return [pid for pid, _ in uploaded]


@dataclass
class Tally:
    accepted: list[str] = field(default_factory=list)  # duel ids whose vote was acknowledged as counted
    repeats: int = 0
    skips: int = 0
    no_pair: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0
    problems: list[str] = field(default_factory=list)


async def _post(http: httpx.AsyncClient, tally: Tally, query: str, variables: dict[str, Any],
                headers: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    tally.slowest = max(tally.slowest, time.monotonic() - started)
    if response.status_code != 200:
        tally.problems.append(f"HTTP {response.status_code}: {response.text[:200]}")
        return {}
    body = response.json()
    for error in body.get("errors", []):
        tally.codes[error.get("extensions", {}).get("code", "?")] += 1
    return body


async def _player(base_url: str, name: str, deadline: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    headers = auth_header(name)
    async with httpx.AsyncClient(base_url=base_url, timeout=ANSWER_BOUND_SECONDS + 15, limits=CLIENT_LIMITS) as http:
        while time.monotonic() < deadline:
            duel = (await _post(http, tally, NEXT, {}, headers)).get("data", {}).get("nextDuel")
            if duel is None:
                tally.no_pair += 1
                await asyncio.sleep(0.2)
                continue
            action = rng.random()
            choice = rng.choice(["LEFT", "RIGHT", "DRAW"])
            if action < 0.1:
                body = await _post(http, tally, SKIP, {"id": duel["id"]}, headers)
                if body.get("data", {}).get("skipDuel") is not True:
                    tally.problems.append(f"skip: {body}")
                tally.skips += 1
                late = await _post(http, tally, VOTE, {"id": duel["id"], "c": choice}, headers)
                if (late.get("errors") or [{}])[0].get("extensions", {}).get("code") != "ALREADY_VOTED":
                    tally.problems.append(f"a vote after a skip: {late}")
                continue
            sends = 2 if action < 0.3 else 1  # a retry sent at once, as a client that timed out would
            bodies = await asyncio.gather(*(_post(http, tally, VOTE, {"id": duel["id"], "c": choice}, headers)
                                            for _ in range(sends)))
            if action < 0.4:  # and a retry sent later
                bodies.append(await _post(http, tally, VOTE, {"id": duel["id"], "c": choice}, headers))
            results = [b.get("data", {}).get("voteDuel") for b in bodies]
            if any(r is None for r in results):
                tally.problems.append(f"vote failed: {bodies}")
                continue
            if sum(r["accepted"] for r in results) != 1:
                tally.problems.append(f"a vote and its retries must count exactly once: {results}")
            tally.accepted.append(duel["id"])
            tally.repeats += len(results) - 1


async def _uploader(base_url: str, deadline: float, tally: Tally) -> list[str]:
    """New photos arriving during the game: ingest and the faces job run beside the players."""
    ids = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=CLIENT_LIMITS) as http:
        seed = 2000
        while time.monotonic() < deadline - 4:
            files = {"0": ("photo.jpg", jpeg_bytes(generated_photo(seed)), "image/jpeg")}
            operations = ('{"query": "mutation($f: Upload!) { uploadPhoto(file: $f) { id } }", '
                          '"variables": {"f": null}}')
            response = await http.post("/graphql", data={"operations": operations, "map": '{"0": ["variables.f"]}'},
                                       files=files, headers={**auth_header(OWNERS[seed % 8]),
                                                             "Apollo-Require-Preflight": "true"})
            if response.status_code != 200 or "errors" in response.json():
                tally.problems.append(f"upload: {response.status_code} {response.text[:200]}")
            else:
                ids.append(response.json()["data"]["uploadPhoto"]["id"])
            seed += 1
            await asyncio.sleep(1.5)
    return ids


def test_many_players_at_once_with_ingest_and_chores_lose_and_double_nothing(
    server: LiveServer, catalogue: list[str]
) -> None:
    tally = Tally()

    async def burst() -> list[str]:
        deadline = time.monotonic() + BURST_SECONDS
        players = [_player(server.url, f"player-{n}", deadline, tally, n) for n in range(PLAYERS)]
        _, uploads = await asyncio.gather(asyncio.gather(*players), _uploader(server.url, deadline, tally))
        return uploads

    uploads = asyncio.run(burst())
    assert not tally.problems, tally.problems[:5]
    assert tally.slowest < ANSWER_BOUND_SECONDS, f"a request took {tally.slowest:.1f} s"
    # the only codes a player earned: voting on a ticket it had skipped
    assert set(tally.codes) <= {"ALREADY_VOTED"}, tally.codes
    assert tally.codes["ALREADY_VOTED"] == tally.skips
    assert len(tally.accepted) >= 100, f"only {len(tally.accepted)} votes in {BURST_SECONDS} s"
    assert uploads, "photos were uploaded during the game"

    ids = [vote_id(server, d) for d in tally.accepted]

    async def check() -> tuple[int, int, int, int, dict[str, Any] | None, int]:
        db = server.services.db
        await settled(server)
        logged = await db.votes.count_documents({"_id": {"$in": ids}, "choice": {"$ne": "SKIP"}})
        applied = await applied_count(db, ids)
        entries = [e async for b in db.rating_batches.find({}, {"entries": 1}) for e in b["entries"]
                   if not e.get("gone")]
        counted = sum([d["rating"]["votes"] async for d in db.photos.find({"rating": {"$exists": True}},
                                                                          {"rating.votes": 1})])
        offset = await db.rating_params.find_one({"_id": "celebrity_offset"})
        featured = await db.photos.count_documents({"featured_at": {"$exists": True}})
        return logged, applied, len(entries), counted, offset, featured

    logged, applied, entries, counted, offset, featured = server.run(check(), timeout=120)
    assert logged == len(ids), "an acknowledged vote is missing from the log"
    assert applied == len(ids), f"{applied} applications of {len(ids)} acknowledged votes"
    assert counted == 2 * entries  # every applied vote counted once on each of its two photos
    assert offset is not None and offset.get("counted_seq", 0) > 0, "the celebrity offset re-fit ran during the game"
    assert featured >= 1, "the featured announcer ran during the game"

    check_cmd = subprocess.run([sys.executable, "-m", "photoduel.cli", "ratings", "rebuild", "--check"],
                               env={**settings_env(server.settings), "PHOTODUEL_LOG_LEVEL": "WARNING"},
                               capture_output=True, text=True, timeout=120, check=False)
    assert check_cmd.returncode == 0, check_cmd.stdout + check_cmd.stderr
    assert "0 photos differ" in check_cmd.stdout


def test_one_player_asking_twice_at_once_and_two_players_on_one_pair(
    server: LiveServer, catalogue: list[str]
) -> None:
    async def go() -> tuple[list[Any], list[Any]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async def ask(name: str) -> dict[str, Any]:
                response = await http.post("/graphql", json={"query": NEXT}, headers=auth_header(name))
                return response.json()["data"]["nextDuel"]

            twice = await asyncio.gather(ask("eager"), ask("eager"))
            votes = await asyncio.gather(*(http.post("/graphql", json={"query": VOTE, "variables": {
                "id": d["id"], "c": "LEFT"}}, headers=auth_header("eager")) for d in twice))
            return twice, [v.json() for v in votes]

    twice, votes = asyncio.run(go())
    assert twice[0]["id"] != twice[1]["id"], "two requests got the same ticket"
    same_pair = {twice[0]["left"]["id"], twice[0]["right"]["id"]} == {twice[1]["left"]["id"], twice[1]["right"]["id"]}
    outcomes = [v.get("data", {}) and v["data"]["voteDuel"] for v in votes]
    if same_pair:  # one player judges a pair once: the second ticket for it is refused
        assert sum(bool(o and o["accepted"]) for o in outcomes) == 1
        assert any((v.get("errors") or [{}])[0].get("extensions", {}).get("code") == "ALREADY_VOTED" for v in votes)
    else:
        assert all(o and o["accepted"] for o in outcomes)

    # two players voting on the same pair at the same moment: both count
    left, right = (server.run(server.services.photos.get(ObjectId(pid))) for pid in catalogue[2:4])
    tickets = [server.services.duels.issue(name, left, right) for name in ("twin-a", "twin-b")]

    async def both() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            responses = await asyncio.gather(*(http.post("/graphql", json={"query": VOTE, "variables": {
                "id": t.id, "c": "RIGHT"}}, headers=auth_header(name)) for t, name in zip(tickets, ("twin-a", "twin-b"),
                                                                                         strict=True)))
            return [r.json()["data"]["voteDuel"] for r in responses]

    assert all(r["accepted"] for r in asyncio.run(both()))
    ids = [t.ticket.nonce for t in tickets]
    assert server.run(applied_count(server.services.db, ids)) in (0, 1, 2)  # applied at most once each
    server.run(settled(server))
    assert server.run(applied_count(server.services.db, ids)) == 2


def test_an_upload_during_play_gets_a_clear_error_for_bad_input_and_loses_nothing(
    server: LiveServer, catalogue: list[str]
) -> None:
    """Bad input on the same busy server: a clear code, and the game goes on."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        bad = upload(http, b"not an image at all", auth_header("owner-1"))
        assert bad.status_code == 200 and bad.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        forged = graphql(http, VOTE, {"id": "AAAA" * 20, "c": "LEFT"}, headers=auth_header("player-1"))
        assert forged["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert graphql(http, NEXT, headers=auth_header("player-1"))["data"]["nextDuel"] is not None
