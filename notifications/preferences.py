"""Per-user notification preferences: which kinds of notification are muted.

Muting is about push: a muted kind never makes the phone buzz. The event is still recorded in the
outbox and listed in the in-app `notifications` list (and sent to open `notificationAdded`
subscriptions, which only exist while the user has the app open), so nothing the user asked about
disappears. The dispatcher reads the preference when it delivers, not when the event is written, so
muting also silences what is still waiting for delivery.

Stored on the user document (`muted: [kind, ...]`, created empty by `UserRepository.upsert_seen`).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from notifications.outbox import KINDS
from storage.clock import utcnow


class UnknownKind(ValueError):
    pass


def _checked(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownKind(f"unknown notification kind {kind!r}; known: {', '.join(KINDS)}")
    return kind


class Preferences:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.users = db["users"]

    async def muted(self, user: str) -> list[str]:
        doc = await self.users.find_one({"_id": user}, {"muted": 1})
        return [k for k in KINDS if k in set((doc or {}).get("muted") or [])]

    async def is_muted(self, user: str, kind: str) -> bool:
        return await self.users.count_documents({"_id": user, "muted": kind}, limit=1) > 0

    async def mute(self, user: str, kind: str) -> list[str]:
        """Idempotent; returns the muted kinds after the change."""
        return await self._update(user, {"$addToSet": {"muted": _checked(kind)}})

    async def unmute(self, user: str, kind: str) -> list[str]:
        return await self._update(user, {"$pull": {"muted": _checked(kind)}})

    async def _update(self, user: str, change: dict[str, Any]) -> list[str]:
        # Upsert: a user is normally created on first sight of their token, but a preference must not
        # be lost if it arrives first. `created_at` is what `upsert_seen` would have set.
        # Two first writes for one user (this and the sign-in's) race on _id: the loser retries as an
        # update. The embedded server has been seen to return no document for an upsert under such a
        # race, so the result is read back rather than trusted.
        for attempt in range(2):
            try:
                await self.users.update_one(
                    {"_id": user}, {**change, "$setOnInsert": {"created_at": utcnow()}}, upsert=True)
                break
            except DuplicateKeyError:
                if attempt:
                    raise
        return await self.muted(user)
