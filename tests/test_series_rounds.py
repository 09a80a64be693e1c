"""Series rounds over real HTTP: several photos, pick the best (or order them), rated through the duel's
vote log and rating projector, with duels, uploads and the worker's chores running beside.

Every acknowledged answer is applied exactly once, the stored ratings are exactly the replay of the log,
a photo counts one vote per answer it was in, and answers that do not fit the round are refused with
nothing written.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from gaming.duels.series_tickets import SeriesKind, SeriesTicket
from photoduel.settings import Settings
from storage.clock import utcnow
from tests.servers import LiveServer, error_code, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, skimage_photo, upload_many
from tests.votes import applied_count, settled, vote_id

OWNERS = [f"owner-{i}" for i in range(6)]
NEXT_ROUND = ("query($c: String) { nextSeriesRound(category: $c) { id expiresAt photos { id owner { id } "
              "rating { mu } } } }")
VOTE_ROUND = ("mutation($id: ID!, $b: ID!, $o: [ID!]) { voteSeriesRound(roundId: $id, best: $b, order: $o) { "
              "accepted applied photos { id rating { mu sigma votes wins losses } } } }")
SKIP_ROUND = "mutation($id: ID!) { skipSeriesRound(roundId: $id) }"
NEXT_DUEL = "query { nextDuel { id left { id } right { id } } }"
VOTE_DUEL = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"
BURST_SECONDS = 8.0
PLAYERS = 12
LIMITS = httpx.Limits(keepalive_expiry=2.0)


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    settings = make_settings(series_size=4, featured_min_votes=1, featured_max_sigma=8.0, worker_batch_size=8,
                             maintenance_seconds=1.0)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def catalogue(server: LiveServer) -> list[str]:
    """12 READY photos of 6 owners, real and generated."""
    sources = [skimage_photo(n) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    sources += [generated_photo(700 + seed) for seed in range(8)]
    with server.client() as http:
        return list(upload_many(http, sources, OWNERS))


def round_for(client: httpx.Client, player: str) -> dict[str, Any]:
    body = graphql(client, NEXT_ROUND, {}, headers=auth_header(player))
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["nextSeriesRound"]
    assert found is not None
    return found


def test_a_round_shows_three_or_four_photos_of_other_owners_without_owner_or_score(
    server: LiveServer, catalogue: list[str]
) -> None:
    with server.client() as http:
        for n in range(12):
            player = OWNERS[n % 6]
            shown = round_for(http, player)
            photos = shown["photos"]
            assert 3 <= len(photos) <= 4 and len({p["id"] for p in photos}) == len(photos)
            assert all(p["owner"] is None and p["rating"] is None for p in photos)  # shown blind
            docs = server.run(server.services.photos.get_many([ObjectId(p["id"]) for p in photos]))
            owners = [d["owner"] for d in docs]
            assert player not in owners and len(set(owners)) == len(owners)
        anonymous = graphql(http, NEXT_ROUND, {})
        assert error_code(anonymous) == "UNAUTHENTICATED"


def test_a_pick_moves_the_pick_up_and_the_others_down_and_counts_once(server: LiveServer, catalogue: list[str]) -> None:
    with server.client() as http:
        shown = round_for(http, "picker")
        ids = [p["id"] for p in shown["photos"]]
        before = {d["_id"]: d["rating"] for d in server.run(server.services.photos.get_many([ObjectId(i) for i in ids]))}
        answer = {"id": shown["id"], "b": ids[-1]}
        first = graphql(http, VOTE_ROUND, answer, headers=auth_header("picker"))["data"]["voteSeriesRound"]
        again = graphql(http, VOTE_ROUND, answer, headers=auth_header("picker"))["data"]["voteSeriesRound"]
    assert first["accepted"] and not again["accepted"]  # a retry gets the first result, counted once
    server.run(settled(server))
    after = {d["_id"]: d["rating"] for d in server.run(server.services.photos.get_many([ObjectId(i) for i in ids]))}
    for pid in ids:
        old, new = before[ObjectId(pid)], after[ObjectId(pid)]
        assert new["votes"] == old["votes"] + 1
        if pid == ids[-1]:
            assert new["mu"] > old["mu"] and new["wins"] == old["wins"] + 1
        else:
            assert new["mu"] < old["mu"] and new["losses"] == old["losses"] + 1
    assert server.run(applied_count(server.services.db, [vote_id_of(server, shown["id"])])) == 1


def vote_id_of(server: LiveServer, round_id: str) -> ObjectId:
    return server.services.series_rounds.signer.verify(round_id).nonce


def test_answers_that_do_not_fit_the_round_are_refused_and_nothing_is_written(
    server: LiveServer, catalogue: list[str]
) -> None:
    db = server.services.db
    with server.client() as http:
        shown = round_for(http, "careless")
        ids = [p["id"] for p in shown["photos"]]
        other = next(pid for pid in catalogue if pid not in ids)
        logged = server.run(db.votes.count_documents({}))

        def vote(variables: dict[str, Any], player: str = "careless") -> dict[str, Any]:
            return graphql(http, VOTE_ROUND, {"id": shown["id"], **variables}, headers=auth_header(player))

        assert error_code(vote({"b": other})) == "BAD_USER_INPUT"  # not shown
        assert error_code(vote({"b": "not-an-id"})) == "BAD_USER_INPUT"
        assert error_code(vote({"b": ids[0], "o": ids[:-1]})) == "BAD_USER_INPUT"  # not every photo
        assert error_code(vote({"b": ids[0], "o": [*ids, ids[0]]})) == "BAD_USER_INPUT"  # one twice
        assert error_code(vote({"b": ids[0], "o": list(reversed(ids))})) == "BAD_USER_INPUT"  # not best first
        assert error_code(vote({"b": ids[0]}, player="someone-else")) == "FORBIDDEN"
        assert error_code(graphql(http, VOTE_ROUND, {"id": "AAAA" * 20, "b": ids[0]}, headers=auth_header("careless"))) \
            == "NOT_FOUND"
        duel = graphql(http, NEXT_DUEL, headers=auth_header("careless"))["data"]["nextDuel"]
        assert error_code(graphql(http, VOTE_ROUND, {"id": duel["id"], "b": duel["left"]["id"]},
                            headers=auth_header("careless"))) == "NOT_FOUND"  # a duel is not a round
        assert error_code(graphql(http, VOTE_DUEL, {"id": shown["id"], "c": "LEFT"},
                            headers=auth_header("careless"))) == "NOT_FOUND"  # nor a round a duel
        assert server.run(db.votes.count_documents({})) == logged
        # a full order is an answer; a different answer afterwards is refused, a skip too
        order = [ids[2], ids[0], *ids[3:], ids[1]]
        assert vote({"b": ids[2], "o": order})["data"]["voteSeriesRound"]["accepted"]
        assert error_code(vote({"b": ids[2]})) == "ALREADY_VOTED"
        assert error_code(graphql(http, SKIP_ROUND, {"id": shown["id"]}, headers=auth_header("careless"))) == "ALREADY_VOTED"
        skipped = round_for(http, "careless")
        assert graphql(http, SKIP_ROUND, {"id": skipped["id"]}, headers=auth_header("careless"))["data"][
            "skipSeriesRound"] is True
        assert error_code(graphql(http, VOTE_ROUND, {"id": skipped["id"], "b": skipped["photos"][0]["id"]},
                            headers=auth_header("careless"))) == "ALREADY_VOTED"
    stored = server.run(db.votes.find_one({"_id": vote_id_of(server, shown["id"])}))
    assert stored["choice"] == "ORDER" and stored["ranks"] == [order.index(i) for i in ids]


@dataclass
class Tally:
    rounds: list[str] = field(default_factory=list)  # accepted answers: round ids
    duels: list[str] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


async def _post(http: httpx.AsyncClient, tally: Tally, query: str, variables: dict[str, Any],
                player: str) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=auth_header(player))
    if response.status_code != 200:
        tally.problems.append(f"HTTP {response.status_code}: {response.text[:200]}")
        return {}
    body: dict[str, Any] = response.json()
    for error in body.get("errors", []):
        tally.codes[error.get("extensions", {}).get("code", "?")] += 1
    return body


async def _player(url: str, player: str, deadline: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=40, limits=LIMITS) as http:
        while time.monotonic() < deadline:
            if rng.random() < 0.35:  # a duel now and then, into the same log
                duel = (await _post(http, tally, NEXT_DUEL, {}, player)).get("data", {}).get("nextDuel")
                if duel is not None:
                    body = await _post(http, tally, VOTE_DUEL, {"id": duel["id"], "c": rng.choice(["LEFT", "RIGHT"])},
                                       player)
                    if (body.get("data") or {}).get("voteDuel", {}).get("accepted"):
                        tally.duels.append(duel["id"])
                continue
            shown = (await _post(http, tally, NEXT_ROUND, {}, player)).get("data", {}).get("nextSeriesRound")
            if shown is None:
                await asyncio.sleep(0.2)
                continue
            ids = [p["id"] for p in shown["photos"]]
            rng.shuffle(ids)
            if rng.random() < 0.1:
                await _post(http, tally, SKIP_ROUND, {"id": shown["id"]}, player)
                continue
            answer = {"id": shown["id"], "b": ids[0], "o": ids if rng.random() < 0.3 else None}
            sends = 2 if rng.random() < 0.3 else 1  # a retry sent at once, as a client that timed out would
            bodies = await asyncio.gather(*(_post(http, tally, VOTE_ROUND, answer, player) for _ in range(sends)))
            results = [(b.get("data") or {}).get("voteSeriesRound") for b in bodies]
            if any(r is None for r in results) or sum(r["accepted"] for r in results if r) != 1:
                tally.problems.append(f"an answer and its retry must count exactly once: {bodies}")
                continue
            tally.rounds.append(shown["id"])


async def _uploader(url: str, deadline: float, tally: Tally) -> int:
    uploaded = 0
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=LIMITS) as http:
        seed = 3000
        while time.monotonic() < deadline - 3:
            operations = '{"query": "mutation($f: Upload!) { uploadPhoto(file: $f) { id } }", "variables": {"f": null}}'
            response = await http.post(
                "/graphql", data={"operations": operations, "map": '{"0": ["variables.f"]}'},
                files={"0": ("photo.jpg", jpeg_bytes(generated_photo(seed)), "image/jpeg")},
                headers={**auth_header(OWNERS[seed % 6]), "Apollo-Require-Preflight": "true"})
            if response.status_code != 200 or "errors" in response.json():
                tally.problems.append(f"upload: {response.status_code} {response.text[:200]}")
            uploaded += 1
            seed += 1
            await asyncio.sleep(1.0)
    return uploaded


def pair_of(a: str, b: str) -> frozenset[str]:
    return frozenset((a, b))


def pairs_in(ids: list[str]) -> set[frozenset[str]]:
    return {pair_of(a, b) for n, a in enumerate(ids) for b in ids[n + 1:]}


async def _judge(url: str, player: str, steps: int, seen: dict[str, list[str]], tally: Tally, seed: int) -> None:
    """One player: a round first, then duels and rounds mixed; every duel or round offered must leave out
    every pair this player judged before (in a duel or as two photos of a round). `seen` collects what
    was offered, for the test to check the claims against."""
    rng = random.Random(seed)
    judged: set[frozenset[str]] = set()
    async with httpx.AsyncClient(base_url=url, timeout=40, limits=LIMITS) as http:
        for step in range(steps):
            if step % 4 == 0:
                shown = (await _post(http, tally, NEXT_ROUND, {}, player)).get("data", {}).get("nextSeriesRound")
                if shown is None:
                    continue
                ids = [p["id"] for p in shown["photos"]]
                if again := pairs_in(ids) & judged:
                    tally.problems.append(f"{player}: a round with pairs already judged: {again}")
                body = await _post(http, tally, VOTE_ROUND, {"id": shown["id"], "b": rng.choice(ids)}, player)
                if (body.get("data") or {}).get("voteSeriesRound", {}).get("accepted"):
                    judged |= pairs_in(ids)
                    seen["rounds"].append(player)
                continue
            duel = (await _post(http, tally, NEXT_DUEL, {}, player)).get("data", {}).get("nextDuel")
            if duel is None:
                continue
            pair = pair_of(duel["left"]["id"], duel["right"]["id"])
            seen["duels"].append(player)
            if pair in judged:
                tally.problems.append(f"{player}: a duel over a pair already judged: {sorted(pair)}")
            if rng.random() < 0.5:  # half are voted, the rest left to expire (drawn again, never judged)
                body = await _post(http, tally, VOTE_DUEL, {"id": duel["id"], "c": rng.choice(["LEFT", "RIGHT"])},
                                   player)
                if (body.get("data") or {}).get("voteDuel", {}).get("accepted"):
                    judged.add(pair)


def test_a_rounds_pairs_count_as_judged_for_every_later_duel_and_round_with_players_at_once(
    server: LiveServer, catalogue: list[str]
) -> None:
    tally = Tally()
    seen: dict[str, list[str]] = {"rounds": [], "duels": []}

    async def crowd() -> None:
        await asyncio.gather(*(_judge(server.url, f"judge-{n}", 16, seen, tally, 50 + n) for n in range(8)))

    server.wait_model()
    asyncio.run(crowd())
    assert not tally.problems, tally.problems[:5]
    assert set(tally.codes) <= {"ALREADY_VOTED"}, tally.codes  # two tickets drawn before either was answered
    # every player answered a round, and many duels were drawn after the rounds: the check had its chance
    assert Counter(seen["rounds"]).keys() == {f"judge-{n}" for n in range(8)}, seen["rounds"]
    assert len(seen["duels"]) >= 40, len(seen["duels"])


def test_a_ticket_drawn_before_a_round_over_one_of_its_pairs_is_already_voted(
    server: LiveServer, catalogue: list[str]
) -> None:
    """Tickets are signed, not stored, so a duel (or a round) may be drawn before an answer judges one of its
    pairs: answering it afterwards is refused, and the log keeps one judgement per player and pair."""
    db = server.services.db
    player = "early-ticket"
    with server.client() as http:
        shown = round_for(http, player)
        ids = [p["id"] for p in shown["photos"]]
        docs = server.run(server.services.photos.get_many([ObjectId(i) for i in ids[:2]]))
        early = server.services.duels.issue(player, docs[0], docs[1])  # drawn before the round is answered
        assert graphql(http, VOTE_ROUND, {"id": shown["id"], "b": ids[1]},
                       headers=auth_header(player))["data"]["voteSeriesRound"]["accepted"]
        logged = server.run(db.votes.count_documents({"player": player}))
        late = graphql(http, VOTE_DUEL, {"id": early.id, "c": "LEFT"}, headers=auth_header(player))
        assert error_code(late) == "ALREADY_VOTED", late
        # the other way round: a duel answered first, then a round over that pair and a photo more
        duel_player = "duel-first"
        duel = server.services.duels.issue(duel_player, docs[0], docs[1])
        assert graphql(http, VOTE_DUEL, {"id": duel.id, "c": "RIGHT"},
                       headers=auth_header(duel_player))["data"]["voteDuel"]["accepted"]
        ticket = SeriesTicket(kind=SeriesKind.ROUND, nonce=ObjectId(), player=duel_player,
                              photos=tuple(ObjectId(i) for i in ids[:3]),
                              expires_at=(utcnow() + timedelta(minutes=5)).replace(microsecond=0))
        round_id = server.services.series_rounds.signer.sign(ticket)
        refused = graphql(http, VOTE_ROUND, {"id": round_id, "b": ids[2]}, headers=auth_header(duel_player))
        assert error_code(refused) == "ALREADY_VOTED", refused
        assert error_code(graphql(http, SKIP_ROUND, {"id": round_id}, headers=auth_header(duel_player))) == "ALREADY_VOTED"
    assert server.run(db.votes.count_documents({"player": player})) == logged
    assert server.run(db.votes.count_documents({"player": duel_player})) == 1


def test_players_answer_rounds_and_duels_at_once_and_every_answer_is_applied_once(
    server: LiveServer, catalogue: list[str]
) -> None:
    tally = Tally()

    async def burst() -> int:
        deadline = time.monotonic() + BURST_SECONDS
        players = [_player(server.url, f"crowd-{n}", deadline, tally, n) for n in range(PLAYERS)]
        _, uploaded = await asyncio.gather(asyncio.gather(*players), _uploader(server.url, deadline, tally))
        return uploaded

    server.wait_model()
    uploaded = asyncio.run(burst())
    assert not tally.problems, tally.problems[:5]
    assert set(tally.codes) <= {"ALREADY_VOTED"}, tally.codes  # a round offered twice to one player (same photos)
    assert len(tally.rounds) >= 25 and len(tally.duels) >= 5 and uploaded
    round_ids = [vote_id_of(server, r) for r in tally.rounds]
    duel_ids = [vote_id(server, d) for d in tally.duels]

    async def check() -> tuple[int, int, dict[Any, Any], dict[Any, Any], Counter[Any], dict[Any, int]]:
        db = server.services.db
        await settled(server)
        logged = await db.votes.count_documents({"_id": {"$in": round_ids + duel_ids}})
        applied = await applied_count(db, round_ids + duel_ids)
        shown: Counter[Any] = Counter()
        async for batch in db.rating_batches.find({}, {"entries": 1}):
            for e in batch["entries"]:
                if not e.get("gone"):
                    shown.update(e["photos"] if "photos" in e else [e["left"], e["right"]])
        stored = await server.services.photos.stored_ratings()
        replayed = await server.services.projector.replay()
        votes = {pid: r["votes"] for pid, r in stored.items()}
        return logged, applied, stored, replayed, shown, votes

    logged, applied, stored, replayed, shown, votes = server.run(check(), timeout=120)
    assert logged == applied == len(round_ids) + len(duel_ids), "an acknowledged answer lost or applied twice"
    assert {pid: votes.get(pid, 0) for pid in shown} == dict(shown), "a photo counts one vote per answer it was in"
    for pid, fields in stored.items():  # the ratings are the log's projection, series rounds included
        assert replayed[pid]["mu"] == pytest.approx(fields["mu"], abs=1e-9), pid
        assert replayed[pid]["sigma"] == pytest.approx(fields["sigma"], abs=1e-9), pid
