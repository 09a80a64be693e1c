"""Helpers for tests that vote: which vote a duel id stands for, and waiting for the rating projector."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bson import ObjectId

from gaming.duels.tickets import TicketSigner
from tests.servers import LiveServer


def vote_id(server: LiveServer, duel_id: str) -> ObjectId:
    """The vote log's `_id` for an answer to this duel ticket (its nonce)."""
    signer: TicketSigner = server.services.duels.signer
    return signer.verify(duel_id).nonce


def vote_nonce(data_dir: Path, duel_id: str) -> ObjectId:
    """The same, for a service in another process: its ticket secret is kept in its data dir."""
    return TicketSigner((data_dir / "duel-secret").read_bytes().strip()).verify(duel_id).nonce


async def applied_count(db: Any, vote_ids: Iterable[ObjectId]) -> int:
    ids = list(vote_ids)
    pipeline = [{"$match": {"entries.vote": {"$in": ids}}}, {"$project": {"entries.vote": 1}}]
    wanted = set(ids)
    named = [e["vote"] async for b in await db.rating_batches.aggregate(pipeline) for e in b["entries"]]
    return sum(1 for v in named if v in wanted)


def wait_applied(server: LiveServer, vote_ids: Iterable[ObjectId], timeout: float = 60.0) -> int:
    """Wait until the projector applied every one of these votes; returns how many batch entries name
    them (more than one each would be a vote applied twice)."""
    ids = list(vote_ids)
    deadline = time.monotonic() + timeout
    while True:
        found = server.run(applied_count(server.services.db, ids))
        if found >= len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


async def settled(server: LiveServer) -> None:
    """Until the projector has applied every vote in the log (and written its last batch's ratings)."""
    db = server.services.db
    while True:
        logged = await db.votes.count_documents({"choice": {"$ne": "SKIP"}})
        applied = [e["vote"] async for b in db.rating_batches.find({}, {"entries.vote": 1}) for e in b["entries"]]
        if len(applied) >= logged:
            break
        await asyncio.sleep(0.05)
    last = await db.rating_batches.find_one({}, sort=[("_id", -1)])
    while last is not None and await db.photos.count_documents(
            {"_id": {"$in": [r["id"] for r in last["ratings"]]}, "rating_seq": {"$not": {"$gte": last["_id"]}}}):
        await asyncio.sleep(0.05)
