"""Notifications on the root types: devices for push, the in-app list, mute preferences, live subscriptions.

Every field is about the signed-in user only: no argument names another user, so another user's
notifications or devices cannot be asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from api.permissions import IsAuthenticated, user_field, user_mutation
from api.resolvers import notifications as resolvers
from api.schema.common import Connection
from api.schema.notifications import Device, Notification, NotificationKind
from api.schema.photos import Photo


@strawberry.type
class NotificationQuery:
    notifications: Connection[Notification] = user_field(resolvers.notifications)
    devices_connection: Connection[Device] = user_field(resolvers.devices_connection)
    devices: list[Device] = strawberry.field(
        resolver=resolvers.devices, permission_classes=[IsAuthenticated],
        description="The signed-in user's push devices, most recently registered first",
        deprecation_reason="Use devicesConnection: it pages (first/after) like every other growing list",
    )


@strawberry.type
class NotificationMutation:
    register_device: Device = user_mutation(resolvers.register_device)
    unregister_device: bool = user_mutation(resolvers.unregister_device)
    mark_notifications_read: int = user_mutation(resolvers.mark_notifications_read)
    mute_notifications: list[NotificationKind] = user_mutation(resolvers.mute_notifications)
    unmute_notifications: list[NotificationKind] = user_mutation(resolvers.unmute_notifications)


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
        self, info: strawberry.Info, photo_id: Annotated[strawberry.ID, strawberry.argument(
            description="The id of a photo the caller uploaded")]
    ) -> AsyncGenerator[Photo, None]:
        # aclosing: when the client completes or disconnects, the inner generator unsubscribes at once.
        async with contextlib.aclosing(resolvers.tag_suggestions_ready(info, photo_id)) as docs:
            async for doc in docs:
                yield Photo.from_doc(doc)
