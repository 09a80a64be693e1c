"""The vote log and the rating projection.

Votes are appended to `votes` (unique per duel ticket, so a retry cannot count twice). Ratings are a
projection of that log: each vote is applied in one MongoDB transaction that reads both photos,
computes the TrueSkill update, writes both with a version check, and stamps the vote with the next
`applied_seq`. Every application writes the same counter document, so concurrent applications
conflict and retry: the commit order is a total order, recorded in `applied_seq`, and replaying the
log in that order (`rebuild`) reproduces the stored ratings exactly. Within one process an asyncio
lock keeps the retry storm small; across processes the transaction does the work.

Each vote also records what the rating update depended on besides the two ratings: the celebrity
flags and the discount parameters in force, so a replay applies the same discount.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from gaming.duels.records import rating_fields, rating_from_fields
from gaming.ratings import DuelAdjustment, Outcome, Rating, RatingEnv, rate_duel

log = structlog.get_logger(__name__)

COUNTER_ID = "vote_projection"
MAX_TRANSACTION_ATTEMPTS = 200

# The adjustment a vote is rated with, from the parameters recorded on it.
AdjustmentFactory = Callable[[Mapping[str, Any] | None], DuelAdjustment | None]
# The parameters in force now, read inside the vote's transaction.
CurrentAdjustment = Callable[[AsyncClientSession], Awaitable[Mapping[str, Any] | None]]


async def _no_adjustment(session: AsyncClientSession) -> None:
    return None


@dataclass(frozen=True)
class AppliedVote:
    left: dict[str, Any]
    right: dict[str, Any]
    applied_seq: int


def pair_key(a: ObjectId, b: ObjectId) -> str:
    """Order-free key of a pair, so "judged A vs B" also covers B vs A."""
    x, y = sorted((str(a), str(b)))
    return f"{x}:{y}"


def is_celebrity(photo: Mapping[str, Any]) -> bool:
    return bool((photo.get("celebrity") or {}).get("people"))


def _counts(fields: Mapping[str, Any], outcome_for_photo: str) -> dict[str, int]:
    counts = {k: int(fields.get(k, 0)) for k in ("votes", "wins", "losses", "draws")}
    counts["votes"] += 1
    counts[outcome_for_photo] += 1
    return counts


class VoteLog:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: AsyncDatabase[dict[str, Any]],
        env: RatingEnv,
        *,
        adjustment_factory: AdjustmentFactory = lambda params: None,
        current_adjustment: CurrentAdjustment = _no_adjustment,
    ) -> None:
        self.client = client
        self.db = db
        self.votes = db["votes"]
        self.photos = db["photos"]
        self.counters = db["counters"]
        self.env = env
        self.adjustment_factory = adjustment_factory
        self.current_adjustment = current_adjustment
        self._lock = asyncio.Lock()

    async def append(self, ticket: Mapping[str, Any], choice: Outcome) -> tuple[dict[str, Any], bool]:
        """Write the vote once; the same ticket again returns the first vote and False."""
        vote = {
            "_id": ObjectId(), "duel_id": ticket["_id"], "player": ticket["player"],
            "left": ticket["left"], "right": ticket["right"], "choice": choice.value,
            "pair": pair_key(ticket["left"], ticket["right"]), "category": ticket.get("category"),
            "created_at": datetime.now(UTC), "applied_seq": None,
        }
        try:
            await self.votes.insert_one(vote)
            return vote, True
        except DuplicateKeyError:
            first = await self.votes.find_one({"duel_id": ticket["_id"]})
            assert first is not None
            return first, False

    async def apply(self, vote_id: ObjectId) -> AppliedVote | None:
        """Apply one vote to both ratings; None if it was applied already (by us or a recovery)."""
        async with self._lock:
            for attempt in range(MAX_TRANSACTION_ATTEMPTS):
                try:
                    return await self._apply_once(vote_id)
                except OperationFailure as exc:
                    if not exc.has_error_label("TransientTransactionError") and exc.code != 112:
                        raise
                except _VersionConflict:
                    pass
                await asyncio.sleep(random.uniform(0, min(0.2, 0.002 * 2 ** min(attempt, 7))))
        raise RuntimeError(f"vote {vote_id} could not be applied after {MAX_TRANSACTION_ATTEMPTS} attempts")

    async def _apply_once(self, vote_id: ObjectId) -> AppliedVote | None:
        async with self.client.start_session() as session, await session.start_transaction():
            vote = await self.votes.find_one({"_id": vote_id}, session=session)
            if vote is None or vote.get("applied_seq") is not None:
                return None
            left = await self.photos.find_one({"_id": vote["left"]}, session=session)
            right = await self.photos.find_one({"_id": vote["right"]}, session=session)
            if left is None or right is None:
                # A photo was deleted: the vote stays in the log, marked as not rated.
                await self.votes.update_one({"_id": vote_id}, {"$set": {"applied_seq": -1}}, session=session)
                return None
            params = await self.current_adjustment(session)
            flags = {"left_celebrity": is_celebrity(left), "right_celebrity": is_celebrity(right)}
            new_left, new_right = self.rate(left["rating"], right["rating"], Outcome(vote["choice"]), flags, params)
            left_fields = rating_fields(new_left, self.env, _counts(left["rating"], _result(vote["choice"], "left")))
            right_fields = rating_fields(new_right, self.env,
                                         _counts(right["rating"], _result(vote["choice"], "right")))
            for doc, fields in ((left, left_fields), (right, right_fields)):
                result = await self.photos.update_one(
                    {"_id": doc["_id"], "rating_version": doc.get("rating_version", 0)},
                    {"$set": {"rating": fields}, "$inc": {"rating_version": 1}}, session=session,
                )
                if result.modified_count != 1:
                    raise _VersionConflict
            counter = await self.counters.find_one_and_update(
                {"_id": COUNTER_ID}, {"$inc": {"seq": 1}}, upsert=True, session=session,
                return_document=ReturnDocument.AFTER,
            )
            seq = int(counter["seq"])
            await self.votes.update_one(
                {"_id": vote_id},
                {"$set": {"applied_seq": seq, "adjustment": params, **flags, "applied_at": datetime.now(UTC)}},
                session=session,
            )
        return AppliedVote(left={**left, "rating": left_fields}, right={**right, "rating": right_fields},
                           applied_seq=seq)

    def rate(
        self, left: Mapping[str, Any], right: Mapping[str, Any], outcome: Outcome, flags: Mapping[str, bool],
        params: Mapping[str, Any] | None,
    ) -> tuple[Rating, Rating]:
        return rate_duel(
            rating_from_fields(left), rating_from_fields(right), outcome, self.env,
            left_celebrity=flags["left_celebrity"], right_celebrity=flags["right_celebrity"],
            adjustment=self.adjustment_factory(params),
        )

    async def apply_pending(self, *, older_than_seconds: float = 0.0) -> int:
        """Recovery: apply votes written but never applied (the process died in between)."""
        cutoff = datetime.now(UTC).timestamp() - older_than_seconds
        applied = 0
        async for vote in self.votes.find({"applied_seq": None}).sort("created_at", 1):
            if vote["created_at"].timestamp() <= cutoff and await self.apply(vote["_id"]) is not None:
                applied += 1
        return applied

    async def replay(self) -> dict[ObjectId, dict[str, Any]]:
        """The ratings the log implies: priors from each photo's stored quality, then every applied
        vote in `applied_seq` order with the flags and parameters recorded on it. Pure reading."""
        from gaming.duels.records import initial_rating_fields

        ratings: dict[ObjectId, dict[str, Any]] = {}
        async for photo in self.photos.find({"rating": {"$exists": True}}, {"quality": 1}):
            ratings[photo["_id"]] = initial_rating_fields((photo.get("quality") or {}).get("score"), self.env)
        async for vote in self.votes.find({"applied_seq": {"$gt": 0}}).sort("applied_seq", 1):
            left, right = ratings.get(vote["left"]), ratings.get(vote["right"])
            if left is None or right is None:
                continue
            flags = {"left_celebrity": bool(vote.get("left_celebrity")),
                     "right_celebrity": bool(vote.get("right_celebrity"))}
            new_left, new_right = self.rate(left, right, Outcome(vote["choice"]), flags, vote.get("adjustment"))
            ratings[vote["left"]] = rating_fields(new_left, self.env, _counts(left, _result(vote["choice"], "left")))
            ratings[vote["right"]] = rating_fields(new_right, self.env,
                                                   _counts(right, _result(vote["choice"], "right")))
        return ratings

    async def rebuild(self) -> int:
        """`photoduel ratings rebuild`: write the replayed ratings back; returns photos changed."""
        changed = 0
        for photo_id, fields in (await self.replay()).items():
            result = await self.photos.update_one(
                {"_id": photo_id, "rating": {"$ne": fields}},
                {"$set": {"rating": fields}, "$inc": {"rating_version": 1}},
            )
            changed += result.modified_count
        return changed


def _result(choice: str, side: str) -> str:
    if choice == Outcome.DRAW.value:
        return "draws"
    return "wins" if choice == side.upper() else "losses"


class _VersionConflict(PyMongoError):
    """Another writer changed a photo's rating between read and write inside our transaction."""
