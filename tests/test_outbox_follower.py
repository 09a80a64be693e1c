"""The outbox follower (notifications/follower.py) keeps every record, once, across lost connections.

A follower reads through a loopback TCP proxy that the test cuts, while another client keeps writing
to the database: the records written in the gap arrive after the follower reconnects, each once, in
order. The same scenario runs on a change stream and on the polling fallback (forced by the mode, as
`PHOTODUEL_EVENTS_FOLLOW=poll` does); a change stream also resumes across a restart of the database
server on the same data dir, and one that cannot resume (a token the server refuses) catches up by
reading the records since the last one seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from structlog.testing import capture_logs

from notifications.follower import OutboxFollower
from notifications.outbox import OUTBOX_INDEXES, TAG_SUGGESTIONS, Outbox
from storage.embedded_mongo import EmbeddedMongo
from storage.mongo import create_client, ensure_indexes
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(180)

Doc = dict[str, Any]


def via(uri: str, port: int) -> str:
    """The same URI, through another port on loopback."""
    parts = urlsplit(uri)
    return parts._replace(netloc=f"127.0.0.1:{port}").geturl()


@contextlib.asynccontextmanager
async def writer(uri: str, database: str) -> AsyncIterator[Outbox]:
    client = create_client(uri, timeout_seconds=10)
    try:
        db: AsyncDatabase[Doc] = client[database]
        await ensure_indexes(db, OUTBOX_INDEXES)
        yield Outbox(db)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def following(uri: str, database: str, mode: Any) -> AsyncIterator[tuple[OutboxFollower, list[Doc]]]:
    client = create_client(uri, timeout_seconds=3)
    published: list[Doc] = []

    def publish(record: Mapping[str, Any]) -> None:
        published.append(dict(record))

    follower = OutboxFollower(Outbox(client[database]), publish, mode=mode, poll_seconds=0.1,
                              max_await_seconds=0.2, rng=random.Random(7))
    await follower.start()
    try:
        yield follower, published
    finally:
        await follower.stop()
        await client.close()


async def write(outbox: Outbox, n: int) -> ObjectId:
    record, created = await outbox.record(key=f"event:{uuid.uuid4().hex}", user="fay", kind=TAG_SUGGESTIONS,
                                          title="New tag suggestions", body=f"event {n}",
                                          data={"photoId": str(ObjectId())})
    assert created
    return record["_id"]


async def all_arrived(outbox: Outbox, published: list[Doc], written: list[ObjectId], timeout: float = 60) -> None:
    """Write one more record and wait for it: the follower then has read everything before it too, so
    what it published is final and can be compared exactly."""
    sentinel = await write(outbox, -1)
    written.append(sentinel)
    deadline = asyncio.get_running_loop().time() + timeout
    while sentinel not in {r["_id"] for r in published}:
        assert asyncio.get_running_loop().time() < deadline, f"{len(published)} of {len(written)} arrived"
        await asyncio.sleep(0.05)
    assert [r["_id"] for r in published] == written, "each record once, in the order written"


@pytest.mark.parametrize("mode", ["change_stream", "poll"])
async def test_a_follower_that_loses_its_connection_resumes_without_losing_or_repeating_an_event(
    mongo_uri: str, mode: str,
) -> None:
    database = f"t_{uuid.uuid4().hex[:12]}"
    upstream = urlsplit(mongo_uri)
    proxy = await TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 27017).start()
    try:
        async with writer(mongo_uri, database) as outbox, following(via(mongo_uri, proxy.port), database, mode) as (
            follower, published,
        ):
            assert follower.using == mode
            written = [await write(outbox, n) for n in range(3)]
            await all_arrived(outbox, published, written)

            with capture_logs() as logs:
                proxy.cut()  # the follower's connections die; the database and the writer carry on
                written += [await write(outbox, n) for n in range(3, 8)]
                while not any(e["event"] == "events.follow_interrupted" for e in logs):
                    await asyncio.sleep(0.05)
                written += [await write(outbox, n) for n in range(8, 10)]
                proxy.restore()
                written += [await write(outbox, n) for n in range(10, 12)]
                await all_arrived(outbox, published, written)
            assert follower.using == mode
            assert published[0]["body"] == "event 0" and published[0]["user"] == "fay"
    finally:
        await proxy.stop()


async def test_a_change_stream_resumes_after_the_database_server_restarts_on_its_data_dir(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path / "mongodb")
    uri = await asyncio.to_thread(server.start)
    try:
        async with writer(uri, "photoduel") as outbox, following(uri, "photoduel", "change_stream") as (
            follower, published,
        ):
            written = [await write(outbox, n) for n in range(3)]
            await all_arrived(outbox, published, written)
            await asyncio.to_thread(server.stop)
            server = EmbeddedMongo(tmp_path / "mongodb", port=server.port)
            await asyncio.to_thread(server.start)
            written += [await write(outbox, n) for n in range(3, 6)]  # before the follower is back
            await all_arrived(outbox, published, written)
            assert follower.using == "change_stream"
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_stream_that_cannot_resume_catches_up_from_the_last_record_seen(mongo_uri: str) -> None:
    database = f"t_{uuid.uuid4().hex[:12]}"
    upstream = urlsplit(mongo_uri)
    proxy = await TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 27017).start()
    try:
        async with writer(mongo_uri, database) as outbox, following(via(mongo_uri, proxy.port), database,
                                                                      "change_stream") as (follower, published):
            written = [await write(outbox, n) for n in range(2)]
            await all_arrived(outbox, published, written)
            with capture_logs() as logs:
                proxy.cut()
                while not any(e["event"] == "events.follow_interrupted" for e in logs):
                    await asyncio.sleep(0.05)
                follower.token = {"_data": "00"}  # as if the server's history had rolled past our token
                written += [await write(outbox, n) for n in range(2, 6)]
                proxy.restore()
                await all_arrived(outbox, published, written)
            assert any(e["event"] == "events.resume_refused" for e in logs)
    finally:
        await proxy.stop()


async def test_auto_mode_follows_with_a_change_stream_where_the_server_has_them(mongo_uri: str) -> None:
    """SecantusDB has change streams: `auto` picks them. (A standalone mongod refuses the watch with an
    OperationFailure, and `auto` then polls.)"""
    database = f"t_{uuid.uuid4().hex[:12]}"
    async with writer(mongo_uri, database) as outbox, following(mongo_uri, database, "auto") as (follower, published):
        assert follower.using == "change_stream"
        written = [await write(outbox, 0)]
        await all_arrived(outbox, published, written)
