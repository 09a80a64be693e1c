"""Notifications on the root types: devices for push, the in-app list, mute preferences, live subscriptions.

Every field is about the signed-in user only: no argument names another user, so another user's
notifications or devices cannot be asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import strawberry

from api.permissions import IsAuthenticated
from api.resolvers import notifications as resolvers
from api.schema.common import Connection
from api.schema.notifications import Device, Notification, NotificationKind
from api.schema.photos import Photo


@strawberry.type
class NotificationQuery:
    notifications: Connection[Notification] = strawberry.field(
        resolver=resolvers.notifications, permission_classes=[IsAuthenticated],
        description="The signed-in user's notifications, newest first",
    )
    devices: list[Device] = strawberry.field(
        resolver=resolvers.devices, permission_classes=[IsAuthenticated],
        description="The signed-in user's push devices, most recently registered first",
    )


@strawberry.type
class NotificationMutation:
    register_device: Device = strawberry.mutation(
        resolver=resolvers.register_device, permission_classes=[IsAuthenticated],
        description="Receive pushes on this device. A token registered by another user moves to the caller; "
                    "beyond the per-user limit the least recently registered device is dropped.",
    )
    unregister_device: bool = strawberry.mutation(
        resolver=resolvers.unregister_device, permission_classes=[IsAuthenticated],
        description="Stop pushes to this device; false if the caller had no such device",
    )
    mark_notifications_read: int = strawberry.mutation(
        resolver=resolvers.mark_notifications_read, permission_classes=[IsAuthenticated],
        description="Mark the caller's notifications read; returns how many were unread",
    )
    mute_notifications: list[NotificationKind] = strawberry.mutation(
        resolver=resolvers.mute_notifications, permission_classes=[IsAuthenticated],
        description="Stop pushing a kind (still listed in-app); returns the muted kinds",
    )
    unmute_notifications: list[NotificationKind] = strawberry.mutation(
        resolver=resolvers.unmute_notifications, permission_classes=[IsAuthenticated],
        description="Push a muted kind again; returns the muted kinds",
    )


@strawberry.type
class NotificationSubscription:
    @strawberry.subscription(permission_classes=[IsAuthenticated],
                             description="Each new notification of the signed-in user, as it is recorded")
    async def notification_added(self, info: strawberry.Info) -> AsyncGenerator[Notification, None]:
        async with contextlib.aclosing(resolvers.notification_added(info)) as records:
            async for record in records:
                yield Notification.from_record(record)

    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="The photo once its tag suggestions are ready (or once it FAILED), then completes. "
                    "Owner only; a photo already past PROCESSING is sent at once.",
    )
    async def tag_suggestions_ready(
        self, info: strawberry.Info, photo_id: strawberry.ID
    ) -> AsyncGenerator[Photo, None]:
        # aclosing: when the client completes or disconnects, the inner generator unsubscribes at once.
        async with contextlib.aclosing(resolvers.tag_suggestions_ready(info, photo_id)) as docs:
            async for doc in docs:
                yield Photo.from_doc(doc)
