"""The MongoDB client and the indexes every collection needs, created at start.

One `AsyncMongoClient` per process and event loop (PyMongo's async API, the successor of motor).
Index creation is idempotent, so every process may run it at start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from storage.blobs import BUCKET


def create_client(uri: str, *, app_name: str = "photoduel") -> AsyncMongoClient[dict[str, Any]]:
    # tz_aware: datetimes come back as UTC-aware, the same as we write them.
    return AsyncMongoClient(uri, tz_aware=True, appname=app_name, serverSelectionTimeoutMS=10_000)


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: list[tuple[str, int]]
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


ASC, DESC = ASCENDING, DESCENDING

# Every index of the service in one list, so a reader sees which queries are meant to be cheap.
INDEXES: list[IndexSpec] = [
    IndexSpec("users", [("created_at", ASC)], "created"),
    IndexSpec("photos", [("owner", ASC), ("sha256", ASC)], "owner_sha_unique", {"unique": True}),
    IndexSpec("photos", [("status", ASC), ("created_at", DESC)], "status_created"),
    IndexSpec("photos", [("owner", ASC), ("created_at", DESC)], "owner_created"),
    IndexSpec("photos", [("category", ASC), ("created_at", DESC)], "category_created"),
    IndexSpec("photos", [("tags", ASC), ("created_at", DESC)], "tags_created"),
    IndexSpec("photos", [("status", ASC), ("rating.conservative", DESC)], "status_rank"),
    IndexSpec("photos", [("category", ASC), ("rating.conservative", DESC)], "category_rank"),
    IndexSpec("photos", [("faces_count", ASC)], "faces"),
    # nextDuel's anchor pool and opponent reads, in a category or across all: the most uncertain, the
    # nearest the featured cut (either side of it), the least duelled
    IndexSpec("photos", [("category", ASC), ("status", ASC), ("rating.sigma", DESC)], "category_duel_sigma"),
    IndexSpec("photos", [("category", ASC), ("status", ASC), ("rating.mu", ASC)], "category_duel_mu"),
    IndexSpec("photos", [("category", ASC), ("status", ASC), ("duels", ASC)], "category_duel_duels"),
    IndexSpec("photos", [("status", ASC), ("rating.sigma", DESC)], "all_duel_sigma"),
    IndexSpec("photos", [("status", ASC), ("rating.mu", ASC)], "all_duel_mu"),
    IndexSpec("photos", [("status", ASC), ("duels", ASC)], "all_duel_duels"),
    # photos whose kept neighbour list is still short of k: each ingest batch offers itself to them
    IndexSpec("photos", [("neighbours_short", ASC), ("vector_collection", ASC)], "neighbours_short"),
    IndexSpec("jobs", [("state", ASC), ("run_at", ASC)], "runnable"),
    IndexSpec("jobs", [("state", ASC), ("lease_expires", ASC)], "expired_leases"),
    IndexSpec("jobs", [("key", ASC)], "key_unique", {"unique": True, "sparse": True}),
    IndexSpec("duels", [("player", ASC), ("created_at", DESC)], "player_created"),
    IndexSpec("votes", [("duel_id", ASC)], "duel_unique", {"unique": True}),
    IndexSpec("votes", [("applied_seq", ASC)], "applied_seq"),
    IndexSpec("votes", [("created_at", ASC)], "created"),
    IndexSpec("votes", [("player", ASC), ("pair", ASC)], "player_pair"),
    IndexSpec("votes", [("left", ASC)], "left"),
    IndexSpec("votes", [("right", ASC)], "right"),
    IndexSpec("judged", [("player", ASC), ("pair", ASC)], "player_pair_unique", {"unique": True}),
    # GridFS's own two, under the names PyMongo gives them, so a database PyMongo set up matches as-is.
    IndexSpec(f"{BUCKET}.files", [("filename", ASC), ("uploadDate", ASC)], "filename_1_uploadDate_1"),
    IndexSpec(f"{BUCKET}.chunks", [("files_id", ASC), ("n", ASC)], "files_id_1_n_1", {"unique": True}),
]


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]], extra: Iterable[IndexSpec] = ()) -> None:
    for spec in [*INDEXES, *extra]:
        if spec.keys == [("_id", ASC)]:
            continue  # every collection has it
        await db[spec.collection].create_index(spec.keys, name=spec.name, **dict(spec.options))


async def ping(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    await client.admin.command("ping")
    return True
