"""The signed-in user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from api.errors import Forbidden
from api.schema.common import Connection, connection, page_size, paged
from api.schema.photos import Photo, PhotoStatus


@strawberry.type
class User:
    id: strawberry.ID
    email: str | None
    name: str | None
    display_name: str | None = strawberry.field(description="The public name (setDisplayName); null until chosen")
    admin: bool
    created_at: datetime
    muted_notifications: list[str]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        return cls(
            id=strawberry.ID(doc["_id"]), email=doc.get("email"), name=doc.get("name"),
            display_name=doc.get("display_name"), admin=bool(doc.get("admin")), created_at=doc["created_at"],
            muted_notifications=list(doc.get("muted", [])),
        )

    @strawberry.field(description="The user's own photos, newest first, PROCESSING and FAILED included "
                                  "(with `failure`); one status if given")
    async def photos(self, info: Info, status: PhotoStatus | None = None, first: int | None = None,
                     after: str | None = None) -> Connection[Photo]:
        principal = info.context.principal
        if principal.uid != self.id and not principal.admin:
            raise Forbidden("only the user sees their own photo list")
        services = info.context.services
        size = page_size(first, services.settings.max_page_size)
        with paged():
            page = await services.photo_queries.owned(str(self.id), status=status.value if status else None,
                                                      first=size, after=after)
        return connection(page, Photo.from_doc)
