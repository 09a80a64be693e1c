"""The celebrity offset in force: fitted from the vote log, stored, and applied to each vote.

The discount itself is pure (`gaming.celebrity.CelebrityOffset`). Here is its I/O: the offset lives in
one document (`storage.rating_params`, `_id: "celebrity_offset"`), re-fitted periodically from the
applied votes that put a celebrity photo against a non-celebrity (read from the rating projector's
batches, which record each vote's celebrity flags), and read by the projector once per batch, so every
batch records the offset it was rated with and a replay of the log applies exactly the same one.

How many such votes arrived is counted incrementally (`counted_seq`), with a conditional write, so
several worker processes running the chore neither double-count nor read the whole log each time;
the whole log is read only for an actual re-fit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from gaming.celebrity import CelebrityOffset, fit_celebrity_offset
from gaming.ratings import DuelAdjustment, Outcome, RatingEnv
from storage.clock import utcnow
from storage.mongo import long_work
from storage.rating_batches import RatingBatchRepository
from storage.rating_params import RatingParamsRepository

log = structlog.get_logger(__name__)

PARAMS_ID = "celebrity_offset"
KIND = "celebrity_offset"


def adjustment_from(params: Mapping[str, Any] | None) -> DuelAdjustment | None:
    """The discount a vote was (or is to be) rated with, from its recorded parameters."""
    if not params or params.get("kind") != KIND or not params.get("offset"):
        return None
    return CelebrityOffset(float(params["offset"]))


def _duel(entry: Mapping[str, Any]) -> bool:
    """A duel vote's entry (the fit is over duels; a series round's entry has `photos` instead of left/right)."""
    return not entry.get("gone") and "photos" not in entry


def _relevant(entry: Mapping[str, Any]) -> bool:
    return _duel(entry) and entry["left_celebrity"] != entry["right_celebrity"]


class CelebrityOffsetStore:
    def __init__(self, params: RatingParamsRepository, batches: RatingBatchRepository, env: RatingEnv) -> None:
        self.params = params
        self.batches = batches
        self.env = env

    async def current(self) -> dict[str, Any] | None:
        """The parameters the projector records on its next batch; None while there is no offset."""
        doc = await self.params.get(PARAMS_ID)
        if doc is None or not doc.get("offset"):
            return None
        return {"kind": KIND, "offset": float(doc["offset"])}

    async def _count_new(self, doc: Mapping[str, Any]) -> int | None:
        """Celebrity-vs-other votes applied so far; None when another process counted meanwhile."""
        seq, relevant = int(doc.get("counted_seq", 0)), int(doc.get("relevant_votes_seen", 0))
        while batches := await self.batches.after(seq, limit=200, fields={"entries": 1}):
            relevant += sum(_relevant(e) for b in batches for e in b["entries"])
            seq = int(batches[-1]["_id"])
        if seq == int(doc.get("counted_seq", 0)):
            return relevant
        advanced = await self.params.advance_count(PARAMS_ID, counted_seq=doc.get("counted_seq"), seq=seq,
                                                   seen=relevant, create=not doc)
        return relevant if advanced else None

    async def refit(self, *, min_new_votes: int) -> float | None:
        """Fit again when at least `min_new_votes` celebrity-vs-other votes arrived since the last fit."""
        doc = await self.params.get(PARAMS_ID) or {}
        relevant = await self._count_new(doc)
        if relevant is None or relevant - int(doc.get("relevant_votes", 0)) < min_new_votes:
            return None
        with long_work():
            rows = [
                (str(e["left"]), str(e["right"]), Outcome(e["choice"]), bool(e["left_celebrity"]),
                 bool(e["right_celebrity"]))
                async for b in self.batches.in_order({"entries": 1}) for e in b["entries"]
                if _duel(e) and e["choice"] != Outcome.DRAW.value
            ]
        offset = await asyncio.to_thread(fit_celebrity_offset, rows, self.env)
        await self.params.save(PARAMS_ID, {"offset": offset, "relevant_votes": relevant, "fitted_on": len(rows),
                                           "fitted_at": utcnow()})
        log.info("celebrity_offset.refit", offset=round(offset, 3), votes=len(rows), celebrity_votes=relevant)
        return offset
