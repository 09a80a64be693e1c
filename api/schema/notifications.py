"""Notification types: push devices, in-app notifications and their kinds. Roots: `notification_roots`."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from api.schema.node import Node


@strawberry.enum(description="The platform of a push device")
class Platform(Enum):
    _value_: str  # the values are these strings; mypy would type them as enum_value's EnumValueDefinition
    IOS = strawberry.enum_value("IOS", description="An iPhone or iPad app (FCM delivers through APNs)")
    ANDROID = strawberry.enum_value("ANDROID", description="An Android app")
    WEB = strawberry.enum_value("WEB", description="A browser (FCM web push)")


@strawberry.enum(description="What a notification is about; each kind can be muted for push (muteNotifications)")
class NotificationKind(Enum):
    _value_: str  # the values are these strings; mypy would type them as enum_value's EnumValueDefinition
    TAG_SUGGESTIONS = strawberry.enum_value(
        "TAG_SUGGESTIONS", description="A photo of yours was analysed: its tag suggestions are ready")
    FEATURED = strawberry.enum_value("FEATURED", description="A photo of yours made it into the featured set")
    BADGE = strawberry.enum_value("BADGE", description="A player progress badge earned (User.stats.badges)")
    DAILY_GOAL = strawberry.enum_value("DAILY_GOAL", description="The day's vote goal reached (User.stats.today)")
    MODERATION = strawberry.enum_value(
        "MODERATION", description="A photo of yours was held back for review, or a moderator decided on it")


@strawberry.type(description="A device that receives push notifications (an FCM registration token)")
class Device:
    token: str = strawberry.field(description="The FCM registration token, as registered")
    platform: Platform = strawberry.field(description="The device's platform, as registered")
    created_at: datetime = strawberry.field(
        description="When this user first registered the token (registering it again keeps this)")

    @classmethod
    def from_device(cls, device: Any) -> Device:
        return cls(token=device.token, platform=Platform(device.platform), created_at=device.created_at)


@strawberry.type(description="An in-app notification of the signed-in user; also pushed to their devices unless "
                             "its kind is muted")
class Notification(Node):
    kind: NotificationKind = strawberry.field(description="What it is about")
    title: str = strawberry.field(description="The headline, as in the push")
    body: str = strawberry.field(description="The message, as in the push")
    photo_id: strawberry.ID | None = strawberry.field(description="The photo it is about; null when about none")
    deep_link: str | None = strawberry.field(description="photoduel:// link the app opens on tap")
    created_at: datetime = strawberry.field(description="When it was recorded (millisecond precision)")
    read: bool = strawberry.field(description="Whether markNotificationsRead marked it read")

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Notification:
        data = record.get("data") or {}
        photo_id = data.get("photoId")
        return cls(
            id=strawberry.ID(str(record["_id"])), kind=NotificationKind(record["kind"]), title=record["title"],
            body=record["body"], photo_id=strawberry.ID(photo_id) if photo_id else None,
            deep_link=data.get("deepLink"), created_at=_bson_precision(record["created_at"]),
            read=record.get("read_at") is not None,
        )


def _bson_precision(at: datetime) -> datetime:
    """BSON dates keep milliseconds; a record published live (before any read-back) still has microseconds.
    Truncating here makes the subscription and the list show the same createdAt."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)
