"""Thin resolvers for notifications: parse the arguments, call `NotificationService`, shape the answer."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from api.errors import BadUserInput, Forbidden, NotFound, RateLimited, Unavailable
from api.schema.common import Connection, connection, page_size, paged
from api.schema.notifications import Device, Notification, NotificationKind, Platform
from api.schema.ranked import ranked_connection, ranked_position
from notifications.devices import InvalidDevice
from notifications.pubsub import TooManySubscriptions
from notifications.service import MAX_MARK_READ, NotificationService
from storage.base import parse_object_id
from storage.photos import PROCESSING

# While waiting for a photo, re-read it this often even without an event: covers a photo that FAILED
# (no announcement). Every READY photo is announced, by whichever process ingested it, and the
# announcement arrives through this process's outbox follower.
PHOTO_RECHECK_SECONDS = 10.0


def _service(info: Info) -> NotificationService:
    service = info.context.services.notifications
    if service is None:
        raise Unavailable("notifications are not available in this process")
    return service


async def notifications(info: Info, first: int | None = None, after: str | None = None) -> Connection[Notification]:
    """The signed-in user's notifications, newest first"""
    uid = info.context.require_user()
    size = page_size(first, info.context.services.settings.max_page_size)
    with paged():
        page = await _service(info).page(uid, first=size, after=after)
    return connection(page, Notification.from_record)


async def devices(info: Info) -> list[Device]:
    """The signed-in user's push devices, most recently registered first"""
    uid = info.context.require_user()
    return [Device.from_device(d) for d in await _service(info).devices_of(uid)]


async def devices_connection(info: Info, first: int | None = None, after: str | None = None) -> Connection[Device]:
    """The signed-in user's push devices, most recently registered first, paged"""
    uid = info.context.require_user()
    size = page_size(first, info.context.services.settings.max_page_size)
    start = ranked_position(after)
    return ranked_connection(await _service(info).devices_of(uid), start, size, Device.from_device)


async def register_device(
    info: Info,
    token: Annotated[str, strawberry.argument(description="The FCM registration token from the Firebase SDK")],
    platform: Annotated[Platform, strawberry.argument(description="The device's platform")],
) -> Device:
    """Receive pushes on this device. A token registered by another user moves to the caller; beyond the
    per-user limit the least recently registered device is dropped."""
    uid = info.context.require_user()
    try:
        device = await _service(info).register_device(uid, token, platform.value)
    except InvalidDevice as exc:
        raise BadUserInput(str(exc), argument="token") from None
    return Device.from_device(device)


async def unregister_device(info: Info, token: Annotated[str, strawberry.argument(
        description="The FCM registration token to stop pushing to")]) -> bool:
    """Stop pushes to this device; false if the caller had no such device"""
    uid = info.context.require_user()
    return await _service(info).unregister_device(uid, token)


async def mark_notifications_read(info: Info, ids: Annotated[list[strawberry.ID], strawberry.argument(
        description=f"Notification ids, at most {MAX_MARK_READ}; ids that are not the caller's change nothing")],
                                  ) -> int:
    """Mark the caller's notifications read; returns how many were unread"""
    uid = info.context.require_user()
    if len(ids) > MAX_MARK_READ:
        raise BadUserInput(f"at most {MAX_MARK_READ} ids at once", argument="ids")
    oids = [parse_object_id(i) for i in ids]
    if any(oid is None for oid in oids):
        raise BadUserInput("not a notification id", argument="ids")
    return await _service(info).mark_read(uid, [oid for oid in oids if oid is not None])


async def mute_notifications(info: Info, kind: Annotated[NotificationKind, strawberry.argument(
        description="The kind to stop pushing")]) -> list[NotificationKind]:
    """Stop pushing a kind (still listed in-app); returns the muted kinds"""
    uid = info.context.require_user()
    return [NotificationKind(k) for k in await _service(info).mute(uid, kind.value)]


async def unmute_notifications(info: Info, kind: Annotated[NotificationKind, strawberry.argument(
        description="The kind to push again")]) -> list[NotificationKind]:
    """Push a muted kind again; returns the muted kinds"""
    uid = info.context.require_user()
    return [NotificationKind(k) for k in await _service(info).unmute(uid, kind.value)]


async def notification_added(info: Info) -> AsyncGenerator[dict[str, Any], None]:
    """Outbox records of the signed-in user, as they are recorded by any process (each once)."""
    uid = info.context.require_user()
    try:
        async with _service(info).subscribe_user(uid) as subscription:
            async for record in subscription:
                yield record
    except TooManySubscriptions as exc:
        raise RateLimited(str(exc)) from None


async def tag_suggestions_ready(info: Info, photo_id: strawberry.ID) -> AsyncGenerator[dict[str, Any], None]:
    """The photo document once it is no longer PROCESSING; owner only.

    Subscribes before reading the photo, so an announcement between the read and the wait is queued,
    not missed; a photo already READY (or FAILED) is sent at once.
    """
    uid = info.context.require_user()
    photos = info.context.services.photos
    oid = parse_object_id(photo_id)
    doc = await photos.get(oid) if oid else None
    if doc is None:
        raise NotFound("no such photo", argument="photoId")
    if doc["owner"] != uid:
        raise Forbidden("only the photo's owner may follow its tag suggestions")
    try:
        async with _service(info).subscribe_photo(str(oid)) as subscription:
            while True:
                doc = await photos.get(oid)
                if doc is None:
                    raise NotFound("the photo was deleted", argument="photoId")
                if doc["status"] != PROCESSING:
                    yield doc
                    return
                await subscription.get(timeout=PHOTO_RECHECK_SECONDS)
    except TooManySubscriptions as exc:
        raise RateLimited(str(exc)) from None
