"""Users, keyed by their Firebase uid; created the first time a verified token is seen."""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import Repository
from storage.clock import utcnow


class UserRepository(Repository):
    collection_name = "users"

    async def upsert_seen(self, uid: str, *, email: str | None, name: str | None, admin: bool) -> bool:
        """Create the user or refresh what the token says; True when this call created the document.

        Two upserts of a new `_id` may race: both miss, both insert, one gets a duplicate key error (on
        MongoDB and on the embedded server alike). The loser's retry finds the document and updates it.
        No document comes back: `find_one_and_update(upsert=True)` has been seen to return None for the
        losing side of such a race, and no caller needs the document.
        """
        now = utcnow()
        update: dict[str, Any] = {
            "$set": {"last_seen_at": now, "admin": admin, **({"email": email} if email else {}),
                     **({"name": name} if name else {})},
            "$setOnInsert": {"created_at": now, "muted": []},
        }
        try:
            result = await self.collection.update_one({"_id": uid}, update, upsert=True)
        except DuplicateKeyError:
            result = await self.collection.update_one({"_id": uid}, update, upsert=True)
        return result.upserted_id is not None

    # --- notification preferences (`muted: [kind, ...]`, read by push delivery) ------------------------
    async def muted(self, uid: str) -> set[str]:
        doc = await self.collection.find_one({"_id": uid}, {"muted": 1})
        return set((doc or {}).get("muted") or [])

    async def is_muted(self, uid: str, kind: str) -> bool:
        return await self.collection.count_documents({"_id": uid, "muted": kind}, limit=1) > 0

    async def set_muted(self, uid: str, kind: str, muted: bool) -> None:
        """Idempotent. Upserts: a preference must not be lost if it arrives before the user's first sign-in
        creates the document. Two first writes for one user race on _id: the loser retries as an update."""
        change: dict[str, Any] = {"$addToSet": {"muted": kind}} if muted else {"$pull": {"muted": kind}}
        update = {**change, "$setOnInsert": {"created_at": utcnow()}}
        try:
            await self.collection.update_one({"_id": uid}, update, upsert=True)
        except DuplicateKeyError:
            await self.collection.update_one({"_id": uid}, update, upsert=True)
