"""Operation texts by the sha256 of their text: Apollo's automatic persisted queries and the allow-list.

Document: _id (the lowercase hex sha256 of `text`), text, registered (on the allow-list: added by
`photoduel register-operations` or an admin, not merely sent by a client), source (apq | cli | admin),
created_at.

A process-local LRU of `cache_size` entries sits in front, for the life of the process: a hash names
one text forever, so an entry never goes stale. The one thing that changes, `registered` (false to
true), is re-read from the collection whenever a cached entry says false and the caller needs true.
Misses are not cached: an operation registered by another process is found on its first request here.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from storage.base import Doc, Repository
from storage.clock import utcnow

Source = Literal["apq", "cli", "admin"]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PersistedQuery:
    sha256: str
    text: str
    registered: bool


class HashMismatch(ValueError):
    """The hash sent is not the sha256 of the text sent."""


class PersistedQueryRepository(Repository):
    collection_name = "persisted_queries"

    def __init__(self, db: AsyncDatabase[Doc], *, cache_size: int = 1000) -> None:
        super().__init__(db)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, PersistedQuery] = OrderedDict()

    async def lookup(self, sha256: str, *, registered: bool = False) -> PersistedQuery | None:
        """The operation with this hash; with `registered`, None unless it is on the allow-list."""
        cached = self._cache.get(sha256)
        if cached is not None and (cached.registered or not registered):
            self._cache.move_to_end(sha256)
            return cached
        doc = await self.collection.find_one({"_id": sha256})
        if doc is None:
            return None
        found = self._remember(doc)
        return found if found.registered or not registered else None

    async def register(self, text: str, sha256: str | None = None, *, source: Source,
                       allow: bool = False) -> PersistedQuery:
        """Stores the text under its hash (a repeat changes nothing); `allow` puts it on the allow-list.
        Raises HashMismatch when `sha256` is given and is not the text's."""
        actual = sha256_hex(text)
        if sha256 is not None and sha256.lower() != actual:
            raise HashMismatch(f"the sha256Hash sent is not the sha256 of the query text (it is {actual})")
        update: Doc = {"$setOnInsert": {"text": text, "source": source, "created_at": utcnow()}}
        if allow:
            update["$set"] = {"registered": True}
        else:
            update["$setOnInsert"]["registered"] = False
        doc = await self.collection.find_one_and_update({"_id": actual}, update, upsert=True,
                                                        return_document=ReturnDocument.AFTER)
        assert doc is not None  # an upsert returning the document after it always has one
        return self._remember(doc)

    def _remember(self, doc: Doc) -> PersistedQuery:
        found = PersistedQuery(sha256=doc["_id"], text=doc["text"], registered=bool(doc.get("registered")))
        if self.cache_size:
            self._cache[found.sha256] = found
            self._cache.move_to_end(found.sha256)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found
