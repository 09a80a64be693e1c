"""GridFS blobs against the real MongoDB-wire server: round trips, and the index probes PyMongo is spared."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from storage.blobs import BUCKET, BlobNotFound, BlobStore
from storage.mongo import ensure_indexes


class CommandLog(monitoring.CommandListener):
    """PyMongo's own command monitoring: what the driver really sent to the server."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def probes(self) -> list[tuple[str, Any]]:
        return [c for c in self.commands if c[0] in ("find", "listIndexes", "createIndexes")]


@pytest.fixture
async def client(mongo_uri: str) -> AsyncIterator[tuple[Any, CommandLog]]:
    log = CommandLog()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True, event_listeners=[log])
    name = f"blobs_{uuid.uuid4().hex[:10]}"
    yield mongo[name], log
    await mongo.drop_database(name)
    await mongo.close()


async def index_names(db: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {spec["name"]: spec async for spec in await db[collection].list_indexes()}


async def test_a_blob_round_trips_without_per_blob_index_probes(client: tuple[Any, CommandLog]) -> None:
    db, log = client
    await ensure_indexes(db)
    store = BlobStore(db, indexes_ensured=True)
    data = os.urandom(600_000)  # three chunks of 255 kB

    log.commands.clear()
    first = await store.put(data, filename="a.jpg", content_type="image/jpeg", metadata={"variant": "raw"})
    second = await store.put(data[:1000], filename="b.jpg", content_type="image/jpeg", metadata={})

    assert log.probes() == []  # PyMongo would send a find to the files and the chunks collection per blob
    assert await store.get(first) == data
    assert await store.get(second) == data[:1000]
    stored = await db[f"{BUCKET}.files"].find_one({"_id": first})
    assert stored["length"] == len(data)
    assert stored["metadata"] == {"variant": "raw", "content_type": "image/jpeg"}
    assert await db[f"{BUCKET}.chunks"].count_documents({"files_id": first}) == 3
    chunks = await index_names(db, f"{BUCKET}.chunks")
    assert chunks["files_id_1_n_1"].get("unique") is True
    assert "filename_1_uploadDate_1" in await index_names(db, f"{BUCKET}.files")


async def test_a_bucket_pymongo_set_up_matches_our_indexes(client: tuple[Any, CommandLog]) -> None:
    """A deployment whose bucket PyMongo created (before this change) must start without an index conflict."""
    db, log = client
    store = BlobStore(db)  # no ensure_indexes yet: PyMongo checks and creates the bucket's indexes itself
    blob = await store.put(b"x" * 10, filename="a.jpg", content_type="image/jpeg", metadata={})
    assert any(name == "createIndexes" for name, _ in log.commands)
    before = await index_names(db, f"{BUCKET}.chunks")

    await ensure_indexes(db)  # same names, keys and options: a no-op, not IndexOptionsConflict

    assert await index_names(db, f"{BUCKET}.chunks") == before
    assert await store.get(blob) == b"x" * 10


async def test_a_deleted_blob_is_not_found(client: tuple[Any, CommandLog]) -> None:
    db, _ = client
    await ensure_indexes(db)
    store = BlobStore(db, indexes_ensured=True)
    blob = await store.put(b"abc", filename="a.jpg", content_type="image/jpeg", metadata={})
    await store.delete(blob)
    await store.delete(blob)  # twice: still fine
    with pytest.raises(BlobNotFound):
        await store.get(blob)
    assert await db[f"{BUCKET}.chunks"].count_documents({"files_id": blob}) == 0
