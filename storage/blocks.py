"""Who each user blocked (`blocks`): one document per blocker, `_id` = the blocker's uid.

Document: _id, blocked [uid, oldest first], updated_at.

One document per blocker because every duel and every list a signed-in player reads needs the whole
list: one read by key. The list is capped (`block`'s `cap`) so the exclusions stay a short `$nin`; the
cap is part of the conditional write, so concurrent blocks cannot pass it together.
"""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from storage.base import Repository
from storage.clock import utcnow

ATTEMPTS = 3


class BlockLimitReached(ValueError):
    """The blocker's list is full."""


class BlockRepository(Repository):
    collection_name = "blocks"

    async def block(self, blocker: str, blocked: str, *, cap: int) -> bool:
        """Add `blocked` to the blocker's list: True when added, False when it was there already. Raises
        BlockLimitReached when the list holds `cap` users."""
        for _ in range(ATTEMPTS):
            try:
                result = await self.collection.update_one(
                    {"_id": blocker, "blocked": {"$ne": blocked}, f"blocked.{cap - 1}": {"$exists": False}},
                    {"$push": {"blocked": blocked}, "$set": {"updated_at": utcnow()}}, upsert=True)
            except DuplicateKeyError:  # the document exists and the filter did not match it: which part?
                current = await self.blocked_by(blocker)
                if blocked in current:
                    return False
                if len(current) >= cap:
                    raise BlockLimitReached(f"at most {cap} blocked users") from None
                continue  # two first blocks raced on the new document: the loser tries again
            return bool(result.modified_count or result.upserted_id is not None)
        return blocked in await self.blocked_by(blocker)

    async def unblock(self, blocker: str, blocked: str) -> bool:
        """True when `blocked` was in the list."""
        result = await self.collection.update_one({"_id": blocker, "blocked": blocked},
                                                  {"$pull": {"blocked": blocked}, "$set": {"updated_at": utcnow()}})
        return result.modified_count == 1

    async def blocked_by(self, blocker: str) -> list[str]:
        """The users this one blocked, oldest first."""
        doc = await self.collection.find_one({"_id": blocker}, {"blocked": 1})
        return list((doc or {}).get("blocked") or [])

    async def forget(self, uid: str) -> int:
        """An erased account: its own list, and its place in everyone else's (index `blocked`). Safe to
        repeat; how many documents changed."""
        own = (await self.collection.delete_one({"_id": uid})).deleted_count
        others = await self.collection.update_many({"blocked": uid}, {"$pull": {"blocked": uid}})
        return own + others.modified_count
