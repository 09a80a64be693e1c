"""Player progress over real HTTP, the real vote path, rating projector, progress projector and push.

Stats and badges move as a player votes, many concurrent votes of one player are each counted once, the
day's goal and the badges are announced through the outbox (a muted kind is recorded and not pushed),
a featured photo earns its owner a badge, the zone is validated, and a streak survives midnight in the
player's time zone (votes written into the log at chosen instants, projected by the real projectors).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from bson import ObjectId

from gaming.duels.progress_projector import ProgressProjector
from gaming.duels.records import initial_rating_fields
from photoduel.services import open_services
from photoduel.settings import Settings
from storage.photos import READY
from storage.rating_batches import RatingBatchRepository
from storage.votes import pair_key
from tests.fcm_server import LoopbackFcm, push_settings
from tests.servers import LiveServer, error_code, graphql
from tests.tokens import auth_header

PROJECT = "demo-photoduel"
GOAL = 3
STATS = "{ me { stats { votes streakDays longestStreakDays timeZone agreement today { day votes goal reached } " \
        "badges { kind earnedAt } } } }"
VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"
SET_ZONE = "mutation($z: String!) { setTimeZone(zone: $z) { timeZone today { day votes goal } } }"
NOTIFICATIONS = "{ notifications(first: 50) { nodes { kind title body deepLink } } }"


@pytest.fixture(scope="module")
def server(fcm: LoopbackFcm, make_settings: Callable[..., Settings],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(**push_settings(fcm, tmp_path_factory, project_id=PROJECT), daily_vote_goal=GOAL,
                             agreement_min_votes=5, featured_min_votes=1, featured_max_sigma=8.0,
                             maintenance_seconds=0.5)
    with LiveServer(settings) as live:
        yield live


def seed_photos(services: Any, owners: list[str]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [{"_id": ObjectId(), "owner": owner, "status": READY, "category": "test", "sha256": f"s{i}-{owner}",
             "title": f"photo {i}", "created_at": now, "ready_at": now, "neighbours": [], "quality": {"score": 0.5},
             "rating": initial_rating_fields(0.5, services.rating_env)} for i, owner in enumerate(owners)]


@pytest.fixture(scope="module")
def photos(server: LiveServer) -> list[dict[str, Any]]:
    """Twenty photos; the first is olga's, the rest belong to owners who never play."""
    docs = seed_photos(server.services, ["olga"] + [f"owner{i}" for i in range(19)])
    server.run(server.services.photos.collection.insert_many(docs))
    return docs


def pairs(photos: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Distinct pairs, the better photo (the lower index) on the left."""
    return itertools.combinations(photos, 2)


def ticket(server: LiveServer, player: str, left: dict[str, Any], right: dict[str, Any]) -> str:
    return str(server.services.duels.issue(player, left, right).id)


def stats(client: httpx.Client, player: str) -> dict[str, Any]:
    body = graphql(client, STATS, headers=auth_header(player))
    assert "errors" not in body, body
    return dict(body["data"]["me"]["stats"])


def wait_stats(client: httpx.Client, player: str, done: Callable[[dict[str, Any]], bool],
               timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = stats(client, player)
        if done(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


def kinds(client: httpx.Client, player: str) -> list[tuple[str, str]]:
    body = graphql(client, NOTIFICATIONS, headers=auth_header(player))
    return [(n["kind"], n["title"]) for n in body["data"]["notifications"]["nodes"]]


def vote(client: httpx.Client, server: LiveServer, player: str, left: dict[str, Any], right: dict[str, Any]) -> None:
    body = graphql(client, VOTE, {"id": ticket(server, player, left, right), "c": "LEFT"}, headers=auth_header(player))
    assert body["data"]["voteDuel"]["accepted"] is True, body


def test_stats_goal_and_badges_move_as_a_player_votes_and_a_muted_kind_is_not_pushed(
    client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]], fcm: LoopbackFcm,
) -> None:
    pia = auth_header("pia")
    days = {datetime.now(UTC).date().isoformat()}
    fresh = stats(client, "pia")
    days.add(datetime.now(UTC).date().isoformat())
    assert fresh["today"].pop("day") in days
    assert fresh == {"votes": 0, "streakDays": 0, "longestStreakDays": 0, "timeZone": "UTC", "agreement": None,
                     "today": {"votes": 0, "goal": GOAL, "reached": False}, "badges": []}
    registered = graphql(client, 'mutation { registerDevice(token: "pia-phone", platform: ANDROID) { token } }',
                         headers=pia)
    assert "errors" not in registered, registered
    muted = graphql(client, "mutation { muteNotifications(kind: BADGE) }", headers=pia)
    assert muted["data"]["muteNotifications"] == ["BADGE"]
    chosen = pairs(photos)

    vote(client, server, "pia", *next(chosen))
    first = wait_stats(client, "pia", lambda s: s["votes"] == 1)
    assert (first["votes"], first["streakDays"], first["longestStreakDays"]) == (1, 1, 1)
    assert first["today"]["votes"] == 1 and first["today"]["reached"] is False
    assert [b["kind"] for b in first["badges"]] == ["FIRST_VOTE"]
    earned = datetime.fromisoformat(first["badges"][0]["earnedAt"])
    assert abs(earned - datetime.now(UTC)) < timedelta(minutes=1)

    for _ in range(GOAL - 1):
        vote(client, server, "pia", *next(chosen))
    reached = wait_stats(client, "pia", lambda s: s["votes"] == GOAL)
    assert reached["today"] | {"day": None} == {"day": None, "votes": GOAL, "goal": GOAL, "reached": True}
    assert reached["streakDays"] == 1 and [b["kind"] for b in reached["badges"]] == ["FIRST_VOTE"]
    assert reached["agreement"] is None  # three votes: too few to say

    # both announced in the inbox; the muted kind (BADGE) is not pushed, the goal is
    deadline = time.monotonic() + 30
    while not fcm.fcm_requests("pia-phone") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(kinds(client, "pia")) == [("BADGE", "First vote!"), ("DAILY_GOAL", "Daily goal reached!")]
    [push] = [r.body["message"] for r in fcm.fcm_requests("pia-phone")]
    assert push["data"]["kind"] == "DAILY_GOAL" and push["data"]["goal"] == str(GOAL)
    assert push["data"]["deepLink"] == "photoduel://me/progress"
    badge = server.run(server.services.outbox.collection.find_one({"user": "pia", "kind": "BADGE"}))
    assert badge["key"] == "badge:pia:FIRST_VOTE" and badge["push"]["state"] == "muted"


def test_many_concurrent_votes_of_one_player_are_each_counted_once(
    client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]],
) -> None:
    chosen = list(itertools.islice(pairs(photos), 100))
    tickets = [ticket(server, "quinn", left, right) for left, right in chosen]

    async def send_all() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            async def one(duel_id: str) -> dict[str, Any]:
                response = await http.post("/graphql", json={"query": VOTE, "variables": {"id": duel_id, "c": "LEFT"}},
                                           headers=auth_header("quinn"))
                return dict(response.json())
            return await asyncio.gather(*(one(t) for t in tickets))

    answers = asyncio.run(send_all())
    assert all(a["data"]["voteDuel"]["accepted"] is True for a in answers), [a for a in answers if "errors" in a][:3]

    counted = wait_stats(client, "quinn", lambda s: s["votes"] >= 100)
    assert counted["votes"] == 100 and counted["today"]["votes"] == 100
    assert [b["kind"] for b in counted["badges"]] == ["FIRST_VOTE", "VOTES_100"]
    server.run(server.services.progress_projector.drain())  # counting again finds nothing new
    assert stats(client, "quinn")["votes"] == 100
    records = server.run(server.services.outbox.collection.find({"user": "quinn"}).to_list())
    assert sorted(r["key"] for r in records) == sorted([
        "badge:quinn:FIRST_VOTE", "badge:quinn:VOTES_100", f"goal:quinn:{counted['today']['day']}"])
    # quinn always picked the lower-numbered photo, and the ratings (quinn's votes alone) agree
    assert counted["agreement"] is not None and 0.5 < counted["agreement"] <= 1.0


def test_a_featured_photo_earns_its_owner_a_badge_once(
    client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]],
) -> None:
    for other in photos[1:8]:  # olga's photo wins every duel: it leads its category
        vote(client, server, "ria", photos[0], other)
    olga = wait_stats(client, "olga", lambda s: bool(s["badges"]))
    assert [b["kind"] for b in olga["badges"]] == ["PHOTO_FEATURED"] and olga["votes"] == 0
    assert sorted(kinds(client, "olga")) == [("BADGE", "Featured photographer!"), ("FEATURED", "Featured!")]
    assert not server.run(server.services.progress.photo_featured("olga"))  # held already: not again
    assert sorted(kinds(client, "olga")) == [("BADGE", "Featured photographer!"), ("FEATURED", "Featured!")]


def test_the_time_zone_is_an_iana_name_and_sets_the_players_today(client: httpx.Client) -> None:
    sam = auth_header("sam")
    for bad in ("Mars/Olympus_Mons", "", "../../etc/passwd", "localtime"):
        refused = graphql(client, SET_ZONE, {"z": bad}, headers=sam)
        assert refused["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "zone"}, refused
    assert error_code(graphql(client, SET_ZONE, {"z": "UTC"})) == "UNAUTHENTICATED"
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # UTC+14 and UTC-11: never the same day
        answer = graphql(client, SET_ZONE, {"z": zone}, headers=sam)["data"]["setTimeZone"]
        assert answer == {"timeZone": zone, "today": {"day": datetime.now(ZoneInfo(zone)).date().isoformat(),
                                                      "votes": 0, "goal": GOAL}}
    assert stats(client, "sam")["timeZone"] == "Pacific/Pago_Pago"


def _logged_vote(player: str, left: dict[str, Any], right: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A vote as the vote path writes it, cast at `at`."""
    return {"_id": ObjectId(), "player": player, "left": left["_id"], "right": right["_id"],
            "pair": pair_key(left["_id"], right["_id"]), "choice": "LEFT", "category": "test", "anchor_side": "LEFT",
            "similarity": None, "created_at": at.replace(microsecond=0), "anonymous": False, "history": 0}


def _zone_near_noon(now: datetime) -> ZoneInfo:
    """A zone where it is about noon now, so the last midnight there is hours behind and the next ahead."""
    offset = (12 - now.hour + 12) % 24 - 12
    return ZoneInfo("Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}")


def test_the_streak_survives_midnight_in_the_players_time_zone(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(daily_vote_goal=GOAL)
    now = datetime.now(UTC)
    zone = _zone_near_noon(now)
    today = now.astimezone(zone).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=zone).astimezone(UTC)
    # tess: 23:59:30 yesterday and 00:00:30 today in her zone; uma, in UTC, at the same two instants
    instants = [midnight - timedelta(seconds=30), midnight + timedelta(seconds=30)]
    # where UTC itself is near noon, uma's zone is half a day away, so the two instants are one day for her
    uma_zone = "Etc/GMT-12" if zone.utcoffset(now) == timedelta(0) else "UTC"

    async def project() -> None:
        async with open_services(settings, load_model=False) as services:
            photos = seed_photos(services, [f"owner{i}" for i in range(4)])
            await services.photos.collection.insert_many(photos)
            await services.progress.set_time_zone("tess", zone.key)
            await services.progress.set_time_zone("uma", uma_zone)
            for player in ("tess", "uma"):
                for at, (left, right) in zip(instants, itertools.combinations(photos, 2), strict=False):
                    await services.duels.votes.insert(_logged_vote(player, left, right, at))
            await services.projector.drain(settle=True)
            await services.progress_projector.drain()
            tess = await services.progress.stats("tess")
            assert (tess.day.votes, tess.day.streak_days, tess.day.today_votes) == (2, 2, 1)
            uma = await services.progress.stats("uma")
            assert (uma.day.votes, uma.day.streak_days, uma.day.longest_streak_days) == (2, 1, 1)
            # the next day in tess's zone, one vote: three days running
            later = midnight + timedelta(days=1, hours=1)
            assert (await services.progress.stats("tess", now=later)).day.streak_days == 2  # not broken yet
            assert (await services.progress.stats("tess", now=later + timedelta(days=1))).day.streak_days == 0

    asyncio.run(project())
    with LiveServer(settings, run_worker=False) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        tess = stats(http, "tess")
        assert (tess["timeZone"], tess["votes"], tess["streakDays"]) == (zone.key, 2, 2)
        assert tess["today"] == {"day": today.isoformat(), "votes": 1, "goal": GOAL, "reached": False}
        assert [b["kind"] for b in tess["badges"]] == ["FIRST_VOTE"]
        assert datetime.fromisoformat(tess["badges"][0]["earnedAt"]) == instants[0]


def test_two_projectors_at_once_count_each_vote_once_and_erasure_forgets_a_player(
    make_settings: Callable[..., Settings],
) -> None:
    """A projector that lost its lease unawares runs beside its successor: the writes conditional on the
    last batch counted (and on the zone read) keep every count exact, and a zone set meanwhile is used."""
    settings = make_settings(daily_vote_goal=1000)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    async def go() -> None:
        async with open_services(settings, load_model=False) as services:
            photos = seed_photos(services, [f"owner{i}" for i in range(12)])
            await services.photos.collection.insert_many(photos)
            players = [f"voter{n}" for n in range(6)]
            chosen = list(itertools.combinations(photos, 2))
            for n, (left, right) in enumerate(chosen):
                at = start + timedelta(seconds=n)
                await services.duels.votes.insert(_logged_vote(players[n % len(players)], left, right, at))
            gone = {"_id": ObjectId()}  # a photo deleted since
            await services.duels.votes.insert(_logged_vote("vera", gone, photos[0], start - timedelta(seconds=1)))
            services.projector.batch_size = 7  # many small batches, so the two interleave
            await services.projector.drain(settle=True)
            main = services.progress_projector
            rogue = ProgressProjector(RatingBatchRepository(services.db), main.progress, main.params, goal=1000,
                                      announce=main.announce)
            await services.progress.set_time_zone("voter0", "Asia/Tokyo")
            await asyncio.gather(main.drain(), rogue.drain(), services.progress.set_time_zone("voter1", "Europe/Oslo"))
            for n, player in enumerate(players):
                mine = len(chosen[n::len(players)])
                assert (await services.progress.stats(player)).day.votes == mine, player
            badges = await services.outbox.collection.count_documents({"kind": "BADGE"})
            assert badges == len(players) + 1  # FIRST_VOTE once each (vera's below too)

            # vera's vote, on a photo deleted before the projector reached it: left unrated, still counted
            [entry] = [e for b in await services.projector.batches.after(0, limit=1000) for e in b["entries"]
                       if e.get("player") == "vera"]
            assert entry["gone"] is True
            assert (await services.progress.stats("vera")).day.votes == 1

            # account erasure forgets the player's progress
            assert await services.progress.forget("voter2")
            assert not await services.progress.forget("voter2")
            assert await main.progress.get("voter2") is None
            assert (await services.progress.stats("voter2")).day.votes == 0

    asyncio.run(go())
