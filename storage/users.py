"""Users, keyed by their Firebase uid; created the first time a verified token is seen."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument

from storage.base import Doc, Repository


class UserRepository(Repository):
    collection_name = "users"

    async def upsert_seen(self, uid: str, *, email: str | None, name: str | None, admin: bool) -> Doc:
        now = datetime.now(UTC)
        update: dict[str, Any] = {
            "$set": {"last_seen_at": now, "admin": admin, **({"email": email} if email else {}),
                     **({"name": name} if name else {})},
            "$setOnInsert": {"created_at": now, "muted": []},
        }
        doc = await self.collection.find_one_and_update(
            {"_id": uid}, update, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None
        return doc
