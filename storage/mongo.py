"""The MongoDB client and the indexes every collection needs, created at start.

One `AsyncMongoClient` per process and event loop (PyMongo's async API, the successor of motor).
Index creation is idempotent, so every process may run it at start.

Every call has a deadline: the client's `timeoutMS` (PyMongo's client-side operation timeout, CSOT)
bounds each operation - server selection, connection checkout, the round trip, and the server's own
work (PyMongo sends what is left as `maxTimeMS`) - so a stalled or unreachable database fails a request
with a timeout error (`exc.timeout` is True) instead of hanging it. Work that legitimately takes longer
sets its own deadline with `pymongo.timeout(seconds)` around the calls: index builds here, large blobs in
`storage.blobs`. `pymongo.timeout` nests by taking the earlier deadline; `pymongo.timeout(None)` does not
lift the client's deadline. A cursor read with `async for` gets a fresh deadline per batch; `to_list`
has one deadline for the whole list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pymongo
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from storage.blobs import BUCKET

DEFAULT_TIMEOUT_SECONDS = 10.0
# An index build over a large existing collection at start; the server aborts it at this deadline.
INDEX_BUILD_TIMEOUT_SECONDS = 3600.0
# Background work over a whole collection (the matchmaking catalogue's load, a replay of the vote log,
# start-up fixes): no request waits for it, and under the request deadline it would fail at scale and
# be started again while the server still works on the abandoned one.
LONG_WORK_TIMEOUT_SECONDS = 900.0


def long_work() -> Any:
    """The deadline for background work over a whole collection (a context manager)."""
    return pymongo.timeout(LONG_WORK_TIMEOUT_SECONDS)


def create_client(uri: str, *, app_name: str = "photoduel",
                  timeout_seconds: float | None = DEFAULT_TIMEOUT_SECONDS) -> AsyncMongoClient[dict[str, Any]]:
    """The process's client. `timeout_seconds` is the deadline of each call (None or 0: none); a
    `timeoutMS` in the URI takes precedence, so an operator can set it with the rest of the connection."""
    options: dict[str, Any] = {
        "tz_aware": True,  # datetimes come back as UTC-aware, the same as we write them
        "appname": app_name,
        "serverSelectionTimeoutMS": 10_000,
    }
    if timeout_seconds and not uri_option(uri, "timeoutMS"):
        options["timeoutMS"] = round(timeout_seconds * 1000)
    return AsyncMongoClient(uri, **options)


def uri_option(uri: str, name: str) -> str | None:
    """An option of a connection string (names are case-insensitive), read without resolving anything."""
    _, _, query = uri.partition("?")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() == name.lower():
            return value
    return None


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
    # display names are unique regardless of case and spacing (storage/users.py set_display_name)
    IndexSpec("users", [("display_name_key", ASC)], "display_name_unique", {"unique": True, "sparse": True}),
    IndexSpec("photos", [("owner", ASC), ("sha256", ASC)], "owner_sha_unique", {"unique": True}),
    IndexSpec("photos", [("status", ASC), ("created_at", DESC)], "status_created"),
    IndexSpec("photos", [("owner", ASC), ("created_at", DESC)], "owner_created"),
    IndexSpec("photos", [("category", ASC), ("created_at", DESC)], "category_created"),
    IndexSpec("photos", [("tags", ASC), ("created_at", DESC)], "tags_created"),
    IndexSpec("photos", [("status", ASC), ("rating.conservative", DESC)], "status_rank"),
    IndexSpec("photos", [("category", ASC), ("rating.conservative", DESC)], "category_rank"),
    IndexSpec("photos", [("faces_count", ASC)], "faces"),
    # new READY photos, for every process's matchmaking catalogue (gaming/duels/catalogue.py)
    IndexSpec("photos", [("ready_at", ASC)], "ready_at", {"sparse": True}),
    # photos whose kept neighbour list is still short of k: each ingest batch offers itself to them
    IndexSpec("photos", [("neighbours_short", ASC), ("vector_collection", ASC)], "neighbours_short"),
    # a similarity group's members, best first (storage/photo_groups.py); groups listed best first, per
    # category or all, and those whose membership changed since their summary (storage/groups.py)
    IndexSpec("photos", [("group_id", ASC), ("rating.conservative", DESC)], "group_rank"),
    IndexSpec("groups", [("category", ASC), ("rank", DESC), ("_id", DESC)], "category_rank"),
    IndexSpec("groups", [("rank", DESC), ("_id", DESC)], "rank"),
    IndexSpec("groups", [("stale", ASC)], "stale", {"sparse": True}),
    IndexSpec("groups", [("founder", ASC)], "founder_unique", {"unique": True, "sparse": True}),
    IndexSpec("groups", [("summarised_at", ASC)], "summarised", {"sparse": True}),
    # the featured feed per category, newest featured first (api/share.py)
    IndexSpec("photos", [("category", ASC), ("featured_at", DESC)], "category_featured"),
    # photos held back pending review, the longest waiting first (storage/photo_moderation.py)
    IndexSpec("photos", [("moderation.state", ASC), ("moderation.hidden_at", ASC), ("_id", ASC)],
              "moderation_queue", {"sparse": True}),
    # one report per photo and reporter; a photo's reports counted per round; a reporter's (erasure)
    IndexSpec("photo_reports", [("photo", ASC), ("reporter", ASC)], "photo_reporter_unique", {"unique": True}),
    IndexSpec("photo_reports", [("photo", ASC), ("round", ASC)], "photo_round"),
    IndexSpec("photo_reports", [("reporter", ASC)], "reporter"),
    # the admins' decisions, per photo newest first
    IndexSpec("moderation_decisions", [("photo", ASC), ("at", DESC)], "photo_at"),
    # who blocked a user (erasure takes them out of every blocker's list); _id is the blocker
    IndexSpec("blocks", [("blocked", ASC)], "blocked"),
    IndexSpec("jobs", [("state", ASC), ("run_at", ASC)], "runnable"),
    IndexSpec("jobs", [("state", ASC), ("lease_expires", ASC)], "expired_leases"),
    IndexSpec("jobs", [("key", ASC)], "key_unique", {"unique": True, "sparse": True}),
    # the vote log: one answer per ticket (_id), per player and pair; the projector's tail. Multikey: a
    # series round's answer holds every pair it shows (storage/votes.py series_keys)
    IndexSpec("votes", [("player", ASC), ("pair", ASC)], "player_pair_unique", {"unique": True}),
    IndexSpec("votes", [("created_at", ASC)], "created"),
    # a photographer's private verdicts: one per owner and pair, a series' verdicts by its pair keys
    IndexSpec("series_votes", [("owner", ASC), ("pair", ASC)], "owner_pair_unique", {"unique": True}),
    IndexSpec("rating_batches", [("max_created_at", ASC)], "max_created"),
    IndexSpec("rating_batches", [("entries.vote", ASC)], "entry_vote"),
    # `ratings rebuild`'s records (the last one says how the votes before it are weighed)
    IndexSpec("rating_batches", [("rebase.at", ASC)], "rebase", {"sparse": True}),
    # the voters whose votes are left out now, read by the projector once per batch
    IndexSpec("voter_flags", [("status", ASC)], "status"),
    # a rate-limit bucket goes once it would be full again (storage/rate_limits.py)
    IndexSpec("rate_limits", [("expires_at", ASC)], "ttl", {"expireAfterSeconds": 0}),
    # GridFS's own two, under the names PyMongo gives them, so a database PyMongo set up matches as-is.
    IndexSpec(f"{BUCKET}.files", [("filename", ASC), ("uploadDate", ASC)], "filename_1_uploadDate_1"),
    IndexSpec(f"{BUCKET}.chunks", [("files_id", ASC), ("n", ASC)], "files_id_1_n_1", {"unique": True}),
]


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]], extra: Iterable[IndexSpec] = ()) -> None:
    # Under a long deadline, server selection waits as long as the deadline: an unreachable server is
    # found out first, at the client's own deadline.
    await db.command("ping")
    for spec in [*INDEXES, *extra]:
        if spec.keys == [("_id", ASC)]:
            continue  # every collection has it
        with pymongo.timeout(INDEX_BUILD_TIMEOUT_SECONDS):
            await db[spec.collection].create_index(spec.keys, name=spec.name, **dict(spec.options))


async def ping(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    await client.admin.command("ping")
    return True
