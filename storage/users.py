"""Users, keyed by their Firebase uid; created the first time a verified token is seen.

Document shape: _id (the uid), email, name (from the token), admin, created_at, last_seen_at, muted [kind],
display_name (the public name the user chose) and display_name_key (its normalised form, unique across
users by the index `display_name_unique` in `storage.mongo`: the database, not a read before the write,
decides who gets a name two users ask for at once), erasure {at, by, anonymous} (the account is being erased:
everything else is gone, and `upsert_seen` refuses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from storage.base import Doc, Repository
from storage.clock import utcnow


class AccountErased(PermissionError):
    """The account is being erased: its requests are refused until nothing of it is left."""


class DisplayNameTaken(ValueError):
    """Another user holds the name (compared by its normalised key)."""


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
        # An account being erased does not match, so the upsert's insert meets its _id: a duplicate key.
        live = {"_id": uid, "erasure": {"$exists": False}}
        try:
            result = await self.collection.update_one(live, update, upsert=True)
        except DuplicateKeyError:
            await self._refuse_erased(uid)
            result = await self.collection.update_one(live, update, upsert=True)
        return result.upserted_id is not None

    async def _refuse_erased(self, uid: str) -> None:
        if await self.collection.count_documents({"_id": uid, "erasure": {"$exists": True}}, limit=1):
            raise AccountErased(uid)

    # --- an account's erasure (`photos.account_erasure`) -------------------------------------------------
    async def mark_erased(self, uid: str, *, by: str, anonymous: str, created_before: datetime) -> Doc | None:
        """Mark the account as being erased and drop its profile at once (email, names, preferences). The
        first mark stands: a repeat returns it, with the random id chosen then. None for an unknown uid,
        and for an account created after `created_before` (the erasure was asked for before it existed: a
        new account under the uid of one erased already)."""
        doc = await self.collection.find_one_and_update(
            {"_id": uid, "erasure": {"$exists": False}, "created_at": {"$lte": created_before}},
            [{"$project": {"_id": 1}},
             {"$set": {"erasure": {"at": utcnow(), "by": {"$literal": by}, "anonymous": {"$literal": anonymous}}}}],
            return_document=ReturnDocument.AFTER)
        return doc or await self.erasure_of(uid)

    async def erasure_of(self, uid: str) -> Doc | None:
        """The account's document while it is being erased; None otherwise."""
        return await self.collection.find_one({"_id": uid, "erasure": {"$exists": True}})

    async def forget_erased(self, uid: str) -> bool:
        """The erasure's last step: no document is left. A later sign-in with the uid starts a new account."""
        result = await self.collection.delete_one({"_id": uid, "erasure": {"$exists": True}})
        return result.deleted_count == 1

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

    # --- the public profile ---------------------------------------------------------------------------
    async def set_display_name(self, uid: str, name: str, key: str) -> Doc:
        """Store the name and its key; raises DisplayNameTaken when another user's key is the same.

        A duplicate key here is either the name's unique index (taken) or two first writes of a new user
        racing on `_id` (the loser retries as an update): another user holding the key tells which."""
        update = {"$set": {"display_name": name, "display_name_key": key},
                  "$setOnInsert": {"created_at": utcnow(), "muted": []}}
        for _ in range(3):
            try:
                doc = await self.collection.find_one_and_update({"_id": uid}, update, upsert=True,
                                                                return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                if await self.collection.count_documents({"display_name_key": key, "_id": {"$ne": uid}}, limit=1):
                    raise DisplayNameTaken(name) from None
                continue
            doc = doc or await self.get(uid)  # an upsert's losing side has been seen to get None back
            if doc is not None:
                return doc
        raise DisplayNameTaken(name)  # pragma: no cover - a duplicate key three times and no holder found

    async def display_names(self, uids: Sequence[str]) -> dict[str, str]:
        """uid -> display name, for those of `uids` that chose one."""
        cursor = self.collection.find({"_id": {"$in": list(set(uids))}}, {"display_name": 1})
        return {d["_id"]: d["display_name"] async for d in cursor if d.get("display_name")}
