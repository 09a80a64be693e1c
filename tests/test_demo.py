"""`photoduel demo` on an empty install: afterwards a new player gets a duel, and a second run refuses."""

from __future__ import annotations

from collections.abc import Callable

from pymongo import MongoClient

from photoduel.demo import PLAYERS
from photoduel.demo_photos import demo_photos
from photoduel.settings import Settings
from tests.servers import LiveServer, graphql
from tests.test_cli_commands import run_cli
from tests.tokens import auth_header

NEXT = "query { nextDuel { id left { id title } right { id title } } }"
PROFILE = "query($id: ID!) { photo(id: $id) { title tags owner { displayName } rating { votes } } }"


def test_demo_seeds_a_playable_install_once(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(log_level="WARNING")
    seeded = run_cli(settings, "demo", "--photos", "8", "--votes", "24")
    assert seeded.returncode == 0, seeded.stderr
    assert "demo: 8 players, 8 photos (8 ready)" in seeded.stdout
    assert ", 24 votes" in seeded.stdout

    db = MongoClient(settings.mongodb_uri)[settings.mongodb_database]
    assert db.photos.count_documents({"status": "READY"}) == 8
    assert db.votes.count_documents({"choice": {"$ne": "SKIP"}}) == 24
    assert {doc["player"] for doc in db.votes.find()} <= {uid for uid, _ in PLAYERS}
    assert db.photos.count_documents({"tags.0": {"$exists": True}}) == 8  # owners accepted suggestions
    applied = sum(len(batch["entries"]) for batch in db.rating_batches.find({}, {"entries": 1}))
    assert applied == 24  # the projector applied every vote before the command ended

    again = run_cli(settings, "demo", "--photos", "8", "--votes", "24")
    assert again.returncode == 1
    assert "already has 8 photos" in again.stderr
    assert db.photos.count_documents({}) == 8

    with LiveServer(settings) as live, live.client() as client:
        duel = graphql(client, NEXT, headers=auth_header("newcomer"))["data"]["nextDuel"]
        assert duel is not None and duel["left"]["id"] != duel["right"]["id"]
        photo = graphql(client, PROFILE, {"id": duel["left"]["id"]})["data"]["photo"]
        assert photo["owner"]["displayName"] in {name for _, name in PLAYERS}
        assert photo["tags"] and photo["title"]


def test_demo_photos_are_distinct_and_reproducible() -> None:
    first = list(demo_photos(40, seed=3))
    assert len({p.data for p in first}) == 40
    assert len({p.title for p in first}) == 40
    assert [p.data for p in demo_photos(5, seed=3)] == [p.data for p in first[:5]]
