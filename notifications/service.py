"""The notifications facade the API and the wiring talk to: devices, the in-app list, preferences,
live events.

Why a facade: resolvers stay thin (parse, call one method, shape) and the rules live in one place,
e.g. that a user only ever sees or marks their own notifications, and which topics a record is
published to. A new record reaches live subscribers one way only, whichever process wrote it: the
outbox follower of every API process (`notifications.follower`) calls `publish`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import structlog
from bson import ObjectId

from notifications.devices import Device, DeviceRepository
from notifications.outbox import Outbox, announce_featured
from notifications.preferences import Preferences
from notifications.progress import announce_badge, announce_daily_goal
from notifications.pubsub import PubSub, Subscription, photo_topic, user_topic
from storage.pagination import Page

if TYPE_CHECKING:
    from notifications.dispatcher import Dispatcher

log = structlog.get_logger(__name__)

MAX_MARK_READ = 100


class NotificationService:
    def __init__(
        self, outbox: Outbox, devices: DeviceRepository, preferences: Preferences, pubsub: PubSub,
        *, max_devices: int, dispatcher: Dispatcher | None = None,
    ) -> None:
        self.outbox = outbox
        self.devices = devices
        self.preferences = preferences
        self.pubsub = pubsub
        self.max_devices = max_devices
        # None when push is off: records stay pending in the outbox and the in-app list still works.
        self.dispatcher = dispatcher

    # --- devices --------------------------------------------------------------------------------
    async def register_device(self, user: str, token: str, platform: str) -> Device:
        """Raises `notifications.devices.InvalidDevice` for a malformed token or unknown platform."""
        return await self.devices.register(user, token, platform, max_devices=self.max_devices)

    async def unregister_device(self, user: str, token: str) -> bool:
        return await self.devices.unregister(user, token)

    async def devices_of(self, user: str) -> list[Device]:
        return await self.devices.for_user(user)

    # --- the in-app list ------------------------------------------------------------------------
    async def page(self, user: str, *, first: int, after: str | None) -> Page:
        """The user's notifications, newest first. Raises `storage.pagination.InvalidCursor`."""
        return await self.outbox.page(user, first=first, after=after)

    async def owned(self, user: str, ids: Sequence[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
        """The user's own notifications among `ids` (`node(id:)`), by id; unknown ids and another user's
        are absent."""
        return await self.outbox.owned(user, ids)

    async def mark_read(self, user: str, ids: Sequence[ObjectId]) -> int:
        """Mark the user's own unread notifications read; returns how many changed. Ids of other users'
        notifications match nothing, so the count never reveals that they exist."""
        if not ids:
            return 0
        return await self.outbox.mark_read(user, ids)

    # --- preferences ----------------------------------------------------------------------------
    async def mute(self, user: str, kind: str) -> list[str]:
        """Raises `notifications.preferences.UnknownKind`."""
        return await self.preferences.mute(user, kind)

    async def unmute(self, user: str, kind: str) -> list[str]:
        return await self.preferences.unmute(user, kind)

    # --- new events -----------------------------------------------------------------------------
    async def announced(self, record: Mapping[str, Any]) -> None:
        """A new outbox record written in this process (ingest's `on_announced` hook): push it now rather
        than at the dispatcher's next poll. Live subscribers hear of it through `publish`, from the
        outbox follower, like a record written by any other process."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def publish(self, record: Mapping[str, Any]) -> None:
        """Hand a new record to this process's subscriptions: its user's, and its photo's if it has one.

        Never waits for a subscriber (bounded queues), so the follower is never slowed by a websocket.
        """
        self.pubsub.publish(user_topic(record["user"]), record)
        photo_id = (record.get("data") or {}).get("photoId")
        if photo_id:
            self.pubsub.publish(photo_topic(str(photo_id)), record)

    async def _announce_new(self, outcome: tuple[dict[str, Any], bool]) -> tuple[dict[str, Any], bool]:
        """A keyed record's outcome: announced (like `announced`) when this call created it."""
        record, created = outcome
        if created:
            await self.announced(record)
        return outcome

    async def announce_featured(self, photo: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record "your photo is featured" (once per photo) and announce it."""
        return await self._announce_new(await announce_featured(self.outbox, photo))

    async def announce_badge(self, user: str, badge: str) -> tuple[dict[str, Any], bool]:
        """Record "you earned a badge" (once per user and badge) and announce it."""
        return await self._announce_new(await announce_badge(self.outbox, user, badge))

    async def announce_daily_goal(self, user: str, day: date, goal: int) -> tuple[dict[str, Any], bool]:
        """Record "daily goal reached" (once per user and local day) and announce it."""
        return await self._announce_new(await announce_daily_goal(self.outbox, user, day, goal))

    # --- live subscriptions ---------------------------------------------------------------------
    def subscribe_user(self, uid: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self.pubsub.subscribe(user_topic(uid))

    def subscribe_photo(self, photo_id: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self.pubsub.subscribe(photo_topic(photo_id))

