"""Notifications through the API: devices, the in-app list, mute, and live subscriptions over
graphql-transport-ws, on a live server whose push goes to a loopback FCM.

The upload test is the whole flow a photographer sees: upload over HTTP (GraphQL multipart request),
the in-process worker ingests it, the subscription receives the event and the phone (the loopback FCM
server) receives the push.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId
from PIL import Image
from skimage import data as skdata

from notifications.outbox import announce_suggestions_ready
from notifications.pubsub import user_topic
from photoduel.settings import Settings
from tests.fcm_server import LoopbackFcm, push_settings
from tests.graphql_ws import connect as connect_ws
from tests.servers import LiveServer, error_code
from tests.tokens import auth_header

PROJECT = "demo-photoduel"
NOTIFICATION_FIELDS = "id kind title body photoId deepLink createdAt read"


@pytest.fixture(scope="module")
def push_server(
    fcm: LoopbackFcm, make_settings: Callable[..., Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live API with push on: firebase-admin pointed at the loopback FCM (URL and token_uri)."""
    settings = make_settings(**push_settings(fcm, tmp_path_factory, project_id=PROJECT), max_devices_per_user=3)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
async def http(push_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=push_server.url, timeout=60) as client:
        yield client


async def gql(http: httpx.AsyncClient, query: str, uid: str | None = None, **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables},
                               headers=auth_header(uid) if uid else {})
    assert response.status_code == 200, response.text
    return response.json()


def ws_error_code(message: dict[str, Any]) -> str | None:
    """A refused subscription: an `error` message (a permission class, before execution) carries the
    errors as its payload; a resolver's error before the first event comes as `next` with `errors`."""
    if message["type"] == "error":
        return message["payload"][0]["extensions"]["code"]
    assert message["type"] == "next", message
    return error_code(message["payload"])


async def on_server(server: LiveServer, coro: Any) -> Any:
    """Run a coroutine on the server's loop (its MongoDB client) without blocking this test's loop."""
    return await asyncio.to_thread(server.run, coro)


@pytest.fixture
def ws_connect(push_server: LiveServer) -> Callable[[str | None], Any]:
    def connect(uid: str | None) -> Any:
        return connect_ws(push_server.url, uid)

    return connect


def astronaut_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def upload(http: httpx.AsyncClient, uid: str, data: bytes) -> dict[str, Any]:
    """The GraphQL multipart request spec, as apollo-upload-client sends it."""
    operations = {"query": "mutation($file: Upload!){ uploadPhoto(file: $file){ id status } }",
                  "variables": {"file": None}}
    response = await http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("astronaut.jpg", data, "image/jpeg")},
        headers={**auth_header(uid), "Apollo-Require-Preflight": "true"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["uploadPhoto"]


async def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def subscribed(server: LiveServer, uid: str) -> None:
    """Wait until the server has registered the user's notificationAdded subscription."""
    pubsub = server.services.notifications.pubsub
    await wait_for(lambda: pubsub.subscriber_count(user_topic(uid)) > 0, timeout=10)


async def insert_photo(server: LiveServer, owner: str, status: str) -> str:
    now = datetime.now(UTC)
    doc = {"_id": ObjectId(), "owner": owner, "status": status, "title": "Harbour", "sha256": str(ObjectId()),
           "created_at": now, "updated_at": now, "tags": [], "suggestions": []}
    await on_server(server, server.services.photos.collection.insert_one(doc))
    return str(doc["_id"])


async def announce(server: LiveServer, owner: str) -> dict[str, Any]:
    """What ingest does when a photo becomes READY: record the event, then the `on_announced` hook."""
    photo = {"_id": ObjectId(), "owner": owner, "title": "Harbour"}

    async def run() -> dict[str, Any]:
        record, _ = await announce_suggestions_ready(server.services.outbox, photo, 2)
        await server.services.notifications.announced(record)
        return record

    return await on_server(server, run())


REGISTER = "mutation($t: String!, $p: Platform!){ registerDevice(token: $t, platform: $p){ token platform createdAt } }"
NOTIFICATIONS = "query($first: Int, $after: String){ notifications(first: $first, after: $after){ " \
                f"edges {{ cursor node {{ {NOTIFICATION_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"


async def test_an_upload_reaches_the_open_subscription_and_the_phone(
    push_server: LiveServer, http: httpx.AsyncClient, fcm: LoopbackFcm, ws_connect: Any
) -> None:
    await asyncio.to_thread(push_server.wait_model)
    registered = await gql(http, REGISTER, "olga", t="olga-phone", p="ANDROID")
    assert registered["data"]["registerDevice"]["platform"] == "ANDROID"

    async with ws_connect("olga") as ws:
        await ws.subscribe("added", f"subscription {{ notificationAdded {{ {NOTIFICATION_FIELDS} }} }}")
        await subscribed(push_server, "olga")
        photo = await upload(http, "olga", astronaut_jpeg())
        assert photo["status"] == "PROCESSING"
        await ws.subscribe("ready", "subscription($id: ID!){ tagSuggestionsReady(photoId: $id){ id status "
                                    "suggestions { tag score } } }", id=photo["id"])

        ready = await ws.next("ready", timeout=60)
        assert ready["type"] == "next", ready
        assert ready["payload"]["data"]["tagSuggestionsReady"]["id"] == photo["id"]
        assert ready["payload"]["data"]["tagSuggestionsReady"]["status"] == "READY"
        assert (await ws.next("ready"))["type"] == "complete"

        added = await ws.next("added", timeout=30)
        notification = added["payload"]["data"]["notificationAdded"]
        assert notification["kind"] == "TAG_SUGGESTIONS" and notification["photoId"] == photo["id"]
        assert notification["deepLink"] == f"photoduel://photos/{photo['id']}"
        assert notification["read"] is False

    [push] = await wait_for(lambda: fcm.fcm_requests("olga-phone"))
    message = push.body["message"]
    assert message["data"]["photoId"] == photo["id"]
    assert message["data"]["notificationId"] == notification["id"]
    assert message["notification"]["title"] == notification["title"]
    assert message["android"]["collapse_key"] == f"tag_suggestions-{photo['id']}"

    listed = (await gql(http, NOTIFICATIONS, "olga"))["data"]["notifications"]["edges"]
    assert [e["node"] for e in listed] == [notification]
    mark = "mutation($ids: [ID!]!){ markNotificationsRead(ids: $ids) }"
    assert (await gql(http, mark, "olga", ids=[notification["id"]]))["data"]["markNotificationsRead"] == 1
    assert (await gql(http, mark, "olga", ids=[notification["id"]]))["data"]["markNotificationsRead"] == 0
    listed = (await gql(http, NOTIFICATIONS, "olga"))["data"]["notifications"]["edges"]
    assert listed[0]["node"]["read"] is True
    record = await on_server(push_server, push_server.services.outbox.collection.find_one(
        {"_id": ObjectId(notification["id"])}))
    assert record["push"]["state"] == "sent"


async def test_tag_suggestions_ready_is_for_the_owner_only(push_server: LiveServer, ws_connect: Any) -> None:
    processing = await insert_photo(push_server, "olga", "PROCESSING")
    ready = await insert_photo(push_server, "olga", "READY")
    query = "subscription($id: ID!){ tagSuggestionsReady(photoId: $id){ id status } }"

    async with ws_connect("nina") as ws:
        await ws.subscribe("theirs", query, id=processing)
        await ws.subscribe("unknown", query, id=str(ObjectId()))
        await ws.subscribe("garbage", query, id="not-an-id")
        for op_id, code in (("theirs", "FORBIDDEN"), ("unknown", "NOT_FOUND"), ("garbage", "NOT_FOUND")):
            assert ws_error_code(await ws.next(op_id)) == code

    async with ws_connect(None) as ws:
        await ws.subscribe("anon", query, id=processing)
        assert ws_error_code(await ws.next("anon")) == "UNAUTHENTICATED"
        await ws.subscribe("anon-added", "subscription { notificationAdded { id } }")
        assert ws_error_code(await ws.next("anon-added")) == "UNAUTHENTICATED"

    async with ws_connect("olga") as ws:  # already READY: sent at once, then the subscription completes
        await ws.subscribe("mine", query, id=ready)
        message = await ws.next("mine", timeout=5)
        assert message["payload"]["data"]["tagSuggestionsReady"] == {"id": ready, "status": "READY"}
        assert (await ws.next("mine"))["type"] == "complete"


async def test_another_users_notifications_are_never_visible(
    push_server: LiveServer, http: httpx.AsyncClient, ws_connect: Any
) -> None:
    async with ws_connect("nina") as ws:
        await ws.subscribe("added", "subscription { notificationAdded { id photoId } }")
        await subscribed(push_server, "nina")
        theirs = await announce(push_server, "olga")
        mine = await announce(push_server, "nina")
        first = await ws.next("added")
        assert first["payload"]["data"]["notificationAdded"]["id"] == str(mine["_id"])
        with pytest.raises(TimeoutError):
            await ws.next("added", timeout=0.5)

    nina = (await gql(http, NOTIFICATIONS, "nina"))["data"]["notifications"]["edges"]
    assert [e["node"]["id"] for e in nina] == [str(mine["_id"])]
    mark = "mutation($ids: [ID!]!){ markNotificationsRead(ids: $ids) }"
    assert (await gql(http, mark, "nina", ids=[str(theirs["_id"])]))["data"]["markNotificationsRead"] == 0
    olga = (await gql(http, NOTIFICATIONS, "olga", first=100))["data"]["notifications"]["edges"]
    assert {e["node"]["id"]: e["node"]["read"] for e in olga}[str(theirs["_id"])] is False
    assert error_code(await gql(http, mark, "nina", ids=["nope"])) == "BAD_USER_INPUT"
    assert error_code(await gql(http, NOTIFICATIONS)) == "UNAUTHENTICATED"


async def test_a_muted_kind_is_listed_but_not_pushed(
    push_server: LiveServer, http: httpx.AsyncClient, fcm: LoopbackFcm
) -> None:
    await gql(http, REGISTER, "pia", t="pia-phone", p="IOS")
    muted = await gql(http, "mutation { muteNotifications(kind: FEATURED) }", "pia")
    assert muted["data"]["muteNotifications"] == ["FEATURED"]
    me = await gql(http, "{ me { mutedNotifications } }", "pia")
    assert me["data"]["me"]["mutedNotifications"] == ["FEATURED"]

    photo = {"_id": ObjectId(), "owner": "pia", "title": "Harbour"}
    featured, _ = await on_server(push_server, push_server.services.notifications.announce_featured(photo))
    suggestions = await announce(push_server, "pia")

    [push] = await wait_for(lambda: fcm.fcm_requests("pia-phone"))
    assert push.body["message"]["data"]["notificationId"] == str(suggestions["_id"])

    async def state() -> str:
        doc = await on_server(push_server, push_server.services.outbox.collection.find_one({"_id": featured["_id"]}))
        return doc["push"]["state"]

    assert await wait_for(lambda: _equals(state(), "muted")) is True
    assert len(fcm.fcm_requests("pia-phone")) == 1
    kinds = [e["node"]["kind"] for e in (await gql(http, NOTIFICATIONS, "pia"))["data"]["notifications"]["edges"]]
    assert sorted(kinds) == ["FEATURED", "TAG_SUGGESTIONS"]
    unmuted = await gql(http, "mutation { unmuteNotifications(kind: FEATURED) }", "pia")
    assert unmuted["data"]["unmuteNotifications"] == []


async def test_devices_register_move_cap_and_unregister(http: httpx.AsyncClient) -> None:
    devices = "{ devices { token platform } }"
    for n in range(4):  # the server's cap is 3: the least recently registered goes
        await gql(http, REGISTER, "quin", t=f"quin-{n}", p="WEB")
    tokens = [d["token"] for d in (await gql(http, devices, "quin"))["data"]["devices"]]
    assert tokens == ["quin-3", "quin-2", "quin-1"]

    await gql(http, REGISTER, "rex", t="quin-3", p="ANDROID")  # the phone changed hands
    assert [d["token"] for d in (await gql(http, devices, "quin"))["data"]["devices"]] == ["quin-2", "quin-1"]
    assert (await gql(http, devices, "rex"))["data"]["devices"] == [{"token": "quin-3", "platform": "ANDROID"}]

    unregister = "mutation($t: String!){ unregisterDevice(token: $t) }"
    assert (await gql(http, unregister, "quin", t="quin-3"))["data"]["unregisterDevice"] is False
    assert (await gql(http, unregister, "rex", t="quin-3"))["data"]["unregisterDevice"] is True
    assert error_code(await gql(http, REGISTER, "quin", t="has space", p="IOS")) == "BAD_USER_INPUT"
    assert error_code(await gql(http, REGISTER, None, t="anon-phone", p="IOS")) == "UNAUTHENTICATED"


async def test_notifications_are_paged_newest_first(push_server: LiveServer, http: httpx.AsyncClient) -> None:
    ids = [str((await announce(push_server, "sam"))["_id"]) for _ in range(3)]
    first = (await gql(http, NOTIFICATIONS, "sam", first=2))["data"]["notifications"]
    assert [e["node"]["id"] for e in first["edges"]] == ids[::-1][:2]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await gql(http, NOTIFICATIONS, "sam", first=2, after=first["pageInfo"]["endCursor"]))
    assert [e["node"]["id"] for e in rest["data"]["notifications"]["edges"]] == [ids[0]]
    assert rest["data"]["notifications"]["pageInfo"]["hasNextPage"] is False
    assert error_code(await gql(http, NOTIFICATIONS, "sam", after="garbage!!")) == "BAD_USER_INPUT"


async def _equals(value: Any, expected: Any) -> bool:
    return (await value) == expected
