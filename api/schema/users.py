"""The signed-in user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry


@strawberry.type
class User:
    id: strawberry.ID
    email: str | None
    name: str | None
    admin: bool
    created_at: datetime
    muted_notifications: list[str]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        return cls(
            id=strawberry.ID(doc["_id"]), email=doc.get("email"), name=doc.get("name"),
            admin=bool(doc.get("admin")), created_at=doc["created_at"], muted_notifications=list(doc.get("muted", [])),
        )
