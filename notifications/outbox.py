"""The notification outbox: every event a user should hear about, written once, delivered later.

Why an outbox: the event is recorded in the same place as the fact it announces (MongoDB), with an
idempotency key, so a retried ingest job or a crashed dispatcher never announces twice nor loses an
announcement. The in-app list reads these documents; push delivery (FCM) works through `push.state`.

Document: {_id, key (unique), user, kind, title, body, data {photoId, deepLink, ...}, created_at,
read_at, push {state: pending|sent|skipped|failed|muted, attempts, next_at, deliveries [...]}}.

`Outbox` is the only code that reads or writes the collection: the record itself, the in-app list,
the push dispatcher's claims and outcomes (`notifications.dispatcher` decides, this writes), and the
queries that follow new records for live subscriptions (`notifications.follower`): a change stream of
inserts, or reads by `(created_at, _id)` where the server has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.clock import utcnow
from storage.leases import Grant, LeaseFields
from storage.mongo import ASC, DESC, IndexSpec
from storage.pagination import Page, SortKey, read_page

TAG_SUGGESTIONS = "TAG_SUGGESTIONS"
FEATURED = "FEATURED"
BADGE = "BADGE"  # a player progress badge earned (`notifications.progress`)
DAILY_GOAL = "DAILY_GOAL"  # a player's daily vote goal reached
MODERATION = "MODERATION"  # a photo held back for review, or a moderator's decision on it (`notifications.moderation`)
KINDS = (TAG_SUGGESTIONS, FEATURED, BADGE, DAILY_GOAL, MODERATION)

# push.state of a record; the dispatcher decides between them.
PENDING, SENT, SKIPPED, FAILED, MUTED = "pending", "sent", "skipped", "failed", "muted"
PUSH_LEASE = LeaseFields.under("push")
NEWEST_FIRST = SortKey((("created_at", -1), ("_id", -1)))

OUTBOX_INDEXES = [
    IndexSpec("outbox", [("key", ASC)], "key_unique", {"unique": True}),
    IndexSpec("outbox", [("user", ASC), ("created_at", DESC), ("_id", DESC)], "user_created"),
    IndexSpec("outbox", [("push.state", ASC), ("push.next_at", ASC)], "push_due"),
    IndexSpec("outbox", [("created_at", ASC), ("_id", ASC)], "created"),  # following by polling
]


class Outbox:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db["outbox"]

    async def record(
        self, *, key: str, user: str, kind: str, title: str, body: str, data: Mapping[str, str]
    ) -> tuple[dict[str, Any], bool]:
        """Write the event once; the same key again returns the first record and False."""
        now = utcnow()
        doc: dict[str, Any] = {
            "key": key, "user": user, "kind": kind, "title": title, "body": body, "data": dict(data),
            "created_at": now, "read_at": None,
            "push": {"state": PENDING, "attempts": 0, "next_at": now, "deliveries": []},
        }
        try:
            await self.collection.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            existing = await self.collection.find_one({"key": key})
            assert existing is not None
            return existing, False

    # --- the in-app list ------------------------------------------------------------------------
    async def page(self, user: str, *, first: int, after: str | None) -> Page:
        """The user's records, newest first. Raises `storage.pagination.InvalidCursor`."""
        return await read_page(self.collection, {"user": user}, NEWEST_FIRST, first=first, after=after)

    async def owned(self, user: str, ids: Sequence[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
        """The user's own records among `ids`, in one read; another user's read as unknown."""
        return {d["_id"]: d async for d in self.collection.find({"_id": {"$in": list(ids)}, "user": user})}

    async def mark_read(self, user: str, ids: Sequence[ObjectId]) -> int:
        """Mark the user's own unread records read; how many changed (other users' ids match nothing)."""
        result = await self.collection.update_many(
            {"_id": {"$in": list(ids)}, "user": user, "read_at": None}, {"$set": {"read_at": utcnow()}},
        )
        return result.modified_count

    # --- push delivery --------------------------------------------------------------------------
    async def claim_due(self, grant: Grant, now: datetime) -> dict[str, Any] | None:
        """Lease the most overdue pending record (`push_due` index) to `grant`, counting the attempt; it
        is due again at the grant's expiry, so a dead claimant's record comes back by itself."""
        return await self.collection.find_one_and_update(
            {"push.state": PENDING, "push.next_at": {"$lte": now}},
            {"$set": {**PUSH_LEASE.grant(grant), "push.next_at": grant.expires}, "$inc": {"push.attempts": 1}},
            sort=[("push.next_at", 1)],
            return_document=ReturnDocument.AFTER,
        )

    async def record_deliveries(
        self, record_id: ObjectId, entries: Sequence[Mapping[str, Any]], sent_to: Sequence[str], *, keep: int
    ) -> None:
        """Append what FCM answered (the last `keep` kept) and the devices reached, lease or not."""
        update: dict[str, Any] = {"$push": {"push.deliveries": {"$each": list(entries), "$slice": -keep}}}
        if sent_to:
            update["$addToSet"] = {"push.sent_to": {"$each": list(sent_to)}}
        await self.collection.update_one({"_id": record_id}, update)

    async def settle(self, record_id: ObjectId, owner: str, token: str, fields: Mapping[str, Any]) -> bool:
        """Set `fields` and end the lease, only while this grant still holds the pending record; False
        when another dispatcher took it over meanwhile (its outcome stands)."""
        result = await self.collection.update_one(
            {"_id": record_id, "push.state": PENDING, **PUSH_LEASE.held(owner, token)},
            {"$set": dict(fields), "$unset": PUSH_LEASE.cleared()},
        )
        return result.modified_count == 1

    # --- following new records ------------------------------------------------------------------
    async def watch_inserts(
        self, *, resume_after: Mapping[str, Any] | None = None, max_await_seconds: float = 1.0
    ) -> AsyncChangeStream[dict[str, Any]]:
        """A change stream of inserts, from now or after `resume_after` (a resume token). Raises
        `OperationFailure` where the server has no change streams (a standalone mongod) or no longer has
        the token's history."""
        return await self.collection.watch(
            [{"$match": {"operationType": "insert"}}], full_document="default", resume_after=resume_after,
            max_await_time_ms=round(max_await_seconds * 1000),
        )

    async def created_after(self, created_at: datetime, record_id: ObjectId, *, limit: int) -> list[dict[str, Any]]:
        """Records after the position `(created_at, _id)`, in that order (the `created` index).

        Two reads rather than one `$or`: the rest of the position's own moment, then what came after it.
        Each is a range on the index; the embedded server answers an `$or` by scanning the collection."""
        order = [("created_at", ASC), ("_id", ASC)]
        same_moment = await self.collection.find(
            {"created_at": created_at, "_id": {"$gt": record_id}}, sort=order, limit=limit).to_list()
        if len(same_moment) >= limit:
            return same_moment
        later = await self.collection.find(
            {"created_at": {"$gt": created_at}}, sort=order, limit=limit - len(same_moment)).to_list()
        return same_moment + later

    # --- deletion and erasure -------------------------------------------------------------------
    async def forget_photos(self, owner: str, photo_ids: Sequence[ObjectId]) -> int:
        """Every record about these photos of one owner (whatever its kind: each names its photo in
        `data.photoId`) goes, read or not, pushed or not; how many. Within the owner's records (index
        `user_created`)."""
        if not photo_ids:
            return 0
        about = {"$in": [str(i) for i in photo_ids]}
        return (await self.collection.delete_many({"user": owner, "data.photoId": about})).deleted_count

    async def forget_user(self, user: str) -> int:
        """Every record of an erased account; how many."""
        return (await self.collection.delete_many({"user": user})).deleted_count


async def announce_suggestions_ready(
    outbox: Outbox, photo: Mapping[str, Any], count: int
) -> tuple[dict[str, Any], bool]:
    """"N tag suggestions for your photo", once per photo, to its owner."""
    photo_id = str(photo["_id"])
    title = photo.get("title") or "your photo"
    noun = "suggestion" if count == 1 else "suggestions"
    return await outbox.record(
        key=f"suggestions:{photo_id}", user=photo["owner"], kind=TAG_SUGGESTIONS,
        title="New tag suggestions", body=f"{count} tag {noun} for {title}",
        data={"photoId": photo_id, "kind": TAG_SUGGESTIONS, "count": str(count),
              "deepLink": f"photoduel://photos/{photo_id}"},
    )


async def announce_featured(outbox: Outbox, photo: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """"Your photo is featured", once per photo, to its owner."""
    photo_id = str(photo["_id"])
    title = photo.get("title") or "Your photo"
    category = photo.get("category")
    where = f" in {category}" if category else ""
    return await outbox.record(
        key=f"featured:{photo_id}", user=photo["owner"], kind=FEATURED,
        title="Featured!", body=f"{title} is now featured{where}",
        data={"photoId": photo_id, "kind": FEATURED, "deepLink": f"photoduel://photos/{photo_id}"},
    )
