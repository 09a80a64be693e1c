"""Notification types: push devices, in-app notifications and their kinds. Roots: `notification_roots`."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry


@strawberry.enum
class Platform(Enum):
    IOS = "IOS"
    ANDROID = "ANDROID"
    WEB = "WEB"


@strawberry.enum
class NotificationKind(Enum):
    TAG_SUGGESTIONS = "TAG_SUGGESTIONS"
    FEATURED = "FEATURED"


@strawberry.type(description="A device that receives push notifications (an FCM registration token)")
class Device:
    token: str
    platform: Platform
    created_at: datetime

    @classmethod
    def from_device(cls, device: Any) -> Device:
        return cls(token=device.token, platform=Platform(device.platform), created_at=device.created_at)


@strawberry.type
class Notification:
    id: strawberry.ID
    kind: NotificationKind
    title: str
    body: str
    photo_id: strawberry.ID | None
    deep_link: str | None = strawberry.field(description="photoduel:// link the app opens on tap")
    created_at: datetime
    read: bool

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
