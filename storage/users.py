"""Users, keyed by their Firebase uid; created the first time a verified token is seen."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import Repository


class UserRepository(Repository):
    collection_name = "users"

    async def upsert_seen(self, uid: str, *, email: str | None, name: str | None, admin: bool) -> bool:
        """Create the user or refresh what the token says; True when this call created the document.

        Two upserts of a new `_id` may race: both miss, both insert, one gets a duplicate key error (on
        MongoDB and on the embedded server alike). The loser's retry finds the document and updates it.
        No document comes back: `find_one_and_update(upsert=True)` has been seen to return None for the
        losing side of such a race, and no caller needs the document.
        """
        now = datetime.now(UTC)
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
