"""Erasing an account over real HTTP: who may, what the account reads as at once, and what is left after
the job: nothing of it.

The full case runs across three service processes in turn, as a deployment would: the account's life
(photos, votes, a device that receives pushes) under a service with its worker; the erasure asked for
while one of its photos is in an ingest batch, under a service without a worker (the batch is driven by
hand, the request lands while the batch is in the model); then a service whose worker finds the queued
job, runs it, waits until every process would refuse the account, sweeps again and finishes, while
players draw duels and read lists (never shown its photos) and the account keeps knocking (403 each
time). Afterwards no document of any collection holds the uid (its reports, blocks both ways and the
moderation decision on its photo included), the account's votes carry one random id, every other photo's
rating is unchanged and equal to a replay, and no push went to its phone after the request.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from photoduel.features import ingest_handler
from photoduel.settings import Settings
from photos.account_erasure import erasure_job_key
from storage.job_kinds import INGEST
from storage.jobs import QUEUED
from tests.fcm_server import LoopbackFcm, push_settings
from tests.servers import LiveServer, error_code, wait_job
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_ok, wait_ready
from tests.votes import settled, vote_id

SUBJECT = "erasure-subject-4f1c"
PHONE = "erasure-subject-phone-token"
ERASE = "mutation($u: ID) { deleteAccount(userId: $u) { userId requestedAt } }"
ME = "{ me { id displayName createdAt photos { nodes { id } } } }"
VOTE = "mutation($id: ID!) { voteDuel(duelId: $id, choice: RIGHT) { accepted } }"
REGISTER = "mutation($t: String!) { registerDevice(token: $t, platform: ANDROID) { token } }"
NAME = "mutation { setDisplayName(name: \"Subject Four\") { displayName } }"
NEXT = "{ nextDuel { id left { id } right { id } } }"
LIST = "{ photos(first: 100) { nodes { id } } }"
REPORT = "mutation($id: ID!) { reportPhoto(id: $id, reason: NUDITY) }"
BLOCK = "mutation($id: ID!) { blockUser(id: $id) }"
MODERATE = "mutation($id: ID!) { moderatePhoto(id: $id, decision: REJECT, note: \"not allowed\") { status } }"
ADMIN = auth_header("root", admin=True)


def post(client: httpx.Client, query: str, headers: dict[str, str] | None = None, **variables: Any) -> httpx.Response:
    return client.post("/graphql", json={"query": query, "variables": variables}, headers=headers or {})


def gql(client: httpx.Client, query: str, headers: dict[str, str] | None = None, **variables: Any) -> dict[str, Any]:
    response = post(client, query, headers, **variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(client: httpx.Client, uid: str) -> bool:
    """Every request of an account being erased: 403, FORBIDDEN."""
    response = post(client, ME, auth_header(uid))
    if response.status_code != 403:
        return False
    assert error_code(response.json()) == "FORBIDDEN"
    return True


@pytest.fixture(scope="module")
def settings(fcm: LoopbackFcm, make_settings: Callable[..., Settings],
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Push on (the loopback FCM), small lists, and an erasure that sweeps again after 6 s, not 6 min (the
    third service starts within that, so players play while the job sweeps, waits and sweeps again)."""
    return make_settings(**push_settings(fcm, tmp_path_factory), neighbours_k=4, worker_batch_size=4,
                         user_recheck_seconds=0.5, account_erasure_sweep_seconds=6.0)


def test_who_may_erase_an_account(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(user_recheck_seconds=0.5, account_erasure_sweep_seconds=1.0)
    with LiveServer(settings) as api, httpx.Client(base_url=api.url, timeout=60) as client:
        for uid in ("mia", "noa"):
            assert gql(client, ME, auth_header(uid))["data"]["me"]["id"] == uid
        first_seen = datetime.fromisoformat(gql(client, ME, auth_header("mia"))["data"]["me"]["createdAt"])

        assert error_code(gql(client, ERASE, auth_header("noa"), u="mia")) == "FORBIDDEN"
        assert error_code(gql(client, ERASE, ADMIN, u="nobody-ever-seen")) == "NOT_FOUND"
        assert error_code(gql(client, ERASE)) == "UNAUTHENTICATED"
        assert not refused(client, "mia")

        by_admin = gql(client, ERASE, ADMIN, u="mia")["data"]["deleteAccount"]
        assert by_admin["userId"] == "mia"
        assert refused(client, "mia")  # at once, in the process that took it
        assert gql(client, ERASE, ADMIN, u="mia")["data"]["deleteAccount"] == by_admin  # the same while under way
        own = gql(client, ERASE, auth_header("noa"))["data"]["deleteAccount"]
        assert own["userId"] == "noa"
        assert refused(client, "noa")

        for uid in ("mia", "noa"):
            wait_job(api, erasure_job_key(uid))
            assert api.run(api.services.users.get(uid)) is None
        assert error_code(gql(client, ERASE, ADMIN, u="mia")) == "NOT_FOUND"  # nothing of it is left
        time.sleep(0.6)  # this process's memory of the refusal lapses with the user recheck interval
        fresh = gql(client, ME, auth_header("mia"))["data"]["me"]  # a sign-in starts a new, empty account
        assert fresh["displayName"] is None and fresh["photos"]["nodes"] == []
        assert datetime.fromisoformat(fresh["createdAt"]) > first_seen


def holding(value: Any, needle: str, path: str = "") -> list[str]:
    """Where in a document a string holds `needle` (keys included)."""
    if isinstance(value, str):
        return [path] if needle in value else []
    if isinstance(value, dict):
        return [f"{path}.{key}" for key in value if needle in str(key)] + [
            found for key, item in value.items() for found in holding(item, needle, f"{path}.{key}")]
    if isinstance(value, list | tuple):
        return [found for i, item in enumerate(value) for found in holding(item, needle, f"{path}[{i}]")]
    return []


async def documents_holding(db: Any, needle: str) -> dict[str, list[str]]:
    """Every document of the database that holds the string, but the erasure job's own record (the job
    is the erasure's audit trail) and the image bytes (their files' metadata is checked)."""
    found: dict[str, list[str]] = {}
    for name in await db.list_collection_names():
        if name == "images.chunks":
            continue
        async for doc in db[name].find({}):
            if name == "jobs" and doc.get("key") == erasure_job_key(needle):
                continue
            where = holding(doc, needle)
            if where:
                found[f"{name}/{doc['_id']}"] = where
    return found


def live_phase(settings: Settings, fcm: LoopbackFcm) -> dict[str, Any]:
    """The account's life: photos, a display name, a device with pushes, votes both ways."""
    subject = auth_header(SUBJECT)
    with LiveServer(settings) as api, api.client() as client:
        services = api.services
        assert gql(client, REGISTER, subject, t=PHONE)["data"]["registerDevice"]["token"] == PHONE
        assert gql(client, NAME, subject)["data"]["setDisplayName"]["displayName"] == "Subject Four"
        mine = [upload_ok(client, jpeg_bytes(generated_photo(1200 + i)), subject)["id"] for i in range(3)]
        theirs = {upload_ok(client, jpeg_bytes(generated_photo(1300 + i)), auth_header(owner))["id"]: owner
                  for i, owner in enumerate(["ann", "ben", "ann", "ben", "cat"])}
        for photo_id in mine:
            wait_ready(client, photo_id, subject)
        for photo_id, owner in theirs.items():
            wait_ready(client, photo_id, auth_header(owner))

        def doc(photo_id: str) -> dict[str, Any]:
            found: dict[str, Any] = api.run(services.photos.get(ObjectId(photo_id)))
            return found

        others = list(theirs)
        ballots = [(SUBJECT, others[0], others[1]), (SUBJECT, others[2], others[3]), (SUBJECT, others[4], others[0]),
                   ("dan", mine[0], others[1]), ("dan", others[2], mine[1]), ("eli", mine[2], others[3]),
                   ("eli", others[0], others[4])]
        own_votes = []
        for player, left, right in ballots:
            ticket = services.duels.issue(player, doc(left), doc(right))
            assert gql(client, VOTE, auth_header(player), id=ticket.id)["data"]["voteDuel"]["accepted"] is True
            if player == SUBJECT:
                own_votes.append(vote_id(api, ticket.id))
        skipped = services.duels.issue(SUBJECT, doc(others[1]), doc(others[3]))
        own_votes.append(vote_id(api, skipped.id))
        assert gql(client, "mutation($id: ID!) { skipDuel(duelId: $id) }", subject, id=skipped.id)["data"]["skipDuel"]
        # what other areas keep about the account: a report it filed, its blocks both ways, a moderation decision
        # on one of its photos (recorded with its uid as the owner, and a notification to it)
        assert gql(client, REPORT, subject, id=others[0])["data"]["reportPhoto"] is True
        assert gql(client, BLOCK, subject, id="ann")["data"]["blockUser"] is True
        assert gql(client, BLOCK, auth_header("ben"), id=SUBJECT)["data"]["blockUser"] is True
        assert gql(client, MODERATE, ADMIN, id=mine[2])["data"]["moderatePhoto"]["status"] == "HIDDEN"
        assert api.run(services.db.moderation_decisions.count_documents({"owner": SUBJECT})) == 1
        api.run(settled(api))
        deadline = time.monotonic() + 30
        while len(fcm.fcm_requests(PHONE)) < len(mine):  # each photo's suggestions were pushed to the phone
            assert time.monotonic() < deadline, "the suggestions were not pushed"
            time.sleep(0.1)
        # and every other notification of the account (the moderation decision's) is settled, so a late push
        # cannot be mistaken for one made after the erasure
        while api.run(services.db.outbox.count_documents({"user": SUBJECT, "push.state": "pending"})):
            assert time.monotonic() < deadline, "the account's notifications were not all pushed"
            time.sleep(0.1)
        assert api.run(services.db.rate_limits.count_documents({"_id": {"$regex": SUBJECT}})) > 0
        return {"mine": mine, "theirs": others, "ratings": api.run(services.photos.stored_ratings()),
                "votes": own_votes,
                "pushes": len(fcm.fcm_requests(PHONE))}


def erase_mid_ingest(settings: Settings) -> str:
    """The erasure asked for while the account's newest photo is in an ingest batch; returns that photo."""
    subject = auth_header(SUBJECT)
    with LiveServer(settings, run_worker=False) as api, api.client() as client:
        services = api.services
        latest = upload_ok(client, jpeg_bytes(generated_photo(1250)), subject)["id"]
        jobs = api.run(services.jobs.lease("hand", [INGEST], limit=4, lease_seconds=60))
        assert [job.payload["photo_id"] for job in jobs] == [latest]
        answers: list[httpx.Response] = []

        async def request_the_erasure() -> None:
            async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
                answers.append(await http.post("/graphql", json={"query": ERASE, "variables": {}}, headers=subject))

        handler = ingest_handler(services)
        handler.before_batch.append(request_the_erasure)
        api.run(handler.handle(jobs))
        api.run(services.jobs.complete_many([(job, {}) for job in jobs], "hand"))
        assert answers[0].status_code == 200 and answers[0].json()["data"]["deleteAccount"]["userId"] == SUBJECT
        photo = api.run(services.photos.get(ObjectId(latest)))
        assert photo["status"] == "DELETED"  # the batch's READY write found it deleted: not resurrected
        assert refused(client, SUBJECT)
        assert gql(client, "query($id: ID!) { photo(id: $id) { id } }", id=latest)["data"]["photo"] is None
        # its phone left with the request, before any job ran: nothing queued for it is pushed there
        assert api.run(services.db.devices.count_documents({"user": SUBJECT})) == 0
        job = api.run(services.db.jobs.find_one({"key": erasure_job_key(SUBJECT)}))
        assert job["state"] == QUEUED  # no worker here: it waits for the next service
        return latest


async def play_while_erasing(api: LiveServer, knock_until: datetime) -> tuple[set[str], list[tuple[int, str]]]:
    """While the erasure job runs (it sweeps, waits, sweeps again): players draw duels and read lists, and
    until `knock_until` (before the last sweep, after which a sign-in starts a new account) the erased
    account keeps asking for its profile and registering its phone. Returns the photo ids the players were
    shown and the account's answers (status, code)."""
    shown: set[str] = set()
    answers: list[tuple[int, str]] = []
    done = asyncio.Event()

    async def finished() -> None:
        await asyncio.to_thread(wait_job, api, erasure_job_key(SUBJECT))
        done.set()

    async def player(name: str) -> None:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            for round in itertools.count():  # one round at least, however soon the job is done
                # a duel drawn and not answered holds one of the player's open tickets (a limit): a new player
                # every few draws
                headers = auth_header(f"{name}-{round // 10}")
                for query in (NEXT, LIST):
                    response = await http.post("/graphql", json={"query": query}, headers=headers)
                    assert response.status_code == 200 and "errors" not in response.json(), response.text
                    shown.update(holding_ids(response.json()["data"]))
                if done.is_set():
                    return
                await asyncio.sleep(0.05)

    async def subject() -> None:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            while datetime.now(UTC) < knock_until:
                for query, variables in ((ME, {}), (REGISTER, {"t": PHONE})):
                    response = await http.post("/graphql", json={"query": query, "variables": variables},
                                               headers=auth_header(SUBJECT))
                    errors = response.json().get("errors") or [{"extensions": {"code": "none"}}]
                    answers.append((response.status_code, errors[0]["extensions"]["code"]))
                await asyncio.sleep(0.1)

    await asyncio.gather(finished(), subject(), *(player(f"onlooker-{n}") for n in range(4)))
    return shown, answers


def holding_ids(data: Any) -> list[str]:
    """Every `id` in an answer."""
    if isinstance(data, dict):
        return [str(v) for k, v in data.items() if k == "id"] + [i for v in data.values() for i in holding_ids(v)]
    if isinstance(data, list):
        return [i for v in data for i in holding_ids(v)]
    return []


def test_an_account_erased_mid_ingest_leaves_nothing_and_moves_no_other_rating(
    settings: Settings, fcm: LoopbackFcm,
) -> None:
    before = live_phase(settings, fcm)
    latest = erase_mid_ingest(settings)

    with LiveServer(settings) as api, api.client() as client:
        services = api.services
        mark = api.run(services.users.erasure_of(SUBJECT))  # None only on a machine so slow the job is done
        last_sweep = mark["erasure"]["at"] + timedelta(seconds=settings.account_erasure_sweep_seconds) if mark \
            else datetime.now(UTC)
        shown, answers = asyncio.run(play_while_erasing(api, knock_until=last_sweep - timedelta(seconds=1)))
        assert set(answers) <= {(403, "FORBIDDEN")}, set(answers)  # every request of it, all along
        assert shown and not shown & {*before["mine"], latest}  # its photos in no duel or list meanwhile
        job = wait_job(api, erasure_job_key(SUBJECT))
        assert api.run(documents_holding(services.db, SUBJECT)) == {}
        # its votes and skip carry one random id, and nothing left ties that id to the uid (the job's record,
        # the erasure's trail, names the uid but not the id)
        voters = {v["player"] for v in api.run(services.db.votes.find({"_id": {"$in": before["votes"]}}).to_list(None))}
        assert len(voters) == 1 and voters != {SUBJECT}
        anonymous = voters.pop()
        assert holding(job, anonymous) == [] and api.run(services.db.users.find_one({"_id": anonymous})) is None

        tombstones = api.run(services.db.photos.find({"owner": anonymous}).to_list(None))
        assert sorted(str(t["_id"]) for t in tombstones) == sorted([*before["mine"], latest])
        for tombstone in tombstones:  # no blob, vector, face descriptor, title, tag or list left on them
            assert tombstone["status"] == "DELETED" and "finished_at" in tombstone["deletion"]
            assert set(tombstone) <= {"_id", "owner", "status", "deletion", "sha256", "created_at", "updated_at",
                                      "ready_at", "rating", "rating_seq", "quality"}, sorted(tombstone)
        collection = api.run(services.photos.get(ObjectId(before["theirs"][0])))["vector_collection"]
        assert api.run(services.vectors.get_vectors(collection, [*before["mine"], latest])) == {}
        assert api.run(services.db.photos.count_documents(
            {"neighbours.id": {"$in": [ObjectId(i) for i in [*before["mine"], latest]]}})) == 0
        assert api.run(services.db.votes.count_documents({"player": anonymous})) == len(before["votes"]) == 4

        stored = api.run(services.photos.stored_ratings())
        assert stored == before["ratings"]  # no rating moved, the erased account's photos' included
        replayed = api.run(services.projector.replay())
        assert {pid: replayed[pid] for pid in stored} == stored
        assert len(fcm.fcm_requests(PHONE)) == before["pushes"]  # nothing was pushed to its phone since
        decision = api.run(services.db.moderation_decisions.find_one({"photo": ObjectId(before["mine"][2])}))
        assert decision["owner"] == anonymous and decision["by"] == "root"  # the history stays, the uid goes
        assert api.run(services.db.blocks.find_one({"_id": "ben"}))["blocked"] == []

        time.sleep(settings.user_recheck_seconds + 0.1)  # this process's memory of the refusal lapses
        fresh = gql(client, ME, auth_header(SUBJECT))["data"]["me"]  # a new sign-in: a new, empty account
        assert fresh["displayName"] is None and fresh["photos"]["nodes"] == []
