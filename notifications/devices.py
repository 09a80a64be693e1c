"""The devices a user receives push notifications on: one document per FCM registration token.

Why the token is the key: a registration token identifies one app install on one device, not a user.
When someone signs out and another person signs in on the same phone, the app registers the same
token again, and the token must follow the person now holding the phone (the last to register it),
never buzz for both.

Why "oldest dropped" at the cap (settings.max_devices_per_user): tokens go stale silently (app
reinstalled, phone wiped, token rotated by FCM) and clients rarely unregister, so a hard error would
lock out the user's new phone because of phones they no longer own. The app re-registers on every
start, which refreshes `updated_at`, so the device dropped is the one not seen the longest.

Document: {_id, token (unique), user, platform (IOS|ANDROID|WEB), created_at (registered by this
user), updated_at (last registration)}.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.clock import utcnow
from storage.mongo import ASC, DESC, IndexSpec

log = structlog.get_logger(__name__)

PLATFORMS = ("IOS", "ANDROID", "WEB")
MAX_TOKEN_CHARS = 4096

DEVICE_INDEXES = [
    IndexSpec("devices", [("token", ASC)], "token_unique", {"unique": True}),
    IndexSpec("devices", [("user", ASC), ("updated_at", DESC)], "user_updated"),
]


class InvalidDevice(ValueError):
    """The token or platform cannot be a device; the message says which, for the client."""


def token_fingerprint(token: str) -> str:
    """Registration tokens are credentials for one device: logs and delivery records keep this hash
    instead, the same everywhere, so a delivery record and the log lines of its send can be joined."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def validate(token: str, platform: str) -> str:
    """The token as stored (surrounding blanks removed), or InvalidDevice."""
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_CHARS or any(ch.isspace() for ch in token):
        raise InvalidDevice(f"token must be 1 to {MAX_TOKEN_CHARS} characters without spaces")
    if platform not in PLATFORMS:
        raise InvalidDevice(f"platform must be one of {', '.join(PLATFORMS)}")
    return token


@dataclass(frozen=True)
class Device:
    token: str
    user: str
    platform: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Device:
        return cls(token=doc["token"], user=doc["user"], platform=doc["platform"],
                   created_at=doc["created_at"], updated_at=doc["updated_at"])


class DeviceRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db["devices"]

    async def register(self, user: str, token: str, platform: str, *, max_devices: int) -> Device:
        """Add or refresh `token` for `user`; it moves here if another user held it. Keeps the newest
        `max_devices` of the user's devices and drops the rest."""
        token = validate(token, platform)
        now = utcnow()
        # Same user again (the app registers on every start): refresh, keep created_at.
        doc = await self.collection.find_one_and_update(
            {"token": token, "user": user},
            {"$set": {"platform": platform, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            doc = await self._claim(user, token, platform, now)
        await self._trim(user, keep=max_devices, protect=token)
        return Device.from_doc(doc)

    async def _claim(self, user: str, token: str, platform: str, now: datetime) -> dict[str, Any]:
        """New token, or one another user held: it is this user's device from now on."""
        update = {"$set": {"user": user, "platform": platform, "created_at": now, "updated_at": now}}
        for _ in range(2):  # two first registrations of one token race on the unique index: retry once
            try:
                before = await self.collection.find_one_and_update(
                    {"token": token}, update, upsert=True, return_document=ReturnDocument.BEFORE
                )
            except DuplicateKeyError:
                continue
            if before is not None and before["user"] != user:
                log.info("device.moved", token=token_fingerprint(token), platform=platform)
            doc = await self.collection.find_one({"token": token})
            if doc is not None:
                return doc
        raise RuntimeError("device registration kept racing; try again")  # pragma: no cover

    async def _trim(self, user: str, *, keep: int, protect: str) -> None:
        """Drop the user's least recently registered devices beyond `keep` (never the one just registered).

        Two registrations racing may both see N+1 devices; each deletes only what is beyond the newest
        `keep`, so the result converges to the cap rather than overshooting below it.
        """
        docs = await self.collection.find(
            {"user": user}, {"token": 1, "updated_at": 1}
        ).sort([("updated_at", DESC), ("_id", DESC)]).to_list(None)
        ordered = [d for d in docs if d["token"] == protect] + [d for d in docs if d["token"] != protect]
        dropped = [d["_id"] for d in ordered[keep:]]
        if dropped:
            await self.collection.delete_many({"_id": {"$in": dropped}, "user": user})
            log.info("device.dropped_oldest", dropped=len(dropped), cap=keep)

    async def unregister(self, user: str, token: str) -> bool:
        """Only the user holding the token can unregister it; True when it was removed."""
        result = await self.collection.delete_one({"token": token.strip(), "user": user})
        return result.deleted_count == 1

    async def for_user(self, user: str) -> list[Device]:
        docs = await self.collection.find({"user": user}).sort([("updated_at", DESC), ("_id", DESC)]).to_list(None)
        return [Device.from_doc(d) for d in docs]

    async def forget_user(self, user: str) -> int:
        """Every device of an erased account: nothing is pushed to them again. How many."""
        return (await self.collection.delete_many({"user": user})).deleted_count

    async def remove_invalid(self, user: str, tokens: Sequence[str], *, checked_at: datetime) -> int:
        """Forget tokens FCM called invalid, unless re-registered (or moved) since the send began."""
        if not tokens:
            return 0
        result = await self.collection.delete_many(
            {"token": {"$in": list(tokens)}, "user": user, "updated_at": {"$lte": checked_at}}
        )
        if result.deleted_count:
            log.info("device.removed_invalid", removed=result.deleted_count)
        return result.deleted_count
