"""Screening decisions about voters (`voter_flags`): who was flagged as a ballot stuffer, why, and what
an admin decided. One document per voter, ``_id`` = the player's uid.

Document: status (``flagged`` by the detector, ``confirmed`` or ``cleared`` by an admin), findings (the
tests that crossed: test, statistic, threshold, votes, detail), detector (the detector version),
votes_screened, flagged_at, decided_by / decided_at / note (the admin's decision), since (votes cast
before it were already judged: after a clear, the detector looks only at newer votes), and history
(every change, appended). Flagged and confirmed voters' votes are weighed as excluded by the rating
projector, which reads :meth:`VoterFlagRepository.excluded` once per batch and records each vote's
weight with it; a clear or a confirmation reaches votes already applied through `ratings rebuild`.

The detector's write is conditional (only a voter with no document, or a cleared one whose new votes
crossed again), so a chore on several workers, or a race with an admin, never undoes a decision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from storage.base import Doc, Repository
from storage.clock import utcnow

FLAGGED, CONFIRMED, CLEARED = "flagged", "confirmed", "cleared"
EXCLUDED_STATUSES = (FLAGGED, CONFIRMED)


class VoterFlagRepository(Repository):
    collection_name = "voter_flags"

    async def flag(self, player: str, *, findings: Sequence[Mapping[str, Any]], detector: str, votes: int,
                   cleared_at: datetime | None) -> bool:
        """Record the detector's flag; False when a decision exists that it must not overwrite. A voter
        with no document is inserted; a cleared one is flagged again only if still cleared at
        `cleared_at` (the clear the detector looked from), so a newer admin decision stands."""
        now = utcnow()
        fields = {"status": FLAGGED, "findings": list(findings), "detector": detector, "votes_screened": votes,
                  "flagged_at": now}
        entry = {"status": FLAGGED, "at": now, "by": detector, "findings": list(findings)}
        if cleared_at is None:
            try:
                await self.collection.insert_one({"_id": player, **fields, "history": [entry]})
            except DuplicateKeyError:
                return False
            return True
        result = await self.collection.update_one({"_id": player, "status": CLEARED, "decided_at": cleared_at},
                                                  {"$set": fields, "$push": {"history": entry}})
        return bool(result.modified_count)

    async def decide(self, player: str, status: str, *, by: str, note: str | None = None) -> Doc | None:
        """An admin's decision (`confirmed` or `cleared`) on a flagged voter; None when there is no flag."""
        if status not in (CONFIRMED, CLEARED):
            raise ValueError(f"an admin confirms or clears a flag, not {status!r}")
        now = utcnow()
        return await self.collection.find_one_and_update(
            {"_id": player},
            {"$set": {"status": status, "decided_by": by, "decided_at": now, "note": note},
             "$push": {"history": {"status": status, "at": now, "by": by, "note": note}}},
            return_document=ReturnDocument.AFTER)

    async def get(self, player: str) -> Doc | None:
        return await self.collection.find_one({"_id": player})

    async def statuses(self, players: list[str]) -> dict[str, Doc]:
        """The decisions about these players (for the chore: who not to screen, where to start)."""
        if not players:
            return {}
        cursor = self.collection.find({"_id": {"$in": players}}, {"status": 1, "decided_at": 1})
        return {d["_id"]: d async for d in cursor}

    async def excluded(self) -> dict[str, str]:
        """Every voter whose votes are left out now, with the status: what the projector weighs by."""
        cursor = self.collection.find({"status": {"$in": list(EXCLUDED_STATUSES)}}, {"status": 1})
        return {d["_id"]: d["status"] async for d in cursor}

    async def listing(self, status: str | None = None, *, limit: int = 100) -> list[Doc]:
        query = {"status": status} if status else {}
        return await self.collection.find(query, {"history": 0}).sort("flagged_at", -1).limit(limit).to_list(None)

    async def anonymise(self, player: str, anonymous: str) -> None:
        """An erased account's flag moves to the random id its votes got, reduced to its status: a later
        `ratings rebuild` must leave out (or count) those votes as it did, but the findings, notes and
        history about the person go. Decisions the account made as an admin keep no uid either."""
        doc = await self.collection.find_one({"_id": player}, {"status": 1})
        if doc is not None:
            with contextlib.suppress(DuplicateKeyError):  # a repeat after a crash between the two writes
                await self.collection.insert_one({"_id": anonymous, "status": doc["status"], "anonymised_at": utcnow()})
            await self.collection.delete_one({"_id": player})
        await self.collection.update_many({"decided_by": player}, {"$set": {"decided_by": anonymous}})
        await self.collection.update_many({"history.by": player}, {"$set": {"history.$[mine].by": anonymous}},
                                          array_filters=[{"mine.by": player}])

