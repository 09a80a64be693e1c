"""Requests under stress: many first requests of one new user at once, a stalled database, a killed one.

Real servers only: the app under uvicorn, SecantusDB as its own process (stopped with SIGSTOP, killed with
SIGKILL), clients over HTTP with httpx. The database tests run their own server and app, with a short
client deadline (`timeoutMS` in the URI, which `storage.mongo.create_client` lets win over its default).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId

from api.errors import UNAVAILABLE_MESSAGE
from gaming.duels.records import initial_rating_fields
from gaming.ratings import RatingEnv
from photoduel.settings import Settings
from storage.embedded_mongo import EmbeddedMongo
from tests.servers import LiveServer
from tests.tokens import auth_header
from tests.uploads import UPLOAD, generated_photo, jpeg_bytes
from tests.votes import applied_count, settled, vote_id

ME = "{ me { id email } }"
PHOTOS = "{ photos(first: 5) { edges { cursor } } }"
DEADLINE_SECONDS = 2.0
# What a request may take past the deadline: the app's own work, a loaded 2-core machine.
MARGIN_SECONDS = 4.0
UNAVAILABLE_BODY = {"data": None, "errors": [{"message": UNAVAILABLE_MESSAGE, "extensions": {"code": "UNAVAILABLE"}}]}


async def _post(client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/graphql", json={"query": query}, headers=headers or {})


async def _timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


# --- many first requests of one new user --------------------------------------------------------------

@pytest.mark.parametrize("n", [8, 32])
async def test_concurrent_first_requests_of_a_new_user_all_succeed(server: LiveServer, n: int) -> None:
    # Several new users, one after the other: the race between their first requests is not lost every time.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for _ in range(5):
            uid = f"new-{uuid.uuid4().hex[:10]}"
            headers = auth_header(uid)
            responses = await asyncio.gather(*[_post(client, ME, headers) for _ in range(n)])
            bodies: list[Any] = [r.json() if r.headers.get("content-type") == "application/json" else r.text
                                 for r in responses]
            assert [r.status_code for r in responses] == [200] * n, bodies
            assert all(b == {"data": {"me": {"id": uid, "email": f"{uid}@example.com"}}} for b in bodies), bodies
            assert server.run(server.services.users.collection.count_documents({"_id": uid})) == 1


def test_an_unexpected_error_outside_graphql_is_a_masked_json_500(server: LiveServer) -> None:
    """A photo document the image route cannot read (no status): a KeyError in the route, answered by the
    error middleware as a masked GraphQL-shaped error rather than a plain-text 500."""
    photo_id = ObjectId()
    server.run(server.services.db["photos"].insert_one({"_id": photo_id, "owner": "nobody"}))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get(f"/images/{photo_id}/display")
    assert response.status_code == 500
    assert response.json() == {"data": None, "errors": [{"message": "Unexpected error.", "extensions": {
        "code": "INTERNAL_SERVER_ERROR", "requestId": response.headers["x-request-id"]}}]}


# --- a database of our own, to stop and kill --------------------------------------------------------

def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _is_server(pid: int) -> bool:
    """The server itself: `secantusd-py` as the program (or the script its interpreter runs), not a guard
    process that has it among its arguments."""
    return any(Path(arg).name.startswith("secantusd") for arg in _cmdline(pid)[:2])


def server_pid(mongo: EmbeddedMongo) -> int:
    """The pid of the database process itself, below whatever EmbeddedMongo started (it may be a guard)."""
    named = getattr(mongo, "server_pid", None)
    if isinstance(named, int) and _is_server(named):
        return named
    root = getattr(mongo, "_guard", None) or getattr(mongo, "_process", None)
    assert root is not None, "EmbeddedMongo is not running"
    queue = [root.pid]
    while queue:
        pid = queue.pop(0)
        if _is_server(pid):
            return pid
        queue.extend(_children(pid))
    raise AssertionError(f"no secantusd process under pid {root.pid}")


def with_deadline(uri: str, seconds: float) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}timeoutMS={round(seconds * 1000)}"


class Database:
    """An EmbeddedMongo of the test's own, which a test may restart on the same storage and port."""

    def __init__(self, path: Path) -> None:
        self.mongo = EmbeddedMongo(path)
        self.mongo.start()

    @property
    def uri(self) -> str:
        return self.mongo.uri

    def pid(self) -> int:
        return server_pid(self.mongo)

    def restart(self) -> None:
        self.mongo.stop()
        self.mongo = EmbeddedMongo(self.mongo.storage_path, port=self.mongo.port)
        self.mongo.start()


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "mongodb")
    try:
        yield database
    finally:
        database.mongo.stop()


@pytest.fixture
def own_server(own_database: Database, make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    settings = make_settings(mongodb_uri=with_deadline(own_database.uri, DEADLINE_SECONDS))
    with LiveServer(settings, run_worker=False) as live:
        yield live


def _assert_unavailable_field(response: httpx.Response, elapsed: float, field: str) -> None:
    body = response.json()
    assert response.status_code == 200, body  # a field error: the GraphQL response itself is fine
    assert body["errors"][0]["extensions"] == {"code": "UNAVAILABLE"}, body
    assert body["errors"][0]["message"] == UNAVAILABLE_MESSAGE
    assert body["errors"][0]["path"] == [field]
    assert response.headers["retry-after"].isdigit()
    assert elapsed < DEADLINE_SECONDS + MARGIN_SECONDS, elapsed


async def test_a_stalled_database_answers_unavailable_within_the_deadline(
    own_database: Database, own_server: LiveServer
) -> None:
    known = auth_header("stall-known")
    async with httpx.AsyncClient(base_url=own_server.url, timeout=60) as client:
        assert (await _post(client, ME, known)).json()["data"]["me"]["id"] == "stall-known"
        pid = own_database.pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            (me, me_s), (photos, photos_s), (new, new_s), (image, image_s) = await asyncio.gather(
                _timed(_post(client, ME, known)),
                _timed(_post(client, PHOTOS)),
                _timed(_post(client, ME, auth_header("stall-new"))),  # the middleware records a new user
                _timed(client.get(f"/images/{ObjectId()}/display")),
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        _assert_unavailable_field(me, me_s, "me")
        assert me.json()["data"] == {"me": None}
        _assert_unavailable_field(photos, photos_s, "photos")
        assert photos.json()["data"] is None  # photos is non-null: the error reaches the root
        assert (new.status_code, new.json()) == (503, UNAVAILABLE_BODY)
        assert new.headers["retry-after"].isdigit() and new_s < DEADLINE_SECONDS + MARGIN_SECONDS, new_s
        assert image.status_code == 503 and image.headers["retry-after"].isdigit(), image.text
        assert image_s < DEADLINE_SECONDS + MARGIN_SECONDS, image_s

        # Back: the same requests succeed, the new user is recorded.
        assert (await _post(client, ME, known)).json() == {
            "data": {"me": {"id": "stall-known", "email": "stall-known@example.com"}}}
        assert (await _post(client, PHOTOS)).json() == {"data": {"photos": {"edges": []}}}
        new_again = await _post(client, ME, auth_header("stall-new"))
        assert new_again.status_code == 200 and new_again.json()["data"]["me"]["id"] == "stall-new"
        assert (await client.get(f"/images/{ObjectId()}/display")).status_code == 404


# --- the database killed in the middle of a burst ----------------------------------------------------

async def _upload(client: httpx.AsyncClient, data: bytes, headers: dict[str, str]) -> httpx.Response:
    operations = {"query": UPLOAD, "variables": {"file": None, "title": None}}
    form = {"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})}
    return await client.post("/graphql", data=form, files={"0": ("photo.jpg", data, "image/jpeg")},
                             headers={**headers, "Apollo-Require-Preflight": "true"})


def _outcome(response: httpx.Response, field: str) -> str:
    """'ok', 'unavailable', or an AssertionError: nothing else is an acceptable answer."""
    body = response.json()
    if response.status_code == 503:
        assert body == UNAVAILABLE_BODY, body
        return "unavailable"
    assert response.status_code == 200, (response.status_code, body)
    if "errors" not in body:
        assert body["data"][field] is not None or field == "me", body
        return "ok"
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAVAILABLE"], body
    return "unavailable"


async def test_requests_answer_when_the_database_is_killed_mid_burst(
    own_database: Database, own_server: LiveServer
) -> None:
    clients, kill_after, burst_after_kill = 16, 1.5, 2 * DEADLINE_SECONDS + 2
    acknowledged: dict[str, str] = {}  # photo id -> owner
    outcomes: list[tuple[str, str, float]] = []
    upload_acknowledged = asyncio.Event()
    stop_at = time.monotonic() + kill_after + burst_after_kill

    async def player(i: int, client: httpx.AsyncClient) -> None:
        uid = f"burst-{i}"
        headers = auth_header(uid)
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            kind = ("me", "photos", "upload")[n % 3]
            started = time.monotonic()
            if kind == "upload":
                response = await _upload(client, jpeg_bytes(generated_photo(i * 1000 + n, (96, 72))), headers)
            else:
                response = await _post(client, ME if kind == "me" else PHOTOS, headers)
            elapsed = time.monotonic() - started
            field = "uploadPhoto" if kind == "upload" else kind
            outcome = _outcome(response, field)
            outcomes.append((kind, outcome, elapsed))
            if kind == "upload" and outcome == "ok":
                acknowledged[response.json()["data"]["uploadPhoto"]["id"]] = uid
                upload_acknowledged.set()

    async def killer() -> None:
        # Right after an upload is acknowledged: its writes are the newest the server has, the ones a
        # crash loses unless they were made durable before the acknowledgement.
        await asyncio.sleep(kill_after)
        upload_acknowledged.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(upload_acknowledged.wait(), 5.0)
        os.kill(own_database.pid(), signal.SIGKILL)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=own_server.url, timeout=60, limits=limits) as client:
        await asyncio.gather(killer(), *[player(i, client) for i in range(clients)])

    kinds = {(kind, outcome) for kind, outcome, _ in outcomes}
    assert {("upload", "ok"), ("me", "ok"), ("photos", "ok")} <= kinds, kinds  # the burst ran before the kill
    assert {outcome for _, outcome, _ in outcomes} == {"ok", "unavailable"}
    slowest = max(elapsed for _, _, elapsed in outcomes)
    assert slowest < 2 * DEADLINE_SECONDS + MARGIN_SECONDS, slowest

    # The same storage and port: the app's client finds the database again, with every acknowledged upload.
    own_database.restart()
    services = own_server.services
    for photo_id, owner in acknowledged.items():
        doc = own_server.run(services.photos.get(ObjectId(photo_id)))
        assert doc is not None and doc["owner"] == owner, photo_id
        for variant, blob_id in doc["blobs"].items():
            assert own_server.run(services.blobs.get(blob_id)), (photo_id, variant)
        assert own_server.run(services.db["jobs"].find_one({"key": f"ingest:{photo_id}"})) is not None, photo_id
    async with httpx.AsyncClient(base_url=own_server.url, timeout=60) as client:
        response = await _post(client, ME, auth_header("burst-0"))
        assert response.json()["data"]["me"]["id"] == "burst-0"


# --- votes while the database is killed --------------------------------------------------------------

DUEL_NEXT = "query { nextDuel { id } }"
DUEL_VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"


def _seed(server: LiveServer, count: int = 12) -> None:
    """READY photos as ingest leaves them (this server runs no worker and no model)."""
    now = datetime.now(UTC)
    docs = [{"_id": ObjectId(), "owner": f"owner{i % 4}", "status": "READY", "category": "test", "sha256": f"s{i}",
             "created_at": now, "ready_at": now, "neighbours": [], "quality": {"score": 0.2 + 0.05 * i},
             "rating": initial_rating_fields(0.2 + 0.05 * i, RatingEnv())} for i in range(count)]
    server.run(server.services.photos.collection.insert_many(docs))


async def test_votes_answer_when_the_database_is_killed_and_none_acknowledged_is_lost(
    own_database: Database, own_server: LiveServer
) -> None:
    _seed(own_server)
    players, kill_after, burst_after_kill = 12, 2.0, 2 * DEADLINE_SECONDS + 2
    acknowledged: list[str] = []
    outcomes: list[tuple[str, str, float]] = []
    vote_acknowledged = asyncio.Event()
    stop_at = time.monotonic() + kill_after + burst_after_kill

    async def player(i: int, client: httpx.AsyncClient) -> None:
        headers = auth_header(f"voter-{i}")
        while time.monotonic() < stop_at:
            started = time.monotonic()
            response = await client.post("/graphql", json={"query": DUEL_NEXT}, headers=headers)
            no_pair = response.status_code == 200 and response.json() == {"data": {"nextDuel": None}}
            outcomes.append(("nextDuel", "ok" if no_pair else _outcome(response, "nextDuel"), time.monotonic() - started))
            duel: dict[str, Any] | None = (response.json().get("data") or {}).get("nextDuel")
            if duel is None:
                await asyncio.sleep(0.1)
                continue
            for _ in range(3):  # a client retries the same vote after UNAVAILABLE; it counts once
                started = time.monotonic()
                response = await client.post("/graphql", json={"query": DUEL_VOTE, "variables": {
                    "id": duel["id"], "c": "LEFT"}}, headers=headers)
                outcome = _outcome(response, "voteDuel")
                outcomes.append(("voteDuel", outcome, time.monotonic() - started))
                if outcome == "ok":
                    acknowledged.append(duel["id"])
                    vote_acknowledged.set()
                    break
                if time.monotonic() >= stop_at:
                    break

    async def killer() -> None:
        # Right after a vote is acknowledged: the newest write the server has.
        await asyncio.sleep(kill_after)
        vote_acknowledged.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(vote_acknowledged.wait(), 5.0)
        os.kill(own_database.pid(), signal.SIGKILL)

    async with httpx.AsyncClient(base_url=own_server.url, timeout=60,
                                 limits=httpx.Limits(max_connections=players)) as client:
        await asyncio.gather(killer(), *[player(i, client) for i in range(players)])

    assert {("voteDuel", "ok"), ("nextDuel", "ok")} <= {(k, o) for k, o, _ in outcomes}
    assert ("voteDuel", "unavailable") in {(k, o) for k, o, _ in outcomes} or \
        ("nextDuel", "unavailable") in {(k, o) for k, o, _ in outcomes}, "the kill was seen"
    slowest = max(elapsed for _, _, elapsed in outcomes)
    # a vote may wait for its result a little beyond the database deadline
    assert slowest < 2 * DEADLINE_SECONDS + MARGIN_SECONDS + 1, slowest

    own_database.restart()  # the same storage and port: the service finds it again
    ids = [vote_id(own_server, d) for d in acknowledged]
    logged = own_server.run(own_server.services.db.votes.count_documents({"_id": {"$in": ids}}))
    assert logged == len(set(ids)), "an acknowledged vote was lost with the database"
    deadline = time.monotonic() + 60
    while own_server.run(applied_count(own_server.services.db, ids)) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    own_server.run(settled(own_server), timeout=60)
    assert own_server.run(applied_count(own_server.services.db, ids)) == len(ids), "applied exactly once each"
    replayed = own_server.run(own_server.services.projector.replay())
    assert own_server.run(own_server.services.photos.stored_ratings()) == replayed
