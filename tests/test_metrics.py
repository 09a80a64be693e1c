"""`/metrics` over real HTTP: the series a Prometheus scrape gets, and that they move with the requests."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from photoduel.settings import Settings
from storage.embedded_mongo import free_port
from tests.fcm_server import LoopbackFcm, push_settings
from tests.graphql_ws import connect
from tests.servers import LiveServer, error_code, graphql, settings_env
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, skimage_photo, upload_ok, wait_ready

SERIES = [
    "photoduel_graphql_request_duration_seconds", "photoduel_http_responses", "photoduel_graphql_errors",
    "photoduel_job_queue_depth", "photoduel_job_queue_oldest_age_seconds", "photoduel_model_batch_duration_seconds",
    "photoduel_votes", "photoduel_projector_lag_seconds", "photoduel_projector_active", "photoduel_push_notifications",
    "photoduel_websocket_connections", "photoduel_metrics_reads_ok",
]
NEXT = "query NextDuel { nextDuel { id left { id } right { id } } }"
VOTE = "mutation Vote($id: ID!) { voteDuel(duelId: $id, choice: LEFT) { accepted } }"
PROBES = 30  # counted exactly, however many arrive at once
REGISTER = "mutation Register($t: String!) { registerDevice(token: $t, platform: ANDROID) { token } }"


class Scrape:
    """One scrape, parsed: families by name, and each sample's value by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {(s.name, frozenset(s.labels.items())): s.value
                        for f in self.families.values() for s in f.samples}

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: httpx.Client, **headers: str) -> Scrape:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def probe_at_once(url: str, count: int) -> list[Any]:
    """`count` concurrent requests of one operation, from as many clients."""
    async def one(n: int) -> Any:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            response = await client.post("/graphql", json={"query": "query Probe { __typename }"},
                                         headers=auth_header(f"prober{n}"))
            return response.json()["data"]

    return list(await asyncio.gather(*(one(n) for n in range(count))))


def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} within {timeout:g}s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(fcm: LoopbackFcm, make_settings: Callable[..., Settings],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Push on (the loopback FCM), and no rating projector here: votes wait until the test applies them."""
    settings = make_settings(**push_settings(fcm, tmp_path_factory), projector_enabled=False)
    with LiveServer(settings) as live:
        yield live


def test_metrics_list_every_series_and_follow_the_requests(server: LiveServer) -> None:
    with server.client() as client:
        before = scrape(client)
        assert set(SERIES) <= set(before.families), sorted(set(SERIES) - set(before.families))
        assert before.value("photoduel_metrics_reads_ok") == 1
        assert before.value("photoduel_projector_active") == 0  # this process runs no projector
        for kind in ("ingest", "photo_deletion", "account_erasure", "faces"):  # every kind, when empty too
            assert ("photoduel_job_queue_depth", frozenset({"kind": kind, "state": "queued"}.items())) \
                in before.samples

        # three owners' photos (a duel never shows a player their own), one of them with a phone
        owners = {"ann": skimage_photo("astronaut"), "bob": skimage_photo("coffee"), "cat": generated_photo(7)}
        assert "errors" not in graphql(client, REGISTER, {"t": "ann-phone"}, headers=auth_header("ann"))
        photos = [upload_ok(client, jpeg_bytes(image), auth_header(uid)) for uid, image in owners.items()]
        # while the worker ingests them
        assert asyncio.run(probe_at_once(server.url, PROBES)) == [{"__typename": "Query"}] * PROBES
        for photo, uid in zip(photos, owners, strict=True):
            assert wait_ready(client, photo["id"], auth_header(uid))["status"] == "READY"

        assert "errors" in graphql(client, "query Broken { noSuchField }")
        refused = client.post("/graphql", json={"query": "{ __typename }"}, headers={"Authorization": "Bearer junk"})
        assert refused.status_code == 401
        missing = graphql(client, VOTE, {"id": "no-such-duel"}, headers=auth_header("vic"))
        assert error_code(missing) == "NOT_FOUND"
        duel = graphql(client, NEXT, headers=auth_header("vic"))["data"]["nextDuel"]
        assert graphql(client, VOTE, {"id": duel["id"]}, headers=auth_header("vic"))["data"]["voteDuel"]["accepted"]
        server.run(server.services.jobs.enqueue("metrics_probe", {}))  # a kind no worker here takes

        after = scrape(client)
        grew = lambda name, **labels: after.value(name, **labels) - before.value(name, **labels)  # noqa: E731
        assert grew("photoduel_graphql_request_duration_seconds_count", operation="Probe", type="query") == PROBES
        assert grew("photoduel_graphql_request_duration_seconds_count", operation="Vote", type="mutation") == 2
        assert grew("photoduel_graphql_request_duration_seconds_count", operation="NextDuel", type="query") == 1
        assert grew("photoduel_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
        assert grew("photoduel_graphql_errors_total", code="UNAUTHENTICATED") == 1
        assert grew("photoduel_graphql_errors_total", code="NOT_FOUND") == 1
        assert grew("photoduel_http_responses_total", route="/graphql", status="401") == 1
        assert grew("photoduel_votes_total") == 1
        assert after.value("photoduel_model_batch_duration_seconds_count", work="model_pass") >= 1
        assert after.value("photoduel_job_queue_depth", kind="metrics_probe", state="queued") == 1
        probe_age = ("photoduel_job_queue_oldest_age_seconds", frozenset({"kind": "metrics_probe"}.items()))
        assert 0 < after.samples[probe_age] < 60  # waiting since the enqueue just above
        assert after.value("photoduel_projector_lag_seconds") > 0  # the vote waits: no projector runs

        server.run(server.services.projector.drain())
        assert scrape(client).value("photoduel_projector_lag_seconds") == 0
        # the tag suggestions of ann's photo reach her phone
        eventually(lambda: scrape(client).value("photoduel_push_notifications_total", outcome="sent") >= 1,
                   "pushed")


async def test_websocket_connections_are_counted(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async def open_sockets() -> float:
            return Scrape((await client.get("/metrics")).text).value("photoduel_websocket_connections")

        assert await open_sockets() == 0
        async with connect(server.url, "wes"), connect(server.url, None):
            assert await open_sockets() == 2
        for _ in range(100):  # the server sees the close a moment after the client
            if await open_sockets() == 0:
                break
            await asyncio.sleep(0.05)
        assert await open_sockets() == 0


def test_metrics_are_closed_without_a_token_unless_public(make_settings: Callable[..., Settings]) -> None:
    with LiveServer(make_settings(metrics_public=False), run_worker=False) as closed, \
            httpx.Client(base_url=closed.url, timeout=30) as client:
        assert client.get("/metrics").status_code == 404
    token = "scrape-me-0123456789"
    with LiveServer(make_settings(metrics_token=token, metrics_public=True), run_worker=False) as guarded, \
            httpx.Client(base_url=guarded.url, timeout=30) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, auth_header("someone")):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert set(SERIES) <= set(scrape(client, Authorization=f"Bearer {token}").families)


def test_a_worker_serves_its_own_metrics(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    port, token = free_port(), "worker-scrape-0123456789"
    settings = make_settings(metrics_port=port, metrics_token=token, log_level="INFO")
    log = (tmp_path / "worker.log").open("w")
    env = {**settings_env(settings), "PHOTODUEL_METRICS_TOKEN": token}  # settings_env shows secrets masked
    worker = subprocess.Popen([sys.executable, "-m", "photoduel.cli", "worker"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            def answers() -> bool:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                try:
                    return client.get("/metrics").status_code == 401
                except httpx.TransportError:
                    return False

            eventually(answers, "serving /metrics", timeout=120)
            scraped: Any = scrape(client, Authorization=f"Bearer {token}")
            assert set(SERIES) <= set(scraped.families)
            assert scraped.value("photoduel_metrics_reads_ok") == 1
            eventually(lambda: scrape(client, Authorization=f"Bearer {token}").value(
                "photoduel_model_batch_duration_seconds_count", work="load") == 1, "the model loaded")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, (tmp_path / "worker.log").read_text()
        log.close()
