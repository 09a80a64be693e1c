"""Tokens under abuse and outage: a revoked token stops working within the revocation cache's lifetime
(without a lookup per request), an open subscription is closed when its token expires, an outage of
Google's keys is a 503 to retry rather than a 401 to refresh on, and the Auth emulator (which accepts
unsigned tokens) is honoured only where PHOTODUEL_ENV=dev is set explicitly.

The user lookups go over HTTP to the session's loopback Auth emulator (tests/auth_emulator.py), as
firebase-admin makes them to the real one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import firebase_admin
import httpx
import pytest
from firebase_admin import auth as firebase_auth
from httpx_ws import WebSocketDisconnect, aconnect_ws

from photoduel.settings import Settings, SettingsError, load_settings
from storage.embedded_mongo import free_port
from tests.auth_emulator import AuthEmulator
from tests.servers import LiveServer
from tests.tokens import PROJECT_ID, auth_header, mint_token

ME = "{ me { id } }"
CACHE_SECONDS = 1.5


@pytest.fixture(scope="module")
def live(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with LiveServer(make_settings(auth_revocation_cache_seconds=CACHE_SECONDS), run_worker=False) as server:
        yield server


@pytest.fixture(scope="module")
def admin_app() -> Iterator[firebase_admin.App]:
    """An operator's firebase-admin: revokes and disables users through the (emulated) Auth API."""
    app = firebase_admin.initialize_app(options={"projectId": PROJECT_ID}, name="test-operator")
    yield app
    firebase_admin.delete_app(app)


def me(server: LiveServer, token: str) -> httpx.Response:
    return httpx.post(f"{server.url}/graphql", json={"query": ME},
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)


def refused_within(server: LiveServer, token: str, seconds: float) -> tuple[httpx.Response, float]:
    """Poll `me` until the token is refused (or `seconds` pass): the refusal and how long it took."""
    started = time.monotonic()
    while True:
        response = me(server, token)
        elapsed = time.monotonic() - started
        if response.status_code != 200 or elapsed > seconds:
            return response, elapsed
        time.sleep(0.1)


def test_a_revoked_token_is_refused_within_the_cache_lifetime(
    live: LiveServer, auth_emulator: AuthEmulator, admin_app: firebase_admin.App
) -> None:
    token = mint_token("rita", issued_ago=5)
    for _ in range(5):
        response = me(live, token)
        assert response.status_code == 200 and response.json()["data"]["me"]["id"] == "rita", response.text
    assert auth_emulator.lookups["rita"] == 1  # the user record is cached, not fetched per request

    firebase_auth.revoke_refresh_tokens("rita", app=admin_app)
    response, elapsed = refused_within(live, token, CACHE_SECONDS + 5)
    assert response.status_code == 401, (response.text, elapsed)
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "revoked" in response.json()["errors"][0]["message"]

    time.sleep(1.1)  # validSince has one-second resolution: a token issued after it is a new sign-in
    fresh = me(live, mint_token("rita"))
    assert fresh.status_code == 200 and fresh.json()["data"]["me"]["id"] == "rita", fresh.text
    other = me(live, mint_token("ruth", issued_ago=5))  # revoking one user revokes nobody else
    assert other.status_code == 200, other.text


def test_a_disabled_or_deleted_user_is_refused(
    live: LiveServer, auth_emulator: AuthEmulator, admin_app: firebase_admin.App
) -> None:
    # The emulator is shared by the whole session: uids this test disables or deletes are its own.
    token = mint_token("disabled-by-auth-test")
    assert me(live, token).status_code == 200
    firebase_auth.update_user("disabled-by-auth-test", disabled=True, app=admin_app)
    response, _ = refused_within(live, token, CACHE_SECONDS + 5)
    assert response.status_code == 401 and "disabled" in response.text, response.text

    auth_emulator.delete("deleted-by-auth-test")
    response = me(live, mint_token("deleted-by-auth-test"))
    assert response.status_code == 401 and "no longer exists" in response.text, response.text


async def test_an_open_subscription_is_closed_when_its_token_expires(live: LiveServer) -> None:
    ws_url = live.url.replace("http://", "ws://") + "/graphql"
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client, \
            aconnect_ws(ws_url, client, subprotocols=["graphql-transport-ws"]) as lasting, \
            aconnect_ws(ws_url, client, subprotocols=["graphql-transport-ws"]) as short:
        await lasting.send_json({"type": "connection_init", "payload": auth_header("lena")})
        await short.send_json({"type": "connection_init", "payload": auth_header("sid", expires_in=2)})
        for session in (lasting, short):
            assert (await session.receive_json(timeout=10))["type"] == "connection_ack"
            await session.send_json({"id": "n", "type": "subscribe",
                                     "payload": {"query": "subscription { notificationAdded { id } }"}})
        opened = time.monotonic()
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:  # nothing is published: the next thing the short-lived socket hears is its close
                await short.receive_json(timeout=15)
        assert closed.value.code == 4403, closed.value
        assert "expired" in (closed.value.reason or "")
        assert time.monotonic() - opened < 10  # at expiry (about 2 s), not at some later sweep

        await lasting.send_json({"type": "ping"})  # a token that has not expired keeps its socket
        assert (await lasting.receive_json(timeout=10))["type"] == "pong"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def rs256_looking_token(uid: str) -> str:
    """Well-formed for a real project (RS256, a key id): verifying it needs Google's public keys."""
    now = int(time.time())
    claims = {"iss": f"https://securetoken.google.com/{PROJECT_ID}", "aud": PROJECT_ID, "sub": uid,
              "user_id": uid, "iat": now, "auth_time": now, "exp": now + 3600}
    return f"{_b64({'alg': 'RS256', 'kid': 'key-1', 'typ': 'JWT'})}.{_b64(claims)}.{_b64({'sig': 'x'})}"


def test_an_outage_of_googles_keys_is_503_unavailable_not_401(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Production verification (no emulator) with every HTTPS request sent to a proxy that is not there:
    # the fetch of Google's certificates fails as it does when Google or the network is down.
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST")
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    with LiveServer(make_settings(env="prod"), run_worker=False) as server:
        response = me(server, rs256_looking_token("olive"))
        assert response.status_code == 503, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
        assert int(response.headers["retry-after"]) > 0
        anonymous = httpx.post(f"{server.url}/graphql", json={"query": ME}, timeout=30)
        assert anonymous.status_code == 200 and anonymous.json()["data"]["me"] is None


def test_the_emulator_is_refused_unless_dev_is_set_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    monkeypatch.delenv("PHOTODUEL_ENV")
    with pytest.raises(SettingsError, match="PHOTODUEL_ENV=dev"):
        load_settings()  # "dev" is the default, but a default is not a decision
    monkeypatch.setenv("PHOTODUEL_ENV", "prod")
    with pytest.raises(SettingsError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        load_settings()
    monkeypatch.setenv("PHOTODUEL_ENV", "dev")
    assert load_settings().firebase_auth_emulator_host == "127.0.0.1:9099"

    env = {k: v for k, v in os.environ.items() if k != "PHOTODUEL_ENV"}
    started = subprocess.run([sys.executable, "-m", "photoduel.cli", "serve"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode == 2, started.stderr
    assert "FIREBASE_AUTH_EMULATOR_HOST" in started.stderr and "PHOTODUEL_ENV=dev" in started.stderr


def test_a_websocket_is_refused_as_unavailable_when_the_auth_api_is_down(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens there
    with LiveServer(make_settings(), run_worker=False) as server:
        response = me(server, mint_token("una"))
        assert response.status_code == 503, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"

        async def connect() -> int:
            ws_url = server.url.replace("http://", "ws://") + "/graphql"
            async with httpx.AsyncClient(timeout=30) as client, \
                    aconnect_ws(ws_url, client, subprotocols=["graphql-transport-ws"]) as session:
                await session.send_json({"type": "connection_init", "payload": auth_header("una")})
                try:
                    await session.receive_json(timeout=30)
                except WebSocketDisconnect as exc:
                    return exc.code
                return 0

        assert asyncio.run(connect()) == 4403
