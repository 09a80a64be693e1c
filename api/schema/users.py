"""The signed-in user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from api.errors import Forbidden
from api.resolvers.progress import player_stats
from api.schema.common import Connection, connection, page_size, paged
from api.schema.photos import Photo, PhotoStatus
from api.schema.profiles import PublicProfile
from api.schema.progress import PlayerStats


@strawberry.type(description="The signed-in user's own account (`me`); what others see of a user is PublicProfile")
class User:
    id: strawberry.ID = strawberry.field(description="The Firebase uid; also the id of the user's PublicProfile")
    email: str | None = strawberry.field(
        description="From the sign-in token; null when the account has none (e.g. anonymous sign-in)")
    name: str | None = strawberry.field(
        description="The name from the sign-in provider, private; the public one is displayName")
    display_name: str | None = strawberry.field(description="The public name (setDisplayName); null until chosen")
    admin: bool = strawberry.field(description="Whether the sign-in token carries the admin claim")
    created_at: datetime = strawberry.field(description="When the account first used the API")
    muted_notifications: list[str] = strawberry.field(
        description="NotificationKind names not pushed to devices (muteNotifications); still listed in-app")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        return cls(
            id=strawberry.ID(doc["_id"]), email=doc.get("email"), name=doc.get("name"),
            display_name=doc.get("display_name"), admin=bool(doc.get("admin")), created_at=doc["created_at"],
            muted_notifications=list(doc.get("muted", [])),
        )

    @strawberry.field(description="The user's own photos, newest first, PROCESSING and FAILED included "
                                  "(with `failure`); one status if given")
    async def photos(self, info: Info, status: Annotated[PhotoStatus | None, strawberry.argument(
                         description="Only photos with this status; every status when null")] = None,
                     first: int | None = None,
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

    @strawberry.field(description="The users this one blocked (blockUser), oldest first: their photos never "
                                  "appear in this user's duels or lists. The user's own (or any, for an admin)")
    async def blocked_users(self, info: Info) -> list[PublicProfile]:
        principal = info.context.principal
        if principal.uid != self.id and not principal.admin:
            raise Forbidden("only the user sees whom they blocked")
        blocked = await info.context.loaders.blocked.load(str(self.id))
        return [PublicProfile.from_profile(p) for p in await info.context.loaders.owner.load_many(blocked)]

    @strawberry.field(description="The user's player progress: votes, streak, agreement with the ratings, "
                                  "today's goal and badges. The user's own (or any, for an admin)")
    async def stats(self, info: Info) -> PlayerStats:
        return await player_stats(info, str(self.id))
