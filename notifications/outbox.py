"""The notification outbox: every event a user should hear about, written once, delivered later.

Why an outbox: the event is recorded in the same place as the fact it announces (MongoDB), with an
idempotency key, so a retried ingest job or a crashed dispatcher never announces twice nor loses an
announcement. The in-app list reads these documents; push delivery (FCM) works through `push.state`.

Document: {_id, key (unique), user, kind, title, body, data {photoId, deepLink, ...}, created_at,
read_at, push {state: pending|sent|skipped|failed|muted, attempts, next_at, deliveries [...]}}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.clock import utcnow
from storage.mongo import ASC, DESC, IndexSpec

TAG_SUGGESTIONS = "TAG_SUGGESTIONS"
FEATURED = "FEATURED"
KINDS = (TAG_SUGGESTIONS, FEATURED)

OUTBOX_INDEXES = [
    IndexSpec("outbox", [("key", ASC)], "key_unique", {"unique": True}),
    IndexSpec("outbox", [("user", ASC), ("created_at", DESC), ("_id", DESC)], "user_created"),
    IndexSpec("outbox", [("push.state", ASC), ("push.next_at", ASC)], "push_due"),
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
            "push": {"state": "pending", "attempts": 0, "next_at": now, "deliveries": []},
        }
        try:
            await self.collection.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            existing = await self.collection.find_one({"key": key})
            assert existing is not None
            return existing, False


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
