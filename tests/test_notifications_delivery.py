"""Push delivery from the outbox: the real dispatcher, the real MongoDB-wire server, real firebase-admin.

The loopback FCM server (tests/fcm_server.py) is the only stand-in, at the network edge: firebase-admin
is pointed at it through the sender's FCM base URL (PHOTODUEL_FCM_URL) and the service account's
`token_uri`, exactly as an operator would configure an egress proxy.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from structlog.testing import capture_logs

from notifications.devices import DEVICE_INDEXES, DeviceRepository, InvalidDevice, token_fingerprint
from notifications.dispatcher import FAILED, MUTED, PENDING, SENT, SKIPPED, DispatchConfig, Dispatcher, payload_for
from notifications.fcm import FcmSender
from notifications.outbox import FEATURED, OUTBOX_INDEXES, TAG_SUGGESTIONS, Outbox, announce_suggestions_ready
from notifications.preferences import Preferences
from notifications.pubsub import PubSub, user_topic
from photoduel.services import open_services
from storage.mongo import create_client, ensure_indexes
from storage.users import UserRepository
from tests.fcm_server import LoopbackFcm, write_service_account

PROJECT = "demo-photoduel"
FAST = DispatchConfig(lease_seconds=30, backoff_base_seconds=0.05, backoff_cap_seconds=0.2, poll_seconds=0.05)


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Any]:
    client = create_client(mongo_uri)
    database = client[f"push_{uuid.uuid4().hex[:10]}"]
    await ensure_indexes(database, [*OUTBOX_INDEXES, *DEVICE_INDEXES])
    yield database
    await client.drop_database(database.name)
    await client.close()


@pytest.fixture
def fcm() -> Iterator[LoopbackFcm]:
    with LoopbackFcm() as server:
        yield server


@pytest.fixture
async def sender(fcm: LoopbackFcm, tmp_path: Path) -> AsyncIterator[FcmSender]:
    account = write_service_account(tmp_path / "sa.json", project_id=PROJECT, token_uri=fcm.token_uri)
    push = FcmSender(project_id=PROJECT, credentials_path=account, fcm_base_url=fcm.base_url,
                     app_name=f"push-test-{uuid.uuid4().hex[:8]}")
    yield push
    await push.aclose()


class Parts:
    """The real pieces the wiring builds, on a throw-away database."""

    def __init__(self, db: Any, sender: FcmSender) -> None:
        self.db = db
        self.outbox = Outbox(db)
        self.devices = DeviceRepository(db)
        self.preferences = Preferences(UserRepository(db))
        self.sender = sender

    def dispatcher(self, config: DispatchConfig = FAST, owner: str | None = None) -> Dispatcher:
        return Dispatcher(self.outbox, self.devices, self.preferences, self.sender, config=config, owner=owner,
                          rng=random.Random(7))

    async def announce(self, owner: str, title: str = "Sunset") -> dict[str, Any]:
        photo = {"_id": ObjectId(), "owner": owner, "title": title}
        record, created = await announce_suggestions_ready(self.outbox, photo, 3)
        assert created
        return record

    async def push(self, record: dict[str, Any]) -> dict[str, Any]:
        doc = await self.outbox.collection.find_one({"_id": record["_id"]})
        assert doc is not None
        return doc["push"]


@pytest.fixture
def parts(db: Any, sender: FcmSender) -> Parts:
    return Parts(db, sender)


async def test_the_push_arrives_as_an_fcm_v1_message_with_notification_data_and_platform_options(
    parts: Parts, fcm: LoopbackFcm
) -> None:
    await parts.devices.register("alice", "alice-android", "ANDROID", max_devices=10)
    await parts.devices.register("alice", "alice-iphone", "IOS", max_devices=10)
    record = await parts.announce("alice")
    photo_id = record["data"]["photoId"]

    assert await parts.dispatcher().run_once() == 1

    push = await parts.push(record)
    assert push["state"] == SENT and push["attempts"] == 1
    assert {d["status"] for d in push["deliveries"]} == {"SENT"}
    assert {d["platform"] for d in push["deliveries"]} == {"ANDROID", "IOS"}
    assert all(d["message_id"].startswith(f"projects/{PROJECT}/messages/") for d in push["deliveries"])
    assert "alice-iphone" not in str(push)  # delivery records keep a fingerprint, never the token
    [request] = fcm.fcm_requests("alice-iphone")
    message = request.body["message"]
    assert message["notification"] == {"title": "New tag suggestions", "body": "3 tag suggestions for Sunset"}
    assert message["data"] == {
        "photoId": photo_id, "kind": TAG_SUGGESTIONS, "count": "3", "deepLink": f"photoduel://photos/{photo_id}",
        "notificationId": str(record["_id"]),
    }
    collapse = f"tag_suggestions-{photo_id}"
    assert message["android"]["collapse_key"] == collapse
    assert message["android"]["priority"] == "high"
    assert message["android"]["notification"]["tag"] == collapse
    assert message["apns"]["headers"]["apns-collapse-id"] == collapse
    assert message["apns"]["headers"]["apns-priority"] == "10"
    assert message["apns"]["payload"]["aps"]["thread-id"] == TAG_SUGGESTIONS
    assert len(fcm.fcm_requests("alice-android")) == 1


async def test_a_503_is_retried_with_backoff_until_fcm_accepts(parts: Parts, fcm: LoopbackFcm) -> None:
    # firebase-admin retries 500/503 itself (4 times): five 503s make one attempt of ours fail.
    fcm.script("bob-phone", ["UNAVAILABLE"] * 5)
    await parts.devices.register("bob", "bob-phone", "ANDROID", max_devices=10)
    record = await parts.announce("bob")
    dispatcher = parts.dispatcher()

    assert await dispatcher.run_once() == 1
    push = await parts.push(record)
    assert push["state"] == PENDING and push["attempts"] == 1
    assert push["next_at"] > push["deliveries"][0]["at"] - timedelta(milliseconds=1)
    assert [(d["status"], d["error_code"]) for d in push["deliveries"]] == [("TRANSIENT", "UNAVAILABLE")]
    assert "lease_token" not in push

    await wait_until(lambda: dispatcher.run_once(), timeout=5)
    push = await parts.push(record)
    assert push["state"] == SENT and push["attempts"] == 2
    assert [d["status"] for d in push["deliveries"]] == ["TRANSIENT", "SENT"]
    assert len(fcm.fcm_requests("bob-phone")) == 6


async def test_transient_failures_give_up_after_max_attempts(parts: Parts, fcm: LoopbackFcm) -> None:
    fcm.script("carl-phone", ["QUOTA_EXCEEDED"] * 3)  # 429: not retried inside firebase-admin
    await parts.devices.register("carl", "carl-phone", "WEB", max_devices=10)
    record = await parts.announce("carl")
    dispatcher = parts.dispatcher(DispatchConfig(backoff_base_seconds=0.01, backoff_cap_seconds=0.02,
                                                 max_attempts=3))
    for _ in range(3):
        await wait_until(lambda: dispatcher.run_once(), timeout=5)
    push = await parts.push(record)
    assert push["state"] == FAILED and push["attempts"] == 3
    assert "gave up after 3 attempts: QUOTA_EXCEEDED" in push["reason"]
    assert [d["error_code"] for d in push["deliveries"]] == ["QUOTA_EXCEEDED"] * 3
    assert await parts.devices.for_user("carl")  # a busy FCM is no reason to forget the device


async def test_an_unregistered_token_is_removed_and_the_others_still_get_the_push(
    parts: Parts, fcm: LoopbackFcm
) -> None:
    fcm.script("dana-old", ["UNREGISTERED"])
    fcm.script("dana-bad", ["INVALID_ARGUMENT"])
    for token in ("dana-old", "dana-bad", "dana-new"):
        await parts.devices.register("dana", token, "ANDROID", max_devices=10)
    record = await parts.announce("dana")

    assert await parts.dispatcher().run_once() == 1

    push = await parts.push(record)
    assert push["state"] == SENT
    by_device = {d["device"]: (d["status"], d["error_code"]) for d in push["deliveries"]}
    assert by_device == {
        token_fingerprint("dana-old"): ("INVALID_TOKEN", "UNREGISTERED"),
        token_fingerprint("dana-bad"): ("INVALID_TOKEN", "INVALID_ARGUMENT"),
        token_fingerprint("dana-new"): ("SENT", None),
    }
    assert [d.token for d in await parts.devices.for_user("dana")] == ["dana-new"]


async def test_only_invalid_tokens_means_skipped_with_no_devices_left(parts: Parts, fcm: LoopbackFcm) -> None:
    fcm.script("eve-old", ["UNREGISTERED"])
    await parts.devices.register("eve", "eve-old", "IOS", max_devices=10)
    record = await parts.announce("eve")
    await parts.dispatcher().run_once()
    push = await parts.push(record)
    assert (push["state"], push["reason"]) == (SKIPPED, "no valid devices")
    assert await parts.devices.for_user("eve") == []


async def until_delivered(dispatcher: Dispatcher, timeout: float = 60.0) -> int:
    """Run the dispatcher until it handles something (a crashed lease must run out first): how many."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (handled := await dispatcher.run_once()) == 0:
        assert asyncio.get_running_loop().time() < deadline, "the crashed lease was never taken over"
        await asyncio.sleep(0.05)
    return handled


async def test_a_crash_between_sending_and_marking_does_not_lose_the_notification(
    parts: Parts, fcm: LoopbackFcm
) -> None:
    await parts.devices.register("fay", "fay-phone", "ANDROID", max_devices=10)
    record = await parts.announce("fay")
    # Long enough that the send below cannot outlast it on a busy box, short enough to wait out.
    short_lease = DispatchConfig(lease_seconds=2.0, poll_seconds=0.05)

    # Dispatcher 1 claims and sends, then "crashes": it never records nor marks anything.
    crashed = parts.dispatcher(short_lease, owner="crashed")
    claimed_at = datetime.now(UTC)
    claim = await crashed.claim()
    assert claim is not None and claim.record["_id"] == record["_id"]
    [result] = await crashed.sender.send_async(payload_for(claim.record), ["fay-phone"])
    assert result.status.value == "SENT" and len(fcm.fcm_requests("fay-phone")) == 1
    del crashed

    # While the lease holds, nobody else takes it; once it runs out, another dispatcher does.
    survivor = parts.dispatcher(FAST, owner="survivor")
    assert await survivor.claim() is None
    assert await until_delivered(survivor) == 1
    assert datetime.now(UTC) >= claimed_at + timedelta(seconds=short_lease.lease_seconds)

    push = await parts.push(record)
    assert push["state"] == SENT and push["attempts"] == 2
    # At-least-once: the phone got it twice, with the same collapse key, so it shows one notification.
    requests = fcm.fcm_requests("fay-phone")
    assert len(requests) == 2
    assert len({r.body["message"]["android"]["collapse_key"] for r in requests}) == 1

    # The crashed dispatcher coming back late cannot overwrite the outcome: it lost its lease.
    late = parts.dispatcher(short_lease, owner="crashed")
    assert await late.settle(claim, [result]) is None
    assert (await parts.push(record))["state"] == SENT


async def test_a_crash_after_recording_the_attempt_sends_nothing_twice(parts: Parts, fcm: LoopbackFcm) -> None:
    await parts.devices.register("gil", "gil-phone", "ANDROID", max_devices=10)
    record = await parts.announce("gil")
    short_lease = DispatchConfig(lease_seconds=0.3)
    crashed = parts.dispatcher(short_lease)
    claim = await crashed.claim()
    assert claim is not None
    results = await crashed.sender.send_async(payload_for(claim.record), ["gil-phone"])
    await crashed.record_attempt(claim, results, {"gil-phone": "ANDROID"}, datetime.now(UTC))

    assert await until_delivered(parts.dispatcher(FAST)) == 1  # once the crashed lease has run out
    assert (await parts.push(record))["state"] == SENT
    assert len(fcm.fcm_requests("gil-phone")) == 1


async def test_a_muted_kind_is_recorded_but_not_pushed(parts: Parts, fcm: LoopbackFcm) -> None:
    await parts.devices.register("hal", "hal-phone", "ANDROID", max_devices=10)
    assert await parts.preferences.mute("hal", TAG_SUGGESTIONS) == [TAG_SUGGESTIONS]
    record = await parts.announce("hal")
    featured, _ = await parts.outbox.record(key="featured:x", user="hal", kind=FEATURED, title="Featured",
                                            body="Your photo is featured", data={"photoId": "x"})
    dispatcher = parts.dispatcher()
    assert await dispatcher.run_once() == 2

    push = await parts.push(record)
    assert (push["state"], push["deliveries"]) == (MUTED, [])
    assert (await parts.push(featured))["state"] == SENT
    [request] = fcm.fcm_requests("hal-phone")
    assert request.body["message"]["data"]["kind"] == FEATURED
    assert request.body["message"]["android"]["priority"] == "normal"
    assert await parts.preferences.unmute("hal", TAG_SUGGESTIONS) == []


async def test_no_devices_and_stale_records_are_skipped(parts: Parts, fcm: LoopbackFcm) -> None:
    lonely = await parts.announce("ivy")
    await parts.devices.register("jon", "jon-phone", "ANDROID", max_devices=10)
    stale = await parts.announce("jon")
    await parts.outbox.collection.update_one(
        {"_id": stale["_id"]}, {"$set": {"created_at": datetime.now(UTC) - timedelta(days=2)}}
    )
    assert await parts.dispatcher().run_once() == 2
    assert ((await parts.push(lonely))["state"], (await parts.push(lonely))["reason"]) == (SKIPPED, "no devices")
    assert (await parts.push(stale))["state"] == SKIPPED
    assert fcm.fcm_requests() == []


async def test_the_running_dispatcher_delivers_on_wake_and_stops(parts: Parts, fcm: LoopbackFcm) -> None:
    await parts.devices.register("kim", "kim-phone", "ANDROID", max_devices=10)
    dispatcher = parts.dispatcher(DispatchConfig(poll_seconds=30))  # only a wake makes it look this soon
    dispatcher.start()
    try:
        await asyncio.sleep(0.1)
        record = await parts.announce("kim")
        dispatcher.wake()
        await wait_until(lambda: _state_is(parts, record, SENT), timeout=5)
    finally:
        await dispatcher.stop()


async def test_devices_move_to_the_last_user_and_the_oldest_is_dropped_at_the_cap(parts: Parts) -> None:
    devices = parts.devices
    first = await devices.register("lea", "t1", "IOS", max_devices=2)
    await devices.register("lea", "t2", "ANDROID", max_devices=2)
    again = await devices.register("lea", "t1", "IOS", max_devices=2)  # refreshes t1: t2 is now the oldest
    assert again.created_at == first.created_at and again.updated_at > first.updated_at
    await devices.register("lea", "t3", "WEB", max_devices=2)
    assert [d.token for d in await devices.for_user("lea")] == ["t3", "t1"]

    moved = await devices.register("max", "t1", "IOS", max_devices=2)
    assert moved.user == "max"
    assert [d.token for d in await devices.for_user("lea")] == ["t3"]
    assert not await devices.unregister("lea", "t1")  # not lea's any more
    assert await devices.unregister("max", "t1")
    assert await devices.for_user("max") == []

    for token, platform in (("", "IOS"), ("a b", "IOS"), ("x" * 5000, "IOS"), ("ok", "BLACKBERRY")):
        with pytest.raises(InvalidDevice):
            await devices.register("lea", token, platform, max_devices=2)


async def test_an_invalid_token_re_registered_during_the_send_is_kept(parts: Parts) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    await parts.devices.register("ned", "ned-phone", "ANDROID", max_devices=10)
    assert await parts.devices.remove_invalid("ned", ["ned-phone"], checked_at=before) == 0
    assert await parts.devices.remove_invalid("ned", ["ned-phone"], checked_at=datetime.now(UTC)) == 1


async def test_pubsub_queues_are_bounded_and_drop_the_oldest() -> None:
    pubsub = PubSub(queue_size=2, max_subscribers_per_topic=1)
    async with pubsub.subscribe(user_topic("u")) as subscription:
        for n in range(4):
            assert pubsub.publish(user_topic("u"), n) == 1
        assert pubsub.publish(user_topic("other"), "x") == 0
        assert [await subscription.get(0.1), await subscription.get(0.1), await subscription.get(0.01)] == [2, 3, None]
        assert subscription.dropped == 2
        with pytest.raises(RuntimeError):
            async with pubsub.subscribe(user_topic("u")):
                pass
    assert pubsub.subscriber_count(user_topic("u")) == 0


async def test_without_credentials_push_is_off_said_once_and_records_stay_pending(make_settings: Any) -> None:
    settings = make_settings(firebase_credentials=None)
    with capture_logs() as logs:
        async with open_services(settings, load_model=False) as services:
            notifications = services.notifications
            assert notifications is not None and notifications.dispatcher is None
            photo = {"_id": ObjectId(), "owner": "olive", "title": None}
            async with notifications.subscribe_user("olive") as subscription:  # the app is open
                record, _ = await announce_suggestions_ready(services.outbox, photo, 1)
                await notifications.announced(record)
                event = await subscription.get(10)  # through the outbox follower, like any event
                assert event is not None and event["_id"] == record["_id"]
            stored = await services.outbox.collection.find_one({"_id": record["_id"]})
            assert stored is not None and stored["push"]["state"] == PENDING
    disabled = [e for e in logs if "push disabled" in e["event"]]
    assert len(disabled) == 1 and disabled[0]["log_level"] == "warning"


async def _state_is(parts: Parts, record: dict[str, Any], state: str) -> bool:
    return (await parts.push(record))["state"] == state


async def wait_until(check: Any, timeout: float) -> None:
    """Poll an async predicate (or an async int, truthy when done) until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)
