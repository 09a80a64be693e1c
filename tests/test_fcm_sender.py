"""FcmSender against a loopback FCM: real firebase-admin, google-auth, requests and HTTP on 127.0.0.1.

Nothing of ours is mocked; the only redirection is PHOTODUEL_FCM_URL (the sender's `fcm_base_url`) and
the service account's `token_uri`, exactly as an operator would configure a proxy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifications.fcm import DeliveryStatus, FcmSender
from notifications.messages import PushPayload, build_messages
from photoduel.settings import Settings
from tests.fcm_server import LoopbackFcm, ScriptedResponse, jwt_claims, write_service_account

PROJECT = "demo-photoduel"
SEND_PATH = f"/v1/projects/{PROJECT}/messages:send"


def tag_payload(photo_id: str = "ph_123", *, high_priority: bool = True) -> PushPayload:
    return PushPayload(
        title="3 tag suggestions for your photo",
        body="beach, sunset, people",
        data={"photoId": photo_id, "kind": "TAG_SUGGESTIONS", "deepLink": f"photoduel://photos/{photo_id}"},
        collapse_key=f"tags-{photo_id}",
        high_priority=high_priority,
    )


@pytest.fixture
def fcm() -> Iterator[LoopbackFcm]:
    with LoopbackFcm() as server:
        yield server


@pytest.fixture
def service_account(tmp_path: Path, fcm: LoopbackFcm) -> Path:
    return write_service_account(tmp_path / "sa.json", project_id=PROJECT, token_uri=fcm.token_uri)


@pytest.fixture
def sender(fcm: LoopbackFcm, service_account: Path) -> Iterator[FcmSender]:
    with FcmSender(
        project_id=PROJECT,
        credentials_path=service_account,
        fcm_base_url=fcm.base_url,
        app_name=f"fcm-test-{uuid.uuid4().hex[:8]}",
    ) as fcm_sender:
        yield fcm_sender


def test_payload_arrives_as_an_fcm_v1_message(fcm: LoopbackFcm, sender: FcmSender) -> None:
    [result] = sender.send(tag_payload(), ["device-1"])

    assert result.status is DeliveryStatus.SENT
    [request] = fcm.fcm_requests()
    assert request.path == SEND_PATH
    assert result.message_id is not None and result.message_id.startswith(f"projects/{PROJECT}/messages/")
    message = request.body["message"]
    assert message["token"] == "device-1"
    assert message["notification"] == {
        "title": "3 tag suggestions for your photo",
        "body": "beach, sunset, people",
    }
    assert message["data"] == {
        "photoId": "ph_123",
        "kind": "TAG_SUGGESTIONS",
        "deepLink": "photoduel://photos/ph_123",
    }
    assert message["android"]["collapse_key"] == "tags-ph_123"
    assert message["android"]["priority"] == "high"
    assert message["android"]["notification"]["tag"] == "tags-ph_123"
    assert message["apns"]["headers"] == {
        "apns-collapse-id": "tags-ph_123",
        "apns-priority": "10",
        "apns-push-type": "alert",
    }
    assert message["apns"]["payload"]["aps"] == {"thread-id": "TAG_SUGGESTIONS", "sound": "default"}
    assert message["webpush"]["headers"] == {"Urgency": "high"}


def test_requests_carry_the_token_from_the_oauth_endpoint(fcm: LoopbackFcm, sender: FcmSender) -> None:
    sender.send(tag_payload(), ["device-1", "device-2", "device-3"])
    sender.send(tag_payload("ph_456"), ["device-1"])

    # One token fetch for four messages: the sender refreshes once before sending, then it is cached.
    [token_request] = fcm.token_requests()
    assert token_request.body["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt_claims(token_request.body["assertion"])
    assert claims["iss"].endswith(f"@{PROJECT}.iam.gserviceaccount.com")
    assert "https://www.googleapis.com/auth/cloud-platform" in claims["scope"].split()
    [access_token] = fcm.issued_tokens
    sends = fcm.fcm_requests()
    assert len(sends) == 4
    assert {r.headers["authorization"] for r in sends} == {f"Bearer {access_token}"}


def test_normal_priority_maps_to_each_platform(fcm: LoopbackFcm, sender: FcmSender) -> None:
    payload = PushPayload(title="t", body="b", data={}, collapse_key=None)
    sender.send(payload, ["device-1"])

    message = fcm.fcm_requests()[0].body["message"]
    assert message["android"]["priority"] == "normal"
    assert "collapse_key" not in message["android"]
    assert message["apns"]["headers"] == {"apns-priority": "5", "apns-push-type": "alert"}
    assert message["webpush"]["headers"] == {"Urgency": "normal"}


def test_each_token_gets_its_own_classified_result(fcm: LoopbackFcm, sender: FcmSender) -> None:
    # firebase-admin retries 500/503 itself (4 times, ~7 s of backoff): five answers make it give up.
    fcm.script("busy", ["UNAVAILABLE"] * 5)
    fcm.script("broken", [500] * 5)
    fcm.script("gone", ["UNREGISTERED"])
    fcm.script("malformed", ["INVALID_ARGUMENT"])
    fcm.script("other-project", ["SENDER_ID_MISMATCH"])
    fcm.script("throttled", ["QUOTA_EXCEEDED"])
    fcm.script("behind-proxy", [502])
    fcm.script("apns-misconfigured", ["THIRD_PARTY_AUTH_ERROR"] * 3)
    tokens = [
        "ok-1", "busy", "broken", "gone", "malformed", "other-project", "throttled", "behind-proxy",
        "apns-misconfigured", "ok-2",
    ]  # fmt: skip

    results = sender.send(tag_payload(), tokens)

    assert [r.token for r in results] == tokens
    outcome = {r.token: (r.status, r.error_code) for r in results}
    assert outcome == {
        "ok-1": (DeliveryStatus.SENT, None),
        "ok-2": (DeliveryStatus.SENT, None),
        "busy": (DeliveryStatus.TRANSIENT, "UNAVAILABLE"),
        "broken": (DeliveryStatus.TRANSIENT, "INTERNAL"),
        "throttled": (DeliveryStatus.TRANSIENT, "QUOTA_EXCEEDED"),
        "behind-proxy": (DeliveryStatus.TRANSIENT, "UNKNOWN"),
        "gone": (DeliveryStatus.INVALID_TOKEN, "UNREGISTERED"),
        "malformed": (DeliveryStatus.INVALID_TOKEN, "INVALID_ARGUMENT"),
        "other-project": (DeliveryStatus.INVALID_TOKEN, "SENDER_ID_MISMATCH"),
        "apns-misconfigured": (DeliveryStatus.FATAL, "THIRD_PARTY_AUTH_ERROR"),
    }
    sent = [r for r in results if r.status is DeliveryStatus.SENT]
    assert all(r.message_id and r.error_code is None and r.detail is None for r in sent)
    assert len({r.message_id for r in sent}) == 2
    assert all(r.message_id is None and r.detail for r in results if r.status is not DeliveryStatus.SENT)
    assert len(fcm.fcm_requests("busy")) == 5


def test_invalid_argument_about_the_message_is_fatal(fcm: LoopbackFcm, sender: FcmSender) -> None:
    body = (
        b'{"error": {"code": 400, "message": "Invalid value at message.data", "status": "INVALID_ARGUMENT"}}'
    )
    fcm.script("device-1", [ScriptedResponse(400, body=body, headers={"Content-Type": "application/json"})])

    [result] = sender.send(tag_payload(), ["device-1"])

    assert (result.status, result.error_code) == (DeliveryStatus.FATAL, "INVALID_ARGUMENT")


def test_a_single_503_is_retried_inside_firebase_admin(fcm: LoopbackFcm, sender: FcmSender) -> None:
    fcm.script("device-1", ["UNAVAILABLE"])

    [result] = sender.send(tag_payload(), ["device-1"])

    assert result.status is DeliveryStatus.SENT
    assert len(fcm.fcm_requests("device-1")) == 2


def test_duplicate_tokens_are_sent_once(fcm: LoopbackFcm, sender: FcmSender) -> None:
    results = sender.send(tag_payload(), ["a", "b", "a", "c", "b"])

    assert [r.token for r in results] == ["a", "b", "c"]
    assert sorted(r.body["message"]["token"] for r in fcm.fcm_requests()) == ["a", "b", "c"]
    assert sender.send(tag_payload(), []) == []


def test_unreachable_endpoints_are_transient(tmp_path: Path) -> None:
    # Nothing listens: the OAuth token fetch fails first, with google-auth's TransportError.
    with LoopbackFcm() as stopped:
        pass
    service_account = write_service_account(
        tmp_path / "sa.json", project_id=PROJECT, token_uri=stopped.token_uri
    )
    with FcmSender(
        project_id=PROJECT,
        credentials_path=service_account,
        fcm_base_url=stopped.base_url,
        app_name="fcm-test-down",
    ) as sender:
        results = sender.send(tag_payload(), ["device-1", "device-2"])

    assert [(r.token, r.status, r.error_code) for r in results] == [
        ("device-1", DeliveryStatus.TRANSIENT, "TRANSPORT_ERROR"),
        ("device-2", DeliveryStatus.TRANSIENT, "TRANSPORT_ERROR"),
    ]


def test_server_gone_after_the_token_was_cached_is_transient(fcm: LoopbackFcm, sender: FcmSender) -> None:
    assert sender.send(tag_payload(), ["device-1"])[0].status is DeliveryStatus.SENT
    fcm.close()  # also cuts the kept-alive connection the sender's pool holds

    [result] = sender.send(tag_payload(), ["device-1"])

    assert (result.status, result.error_code) == (DeliveryStatus.TRANSIENT, "UNAVAILABLE")


async def test_send_async_and_close_inside_a_running_loop(fcm: LoopbackFcm, service_account: Path) -> None:
    sender = FcmSender(
        project_id=PROJECT,
        credentials_path=service_account,
        fcm_base_url=fcm.base_url,
        app_name="fcm-test-async",
    )
    results = await sender.send_async(tag_payload(), ["device-1", "device-2"])
    assert [r.status for r in results] == [DeliveryStatus.SENT, DeliveryStatus.SENT]

    # firebase-admin's own cleanup calls asyncio.run(); close() must still work from a coroutine.
    sender.close()
    sender.close()
    with pytest.raises(RuntimeError, match="after close"):
        sender.send(tag_payload(), ["device-1"])
    # The App name is free again.
    FcmSender(project_id=PROJECT, credentials_path=service_account, app_name="fcm-test-async").close()


def test_from_settings(fcm: LoopbackFcm, service_account: Path) -> None:
    assert FcmSender.from_settings(Settings(firebase_credentials=None, fcm_url=fcm.base_url)) is None

    settings = Settings(
        firebase_project_id=PROJECT, firebase_credentials=service_account, fcm_url=fcm.base_url + "/"
    )
    sender = FcmSender.from_settings(settings)
    assert sender is not None
    try:
        [result] = sender.send(tag_payload(), ["device-1"])
    finally:
        sender.close()
    assert result.status is DeliveryStatus.SENT
    assert [r.path for r in fcm.fcm_requests()] == [SEND_PATH]


def test_misconfiguration_fails_at_start(tmp_path: Path, service_account: Path) -> None:
    with pytest.raises(ValueError, match="PHOTODUEL_FCM_URL"):
        FcmSender(project_id=PROJECT, credentials_path=service_account, fcm_base_url="fcm.local:8080")
    with pytest.raises(ValueError, match="PHOTODUEL_FIREBASE_CREDENTIALS"):
        FcmSender(project_id=PROJECT, credentials_path=tmp_path / "missing.json")


def test_payload_refuses_what_fcm_would_reject() -> None:
    with pytest.raises(TypeError, match="str to str"):
        PushPayload(title="t", body="b", data={"count": 3}, collapse_key=None)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="reserved"):
        PushPayload(title="t", body="b", data={"google.x": "1"}, collapse_key=None)
    with pytest.raises(ValueError, match="64 bytes"):
        PushPayload(title="t", body="b", data={}, collapse_key="k" * 65)
    with pytest.raises(TypeError):
        build_messages(tag_payload(), "device-1")


def test_payload_data_is_a_snapshot() -> None:
    data = {"photoId": "ph_1"}
    payload = PushPayload(title="t", body="b", data=data, collapse_key=None)
    data["photoId"] = "changed"

    assert payload.data["photoId"] == "ph_1"
    assert [m.token for m in build_messages(payload, ["a", "b"])] == ["a", "b"]
