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
    """Until the projector has nothing left to apply (no vote newer than its last batch)."""
    while True:
        last = await server.services.db.rating_batches.find_one({}, sort=[("_id", -1)])
        newest = await server.services.db.votes.find_one({"choice": {"$ne": "SKIP"}}, sort=[("created_at", -1)])
        if newest is None or (last is not None and last["max_created_at"] >= newest["created_at"]):
            return
        await asyncio.sleep(0.05)
