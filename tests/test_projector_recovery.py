"""The rating projector dying anywhere: between its two writes, or with the whole service (SIGKILL).

Whatever the moment, the next holder of the lease applies every logged vote exactly once and the stored
ratings equal a replay of the log.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from pymongo import MongoClient

from gaming.duels.projector import LEASE_NAME, RatingProjector
from gaming.duels.records import initial_rating_fields
from gaming.ratings import Outcome
from photoduel.services import open_services
from photoduel.settings import Settings
from storage.leases import Lease
from storage.photos import READY
from storage.rating_batches import RatingBatchRepository
from storage.votes import VoteRepository
from tests.test_embedded_lifecycle import _kill_leftovers, _wait_gone
from tests.test_serve_command import start_serve, wait_ready
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_ok
from tests.uploads import wait_ready as wait_photo_ready
from tests.votes import vote_nonce

VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"
NEXT = "query { nextDuel { id } }"


class Killed(Exception):
    """Stands for the projector's process dying at that point."""


async def _seed(services: Any, count: int = 8) -> list[dict[str, Any]]:
    """READY photos as ingest leaves them, of four owners."""
    now = datetime.now(UTC)
    docs = [{"_id": ObjectId(), "owner": f"owner{i % 4}", "status": READY, "category": "test", "sha256": f"s{i}",
             "created_at": now, "ready_at": now, "neighbours": [], "quality": {"score": 0.3 + 0.05 * i},
             "rating": initial_rating_fields(0.3 + 0.05 * i, services.rating_env)} for i in range(count)]
    await services.photos.collection.insert_many(docs)
    return docs


def _projector(services: Any, holder: str, after_record: Callable[[Mapping[str, Any]], Any] | None = None
               ) -> RatingProjector:
    db = services.db
    return RatingProjector(VoteRepository(db), RatingBatchRepository(db), services.photos,
                           Lease(db["leases"], LEASE_NAME, holder=holder, seconds=1.0), services.rating_env,
                           services.feed, after_record=after_record, batch_size=5)


async def _vote_all(services: Any, photos: list[dict[str, Any]], first_player: int, count: int) -> list[ObjectId]:
    ids = []
    for n in range(count):
        left, right = photos[n % len(photos)], photos[(n + 1 + n // len(photos)) % len(photos)]
        if left["owner"] == right["owner"]:
            right = photos[(n + 2) % len(photos)]
        player = f"p{first_player + n}"
        duel = services.duels.issue(player, left, right)
        outcome = await services.duels.vote(duel.id, player, [Outcome.LEFT, Outcome.RIGHT, Outcome.DRAW][n % 3])
        assert outcome.accepted and not outcome.applied  # no projector runs in this process yet
        ids.append(duel.ticket.nonce)
    return ids


async def _entries(db: Any) -> list[dict[str, Any]]:
    return [e async for b in db.rating_batches.find({}).sort("_id", 1) for e in b["entries"]]


def test_a_projector_killed_between_its_two_writes_is_repeated_with_the_same_result(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(vote_result_wait_seconds=0.0)

    async def go() -> None:
        async with open_services(settings, load_model=False) as services:
            photos = await _seed(services)
            first = await _vote_all(services, photos, 0, 12)

            async def die(batch: Mapping[str, Any]) -> None:
                if batch["_id"] == 2:
                    raise Killed  # batch 2 is recorded, its photos not written

            doomed = _projector(services, "doomed", after_record=die)
            try:
                await doomed.drain(settle=True)
                raise AssertionError("the projector was meant to die in batch 2")
            except Killed:
                pass
            stored = await services.photos.stored_ratings()
            replayed = await doomed.replay()
            assert stored != replayed, "the record is ahead of the photos: the window this test is about"

            more = await _vote_all(services, photos, 100, 7)  # votes keep coming while nobody projects
            heir = _projector(services, "heir")
            deadline = time.monotonic() + 60
            while await heir.lease.holder_now() is not None:  # until the dead holder's lease lapses
                assert time.monotonic() < deadline, "the dead projector's lease never lapsed"
                await asyncio.sleep(0.05)
            await heir.drain(settle=True)

            entries = await _entries(services.db)
            applied = [e["vote"] for e in entries]
            assert sorted(applied) == sorted(first + more), "every vote applied exactly once"
            assert [b["_id"] async for b in services.db.rating_batches.find({}, {"_id": 1}).sort("_id", 1)] == \
                list(range(1, len(entries) // 5 + (len(entries) % 5 > 0) + 1))
            replayed = await heir.replay()
            assert await services.photos.stored_ratings() == replayed
            assert sum(r["votes"] for r in replayed.values()) == 2 * len(applied)

            # a projector that lost its lease unawares cannot write: its next batch number is taken
            stale = _projector(services, "stale")
            stale.active, stale.seq = True, 0
            stale._renewed = time.monotonic()
            late = await _vote_all(services, photos, 200, 1)
            try:
                await stale.step(settle=True)
                raise AssertionError("a stale projector wrote a batch")
            except Exception as exc:
                assert type(exc).__name__ == "LostLease"
            await heir.drain(settle=True)
            assert [e["vote"] for e in await _entries(services.db)].count(late[0]) == 1
            assert await services.photos.stored_ratings() == await heir.replay()

    asyncio.run(go())


def _embedded_port(data_dir: Path) -> int:
    return int(json.loads((data_dir / "mongodb" / "secantusd.pid").read_text())["port"])


def _play_until_killed(process: subprocess.Popen[bytes], url: str, players: int, votes: int) -> list[str]:
    """Players vote as fast as they can; the service is SIGKILLed once `votes` were acknowledged.
    Returns the acknowledged duel ids."""
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def player(n: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                try:
                    duel = http.post("/graphql", json={"query": NEXT}, headers=auth_header(f"v{n}")).json()
                    duel = duel["data"]["nextDuel"]
                    if duel is None:
                        return
                    body = http.post("/graphql", json={"query": VOTE, "variables": {"id": duel["id"], "c": "LEFT"}},
                                     headers=auth_header(f"v{n}")).json()
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    return  # the server died under us: this vote was never acknowledged
                if body.get("data", {}).get("voteDuel", {}).get("accepted"):
                    with lock:
                        acknowledged.append(duel["id"])

    threads = [threading.Thread(target=player, args=(n,)) for n in range(players)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < votes and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # in the middle of the burst
    process.wait(10)
    stop.set()
    for t in threads:
        t.join(20)
    return acknowledged


def _wait_applied(db: Any, wanted: set[str], deadline: float) -> list[str]:
    """The vote ids in the rating batches, once every wanted one is there (or the deadline passed)."""
    while True:
        entries = [e["vote"] for b in db.rating_batches.find({}, {"entries.vote": 1}) for e in b["entries"]]
        if wanted <= set(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.2)


def _wait_counted_on_photos(db: Any, expected: int, deadline: float) -> int:
    """Votes counted on the photo documents: the last batch's photo writes land just after its record."""
    while True:
        counted = sum(d["rating"]["votes"] for d in db.photos.find({"rating": {"$exists": True}}))
        if counted == expected or time.monotonic() > deadline:
            return counted
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()


def test_sigkill_of_serve_mid_burst_loses_no_acknowledged_vote(tmp_path: Path, tiny_clip: Path) -> None:
    env = {"PHOTODUEL_CLIP_MODEL": str(tiny_clip), "PHOTODUEL_ENV": "dev", "PHOTODUEL_PROJECTOR_LEASE_SECONDS": "2",
           "PHOTODUEL_LOG_LEVEL": "WARNING",
           "PHOTODUEL_MODERATION_THRESHOLDS": "{}"}  # the tiny random CLIP must not have photos held back
    storage = tmp_path / "data" / "mongodb"
    process, url = start_serve(env, tmp_path)
    try:
        wait_ready(process, url, tmp_path / "serve.log")
        with httpx.Client(base_url=url, timeout=60) as http:
            owners = [f"owner{i}" for i in range(4)]
            ids = [upload_ok(http, jpeg_bytes(generated_photo(300 + i)), auth_header(owners[i % 4]))["id"]
                   for i in range(8)]
            for i, pid in enumerate(ids):
                wait_photo_ready(http, pid, auth_header(owners[i % 4]))
        acknowledged = _play_until_killed(process, url, players=8, votes=20)
        assert len(acknowledged) >= 20
        assert not _wait_gone(storage, 15), "the embedded database outlived its service"
    finally:
        if process.poll() is None:
            process.kill()
        _kill_leftovers(storage)

    process, url = start_serve(env, tmp_path)  # the same data dir: the next start takes over
    try:
        wait_ready(process, url, tmp_path / "serve.log")
        with MongoClient(f"mongodb://127.0.0.1:{_embedded_port(tmp_path / 'data')}/?directConnection=true",
                         tz_aware=True) as client:
            db = client["photoduel"]
            wanted = {vote_nonce(tmp_path / "data", d) for d in acknowledged}
            deadline = time.monotonic() + 60
            entries = _wait_applied(db, wanted, deadline)
            assert wanted <= set(entries), f"{len(wanted - set(entries))} acknowledged votes never applied"
            assert len(entries) == len(set(entries)), "a vote was applied twice"
            logged = {v["_id"] for v in db.votes.find({"choice": {"$ne": "SKIP"}}, {"_id": 1})}
            assert set(entries) <= logged
            assert _wait_counted_on_photos(db, 2 * len(entries), deadline) == 2 * len(entries)
    finally:
        _stop(process)
        _kill_leftovers(storage)


def test_votes_applied_by_the_earlier_vote_path_are_carried_over_not_applied_twice(
    make_settings: Callable[..., Settings],
) -> None:
    """A deployment upgraded from per-vote transactions: its applied votes carry `applied_seq` and
    already moved the photos' ratings; the projector turns them into batch records, once."""
    settings = make_settings(vote_result_wait_seconds=0.0)

    async def go() -> None:
        async with open_services(settings, load_model=False) as services:
            photos = await _seed(services, 6)
            projector = _projector(services, "upgraded")
            ratings = {p["_id"]: p["rating"] for p in photos}
            legacy = []
            for n in range(9):  # as the old path stored them, applied in order with their ratings written
                left, right = photos[n % 3], photos[3 + n % 3]
                choice = ["LEFT", "RIGHT", "DRAW"][n % 3]
                params = {"kind": "celebrity_offset", "offset": 2.0} if n >= 6 else None
                ratings[left["_id"]], ratings[right["_id"]] = projector.rate(
                    ratings[left["_id"]], ratings[right["_id"]], choice, False, False, params)
                legacy.append({"_id": ObjectId(), "duel_id": ObjectId(), "player": f"old{n}", "left": left["_id"],
                               "right": right["_id"], "pair": f"{n}", "choice": choice, "category": None,
                               "created_at": datetime.now(UTC), "applied_seq": n + 1, "adjustment": params,
                               "left_celebrity": False, "right_celebrity": False})
            pending = {**legacy[0], "_id": ObjectId(), "duel_id": ObjectId(), "player": "late", "pair": "late",
                       "applied_seq": None, "created_at": datetime.now(UTC)}
            await services.db.votes.insert_many([*legacy, pending])
            for pid, fields in ratings.items():
                await services.photos.collection.update_one({"_id": pid}, {"$set": {"rating": fields}})

            assert await projector.drain(settle=True) == 1  # only the vote the old path never applied
            entries = await _entries(services.db)
            assert [e["vote"] for e in entries] == [v["_id"] for v in legacy] + [pending["_id"]]
            stored = await services.photos.stored_ratings()
            assert stored == await projector.replay()
            assert sum(r["votes"] for r in stored.values()) == 2 * 10

    asyncio.run(go())


def test_votes_written_out_of_order_or_late_by_other_processes_are_each_applied_once(
    make_settings: Callable[..., Settings],
) -> None:
    """Votes the projector is not handed (another API process wrote them): a backlog larger than a batch,
    inserts that land a little behind the tail, and stragglers far behind it."""
    from datetime import timedelta

    from storage.votes import pair_key

    settings = make_settings()

    async def go() -> None:
        async with open_services(settings, load_model=False) as services:
            photos = await _seed(services, 8)
            repo, projector = VoteRepository(services.db), _projector(services, "tail")
            projector.batch_size = 50
            counter = iter(range(10_000))

            async def write(created_at: datetime) -> ObjectId:
                n = next(counter)
                left, right = photos[n % 4], photos[4 + (n // 4) % 4]
                vote = {"_id": ObjectId(), "player": f"other-{n}", "left": left["_id"], "right": right["_id"],
                        "pair": pair_key(left["_id"], right["_id"]), "choice": ["LEFT", "RIGHT", "DRAW"][n % 3],
                        "category": None, "created_at": created_at.replace(microsecond=created_at.microsecond // 1000 * 1000)}
                await repo.insert(vote)
                return vote["_id"]

            start = datetime.now(UTC) - timedelta(seconds=3)
            written = [await write(start + timedelta(milliseconds=5 * i)) for i in range(300)]
            assert await projector.drain() == 300  # six batches from the tail alone
            late = [await write(projector.tail - timedelta(milliseconds=400)) for _ in range(20)]
            await asyncio.sleep(0.6)  # the re-read behind the tail is due
            assert await projector.drain() == 20
            stragglers = [await write(projector.tail - timedelta(seconds=5)) for _ in range(10)]
            assert await projector.drain(settle=True) == 10  # the sweep, told nothing else is writing
            applied = [e["vote"] for e in await _entries(services.db)]
            assert sorted(applied) == sorted(written + late + stragglers)
            assert await services.photos.stored_ratings() == await projector.replay()

    asyncio.run(go())
