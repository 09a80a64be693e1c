"""The celebrity offset in force: fitted from the vote log, stored, and applied to each vote.

The discount itself is pure (`gaming.celebrity.CelebrityOffset`, chosen over partial-play weights by
bench/celebrity_sim.py). Here is its I/O: the offset lives in one document (`rating_params`,
`_id: "celebrity_offset"`), re-fitted periodically by worker processes from the decisive votes that
put a celebrity photo against a non-celebrity, and read inside each vote's transaction, so every vote
records the offset it was rated with and a replay of the log applies exactly the same one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from gaming.celebrity import CelebrityOffset, fit_celebrity_offset
from gaming.ratings import DuelAdjustment, Outcome, RatingEnv

log = structlog.get_logger(__name__)

PARAMS_ID = "celebrity_offset"
KIND = "celebrity_offset"


def adjustment_from(params: Mapping[str, Any] | None) -> DuelAdjustment | None:
    """The discount a vote was (or is to be) rated with, from its recorded parameters."""
    if not params or params.get("kind") != KIND or not params.get("offset"):
        return None
    return CelebrityOffset(float(params["offset"]))


class FameOffset:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], env: RatingEnv) -> None:
        self.params = db["rating_params"]
        self.votes = db["votes"]
        self.env = env

    async def current(self, session: AsyncClientSession | None = None) -> dict[str, Any] | None:
        doc = await self.params.find_one({"_id": PARAMS_ID}, session=session)
        if doc is None or not doc.get("offset"):
            return None
        return {"kind": KIND, "offset": float(doc["offset"])}

    async def refit(self, *, min_new_votes: int) -> float | None:
        """Fit again when at least `min_new_votes` celebrity-vs-other votes arrived since the last fit."""
        query = {"applied_seq": {"$gt": 0}, "$expr": {"$ne": ["$left_celebrity", "$right_celebrity"]}}
        relevant = await self.votes.count_documents(query)
        doc = await self.params.find_one({"_id": PARAMS_ID}) or {}
        if relevant - int(doc.get("relevant_votes", 0)) < min_new_votes:
            return None
        rows = [
            (str(v["left"]), str(v["right"]), Outcome(v["choice"]), bool(v.get("left_celebrity")),
             bool(v.get("right_celebrity")))
            async for v in self.votes.find({"applied_seq": {"$gt": 0}, "choice": {"$ne": "DRAW"}},
                                           {"left": 1, "right": 1, "choice": 1, "left_celebrity": 1,
                                            "right_celebrity": 1})
        ]
        offset = await asyncio.to_thread(fit_celebrity_offset, rows, self.env)
        await self.params.update_one(
            {"_id": PARAMS_ID},
            {"$set": {"offset": offset, "relevant_votes": relevant, "fitted_on": len(rows),
                      "fitted_at": datetime.now(UTC)}},
            upsert=True,
        )
        log.info("fame.refit", offset=round(offset, 3), votes=len(rows), celebrity_votes=relevant)
        return offset
