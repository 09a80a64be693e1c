"""Create the user document on first sight, without a database write on every request.

A new user's app typically sends several requests at once (a feed, a profile, a duel). They all miss
the cache together; one write per uid is made, and the other requests of that moment await it.

Lifetime: per process, an entry for `refresh_seconds` (300 s; the document is upserted again after
that), all of them dropped at `capacity`. Nothing another process needs: each process upserts on its
own first sight of a user, and the upsert is idempotent, so a user seen by two API processes costs two
writes, not a wrong document.

An account being erased (`storage.users.AccountErased`) is refused here: the upsert finds its mark. The
process that took the erasure forgets the uid at once (`forget`); the others refuse it from their next
look, within `refresh_seconds`, which is why the erasure sweeps once more after that time
(`photos.account_erasure`). A refusal is remembered as long as a sighting, so an erased account's
requests cost no write each.
"""

from __future__ import annotations

import asyncio
import time

from accounts.tokens import Principal
from storage.users import AccountErased, UserRepository

__all__ = ["AccountErased", "SeenUsers"]

_Key = tuple[str, bool]


class SeenUsers:
    def __init__(self, users: UserRepository, *, refresh_seconds: float = 300.0, capacity: int = 50_000) -> None:
        self._users = users
        self._refresh = refresh_seconds
        self._capacity = capacity
        self._last: dict[_Key, float] = {}
        self._erased: dict[str, float] = {}
        self._inflight: dict[_Key, asyncio.Task[None]] = {}

    async def seen(self, principal: Principal) -> None:
        """Raises AccountErased for an account being erased."""
        if principal.uid is None:
            return
        if time.monotonic() - self._erased.get(principal.uid, -1e18) < self._refresh:
            raise AccountErased(principal.uid)
        key = (principal.uid, principal.admin)
        if time.monotonic() - self._last.get(key, -1e18) < self._refresh:
            return
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._write(key, principal))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: one caller going away (client disconnect) does not cancel the write the others await.
        # A failed write fails every request that awaited it; the next request tries again.
        await asyncio.shield(task)

    def forget(self, uid: str) -> None:
        """The account is being erased: refuse it from now on in this process, without waiting for the
        next look at its document."""
        for admin in (False, True):
            self._last.pop((uid, admin), None)
        self._remember_erased(uid)

    async def _write(self, key: _Key, principal: Principal) -> None:
        claims = principal.claims
        try:
            await self._users.upsert_seen(key[0], email=claims.get("email"), name=claims.get("name"), admin=key[1])
        except AccountErased:
            self._remember_erased(key[0])
            raise
        if len(self._last) >= self._capacity:
            self._last.clear()
        self._last[key] = time.monotonic()

    def _remember_erased(self, uid: str) -> None:
        if len(self._erased) >= self._capacity:
            self._erased.clear()
        self._erased[uid] = time.monotonic()

    def _finished(self, key: _Key, task: asyncio.Task[None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, so a write every caller abandoned is not logged as lost
