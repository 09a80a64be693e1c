"""Create the user document on first sight, without a database write on every request."""

from __future__ import annotations

import time

from api.auth import Principal
from storage.users import UserRepository


class SeenUsers:
    def __init__(self, users: UserRepository, *, refresh_seconds: float = 300.0, capacity: int = 50_000) -> None:
        self._users = users
        self._refresh = refresh_seconds
        self._capacity = capacity
        self._last: dict[tuple[str, bool], float] = {}

    async def seen(self, principal: Principal) -> None:
        if principal.uid is None:
            return
        key = (principal.uid, principal.admin)
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self._refresh:
            return
        claims = principal.claims
        await self._users.upsert_seen(principal.uid, email=claims.get("email"), name=claims.get("name"),
                                      admin=principal.admin)
        if len(self._last) >= self._capacity:
            self._last.clear()
        self._last[key] = now
