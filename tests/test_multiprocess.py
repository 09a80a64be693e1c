"""Several processes on one database and one Milvus, as the README's local recipe runs them.

`photoduel database` (the embedded server, for other processes), `milvus-lite server`, two API processes
with their worker off and one `photoduel worker`, each a real child process (tests/processes.py). An
upload through one API is processed by the worker and found through the other; a duel issued by one
API is voted through the other; every acknowledged vote is applied exactly once whichever process
holds the rating projector's lease, and when that process is killed another takes the lease over.
Events recorded by the worker (`tagSuggestionsReady`, `notificationAdded`) reach a websocket held by
the other API process, through its outbox follower; a client whose API process is killed reconnects
to the other and gets the next event. The maintenance chores run in one worker by lease, and another
worker takes them over when the holder is killed.
`photoduel database` stops its server when stopped, and when killed.

The `cluster` fixture yields the running deployment with its URLs, for more cross-process tests.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from gaming.duels.projector import LEASE_NAME
from photoduel.container import MAINTENANCE_LEASE
from storage.clock import utcnow
from storage.embedded_mongo import free_port
from tests.graphql_ws import Ws, connect
from tests.processes import Child, Cluster, mongo_answers, photoduel, running_cluster, wait_for
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, near_copy, skimage_photo, upload_ok
from tests.uploads import wait_ready as wait_photo_ready
from tests.votes import vote_nonce

LEASE_SECONDS = 2.0
NEXT = "query { nextDuel { id } }"
VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"
SIMILAR = "query($id: ID!) { similarPhotos(photoId: $id, first: 5) { photo { id } similarity } }"
SEARCH = "query($text: String!) { searchPhotos(text: $text, first: 50) { id } }"

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path) -> Iterator[Cluster]:
    env = {"PHOTODUEL_CLIP_MODEL": str(tiny_clip), "PHOTODUEL_CLIP_BATCH_SIZE": "8",
           "PHOTODUEL_WORKER_POLL_SECONDS": "0.1", "PHOTODUEL_JOB_RETRY_BASE_SECONDS": "0.2",
           "PHOTODUEL_PROJECTOR_LEASE_SECONDS": str(LEASE_SECONDS),
           "PHOTODUEL_CATALOGUE_NEW_PHOTOS_SECONDS": "0.5",
           "PHOTODUEL_MAINTENANCE_SECONDS": "0.5", "PHOTODUEL_MAINTENANCE_LEASE_SECONDS": str(LEASE_SECONDS),
           # the tiny random CLIP scores unsafe labels at random: screening holds nothing back (as in conftest)
           "PHOTODUEL_MODERATION_THRESHOLDS": "{}"}
    with running_cluster(tmp_path_factory.mktemp("cluster"), apis=2, workers=1, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def db(cluster: Cluster) -> Iterator[Database[Doc]]:
    client: MongoClient[Doc]
    with MongoClient(cluster.mongo_uri, tz_aware=True) as client:
        yield client["photoduel"]


@pytest.fixture(scope="module")
def duel_photos(cluster: Cluster) -> list[str]:
    """Eight READY photos of four owners, uploaded alternately through both APIs."""
    ids = []
    for i in range(8):
        owner = auth_header(f"owner{i % 4}")
        with httpx.Client(base_url=cluster.url(cluster.apis[i % 2]), timeout=60) as http:
            ids.append(upload_ok(http, jpeg_bytes(generated_photo(700 + i)), owner)["id"])
    with httpx.Client(base_url=cluster.url(cluster.apis[0]), timeout=60) as http:
        for i, photo_id in enumerate(ids):
            assert wait_photo_ready(http, photo_id, auth_header(f"owner{i % 4}"))["status"] == "READY"
    return ids


def gql(http: httpx.Client, query: str, variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None) -> Any:
    body = http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers).json()
    assert "errors" not in body, body
    return body["data"]


def pid_of(holder: str) -> int:
    """The pid in a lease holder id (`host:pid:random`, storage.leases.process_id)."""
    return int(holder.split(":")[1])


def projector_holder(db: Database[Doc], name: str = LEASE_NAME) -> str | None:
    lease = db.leases.find_one({"_id": name})
    return str(lease["holder"]) if lease is not None and lease["expires_at"] > utcnow() else None


def applied_votes(db: Database[Doc]) -> list[Any]:
    return [e["vote"] for b in db.rating_batches.find({}, {"entries.vote": 1}) for e in b["entries"]]


def wait_until(condition: Any, what: str, timeout: float, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {timeout:g}s\n{cluster.logs()}"
        time.sleep(0.2)


class Players:
    """Players voting as fast as they can in threads, each duel issued by one API and voted through the
    next (tickets must verify in every process). An API that stops answering is dropped, as a load
    balancer would; only votes answered `accepted` count as acknowledged."""

    def __init__(self, urls: list[str], prefix: str, count: int = 6) -> None:
        self.urls = urls
        self.dead: set[str] = set()
        self.prefix = prefix
        self.acknowledged: list[tuple[str, str]] = []  # (duel id, the API it was voted through)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._play, args=(n,), daemon=True) for n in range(count)]

    def start(self) -> Players:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def wait_for_more(self, votes: int, cluster: Cluster, timeout: float = 90) -> None:
        target = self.count() + votes
        wait_until(lambda: self.count() >= target, f"{votes} more votes acknowledged", timeout, cluster)

    def _live(self) -> list[str]:
        return [u for u in self.urls if u not in self.dead]

    def _play(self, n: int) -> None:
        generation, turn = 0, n
        while not self._stop.is_set() and self._live():
            live = self._live()
            issuer, voter = live[turn % len(live)], live[(turn + 1) % len(live)]
            turn += 1
            player = auth_header(f"{self.prefix}{n}-{generation}")
            duel = ((self._post(issuer, NEXT, {}, player) or {}).get("data") or {}).get("nextDuel")
            if duel is None:  # no answer, or this player has seen every pair: a new player takes over
                generation += 1
                time.sleep(0.05)
                continue
            body = self._post(voter, VOTE, {"id": duel["id"], "c": "LEFT"}, player) or {}
            if ((body.get("data") or {}).get("voteDuel") or {}).get("accepted"):
                with self._lock:
                    self.acknowledged.append((duel["id"], voter))

    def _post(self, url: str, query: str, variables: dict[str, Any], headers: dict[str, str]) -> Any:
        try:
            return httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers,
                              timeout=20).json()
        except (httpx.TimeoutException, ValueError):  # no answer in time, or not JSON: not acknowledged
            return None
        except httpx.TransportError:  # refused or cut off: the process is gone
            self.dead.add(url)
            return None


def wait_applied_once(db: Database[Doc], cluster: Cluster, duel_ids: list[str], timeout: float = 90) -> None:
    """Every acknowledged vote is applied exactly once and counted on both its photos, once the projector
    has caught up with the log (a vote logged by a killed API but never acknowledged may land too)."""
    wanted = {vote_nonce(cluster.data_dir, d) for d in duel_ids}

    def settled() -> bool:
        applied = applied_votes(db)
        logged = {v["_id"] for v in db.votes.find({"choice": {"$ne": "SKIP"}}, {"_id": 1})}
        counted = sum(d["rating"]["votes"] for d in db.photos.find({"rating": {"$exists": True}}))
        return wanted <= set(applied) and set(applied) == logged and counted == 2 * len(applied)

    wait_until(settled, "every logged vote applied and counted on its two photos", timeout, cluster)
    applied = applied_votes(db)
    assert len(applied) == len(set(applied)), "a vote was applied twice"


def test_an_upload_through_one_api_is_processed_by_the_worker_and_found_through_the_other(
    cluster: Cluster, db: Database[Doc],
) -> None:
    api1, api2 = cluster.apis
    alice = auth_header("alice")
    with httpx.Client(base_url=cluster.url(api1), timeout=60) as one, \
            httpx.Client(base_url=cluster.url(api2), timeout=60) as two:
        original = upload_ok(one, jpeg_bytes(skimage_photo("astronaut")), alice)
        assert wait_photo_ready(two, original["id"], alice)["status"] == "READY"
        copy = upload_ok(one, near_copy(skimage_photo("astronaut")), alice)
        done = wait_photo_ready(two, copy["id"], alice)
        assert done["status"] == "READY" and done["suggestions"]
        assert done["duplicateOf"] == {"id": original["id"]}  # found by a vector search in the shared Milvus

        for photo_id in (original["id"], copy["id"]):
            def done(photo_id: str = photo_id) -> bool:  # the job is closed just after the photo is READY
                job = db.jobs.find_one({"kind": "ingest", "payload.photo_id": photo_id})
                return job is not None and job["state"] == "done"

            wait_until(done, "the ingest job done", 30, cluster)
            job = db.jobs.find_one({"kind": "ingest", "payload.photo_id": photo_id})
            assert job is not None and job["state"] == "done"
            assert pid_of(job["lease_owner"]) == cluster.workers[0].pid, "ingested by the worker process"

        similar = gql(two, SIMILAR, {"id": copy["id"]})["similarPhotos"]
        assert similar[0]["photo"]["id"] == original["id"] and similar[0]["similarity"] > 0.95
        found = {p["id"] for p in gql(two, SEARCH, {"text": "an astronaut"})["searchPhotos"]}
        assert {original["id"], copy["id"]} <= found  # API 2 searches the vectors the worker wrote


def test_votes_through_both_apis_are_each_counted_once(
    cluster: Cluster, db: Database[Doc], duel_photos: list[str],
) -> None:
    urls = [cluster.url(api) for api in cluster.apis]
    players = Players(urls, "both").start()
    try:
        players.wait_for_more(30, cluster)
    finally:
        players.stop()
    through = {voter for _, voter in players.acknowledged}
    assert through == set(urls), "votes went through both APIs"
    wait_applied_once(db, cluster, [duel for duel, _ in players.acknowledged])

    holder = projector_holder(db)
    assert holder is not None and cluster.by_pid(pid_of(holder)) is not None, holder


def kill_the_projector_holder(cluster: Cluster, db: Database[Doc], players: Players) -> Child:
    """SIGKILL whichever process holds the projector's lease, in the middle of the players' burst, and
    wait for another to take it over; returns the killed process."""
    holder = projector_holder(db)
    assert holder is not None
    victim = cluster.by_pid(pid_of(holder))
    assert isinstance(victim, Child), f"the projector lease is held outside the cluster: {holder}"
    victim.kill()
    killed_at = time.monotonic()
    if victim in cluster.apis:
        players.dead.add(cluster.url(victim))

    def taken_over() -> bool:
        now = projector_holder(db)
        return now is not None and now != holder

    wait_until(taken_over, "the lease taken over", LEASE_SECONDS + 30, cluster)
    takeover = time.monotonic() - killed_at
    heir = cluster.by_pid(pid_of(projector_holder(db) or ""))
    assert heir is not None and heir is not victim and heir.alive()
    # The heir takes over once the lease expires: at most its length after the victim's last renewal
    # (plus the heir's poll and a loaded machine's slack).
    assert takeover < LEASE_SECONDS + 5, f"took {takeover:.1f}s for a {LEASE_SECONDS:g}s lease"
    return victim


def test_killing_the_projector_holder_hands_the_lease_over_and_loses_no_vote(
    cluster: Cluster, db: Database[Doc], duel_photos: list[str],
) -> None:
    """Twice, each victim restarted after: consecutive holders differ and there is one worker, so at
    least one victim is an API process whatever process wins the lease first."""
    players = Players([cluster.url(api) for api in cluster.apis], "kill").start()
    victims = []
    try:
        for _ in range(2):
            players.wait_for_more(15, cluster)
            victims.append(kill_the_projector_holder(cluster, db, players))
            players.wait_for_more(10, cluster)  # through the processes left, while the heir projects
            cluster.restart(victims[-1])  # back to full strength, and to the players
            players.dead.clear()
    finally:
        players.stop()

    assert any(victim in cluster.apis for victim in victims)
    wait_applied_once(db, cluster, [duel for duel, _ in players.acknowledged])
    assert all(child.alive() for child in cluster.children())


def _secantusd_pid(storage: Path) -> int:
    return int(json.loads((storage / "secantusd.pid").read_text())["pid"])


def _gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_the_database_command_stops_its_server_on_sigterm_and_when_killed(tmp_path: Path) -> None:
    storage = tmp_path / "mongodb"
    for how in ("SIGTERM", "SIGKILL"):
        port = free_port()
        child = Child(f"database-{how}", photoduel("database", "--port", str(port), "--path", str(storage)),
                      {k: v for k, v in os.environ.items()  # no service settings: the database needs none
                       if not k.startswith("PHOTODUEL_") and k != "FIREBASE_AUTH_EMULATOR_HOST"},
                      tmp_path / f"{how}.log").start()
        uri = f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"
        wait_for(functools.partial(mongo_answers, uri), "answering ping", child, 60)
        server = _secantusd_pid(storage)
        if how == "SIGTERM":
            assert child.stop() == 0, child.tail()
            assert "database.stopped" in child.log.read_text()
        else:
            child.kill()
        assert _gone(server), f"secantusd outlived `photoduel database` ({how})"


def test_wait_for_stores_returns_once_both_servers_answer_and_fails_at_its_timeout(cluster: Cluster) -> None:
    ready = subprocess.run(photoduel("wait-for-stores", "--timeout", "30"), env=cluster.env,
                           capture_output=True, timeout=60)
    assert ready.returncode == 0, ready.stderr.decode()
    nowhere = {**cluster.env, "PHOTODUEL_MILVUS_URI": f"http://127.0.0.1:{free_port()}"}
    missing = subprocess.run(photoduel("wait-for-stores", "--timeout", "1"), env=nowhere,
                             capture_output=True, timeout=60)
    assert missing.returncode == 1 and "milvus" in missing.stderr.decode()


ADDED = "subscription { notificationAdded { id kind photoId } }"
READY = "subscription($id: ID!) { tagSuggestionsReady(photoId: $id) { id status suggestions { tag } } }"


def upload_through(cluster: Cluster, api: Child, owner: str, seed: int) -> str:
    with httpx.Client(base_url=cluster.url(api), timeout=60) as http:
        return str(upload_ok(http, jpeg_bytes(generated_photo(seed)), auth_header(owner))["id"])


async def next_added(ws: Ws, photo_id: str, timeout: float = 90) -> dict[str, Any]:
    message = await ws.next("added", timeout=timeout)
    assert message["type"] == "next" and "errors" not in message["payload"], message
    added = message["payload"]["data"]["notificationAdded"]
    assert added["photoId"] == photo_id and added["kind"] == "TAG_SUGGESTIONS", added
    return dict(added)


async def test_events_the_worker_records_reach_a_websocket_held_by_the_other_api(cluster: Cluster) -> None:
    """Upload through API 1, the worker ingests, the owner's websocket on API 2 hears both subscriptions."""
    api1, api2 = cluster.apis
    async with connect(cluster.url(api2), "wendy") as ws:
        await ws.subscribe("added", ADDED)
        photo_id = await asyncio.to_thread(upload_through, cluster, api1, "wendy", 900)
        await ws.subscribe("ready", READY, id=photo_id)
        ready = await ws.next("ready", timeout=90)
        assert ready["type"] == "next", ready
        photo = ready["payload"]["data"]["tagSuggestionsReady"]
        assert photo["id"] == photo_id and photo["status"] == "READY" and photo["suggestions"]
        assert (await ws.next("ready"))["type"] == "complete"
        added = await next_added(ws, photo_id)
        with pytest.raises(TimeoutError):  # one record, one event: nothing repeats it
            await ws.next("added", timeout=1.5)
    assert added["id"]


async def wait_closed(ws: Ws, timeout: float = 30) -> None:
    """Read until the server's end of the websocket is gone."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            await ws.session.receive_json(timeout=1)
        except TimeoutError:
            continue
        except Exception:  # httpx-ws raises its own disconnect and network errors
            return
    raise AssertionError("the websocket stayed open after its server was killed")


async def test_a_client_whose_api_process_is_killed_reconnects_to_the_other_and_gets_the_next_event(
    cluster: Cluster,
) -> None:
    api1, api2 = cluster.apis
    try:
        async with connect(cluster.url(api2), "karl") as ws:
            await ws.subscribe("added", ADDED)
            first = await asyncio.to_thread(upload_through, cluster, api1, "karl", 910)
            await next_added(ws, first)  # subscribed and live on API 2
            await asyncio.to_thread(api2.kill)
            await wait_closed(ws)
        async with connect(cluster.url(api1), "karl") as ws:  # what a client's retry does: the other API
            await ws.subscribe("added", ADDED)
            second = await asyncio.to_thread(upload_through, cluster, api1, "karl", 911)
            await next_added(ws, second)
    finally:
        await asyncio.to_thread(cluster.restart, api2)


def test_one_worker_runs_the_chores_and_another_takes_over_when_it_is_killed(
    cluster: Cluster, db: Database[Doc],
) -> None:
    spare = cluster.add_worker("worker2")
    cluster.wait_ready(spare)
    holder = projector_holder(db, MAINTENANCE_LEASE)
    assert holder is not None
    victim = cluster.by_pid(pid_of(holder))
    assert victim in cluster.workers, f"the chores run in a worker, not {holder}"
    heir = next(w for w in cluster.workers if w is not victim and w.alive())
    time.sleep(LEASE_SECONDS)  # several ticks of both candidates: the lease stays where it is
    assert projector_holder(db, MAINTENANCE_LEASE) == holder
    assert "singleton.took_over" not in heir.output()

    victim.kill()
    killed_at = time.monotonic()
    wait_until(lambda: projector_holder(db, MAINTENANCE_LEASE) not in (None, holder), "the chores taken over",
               LEASE_SECONDS + 30, cluster)
    takeover = time.monotonic() - killed_at
    assert cluster.by_pid(pid_of(projector_holder(db, MAINTENANCE_LEASE) or "")) is heir
    assert takeover < LEASE_SECONDS + 5, f"took {takeover:.1f}s for a {LEASE_SECONDS:g}s lease"
    wait_for(lambda: "singleton.took_over" in heir.output(), "running the chores", heir, 10)
