"""Admin: the celebrity gallery (enrol, remove, list)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.file_uploads import Upload

from accounts.rate_limits import Action
from api.permissions import IsAdmin
from api.resolvers import celebrities as resolvers
from api.throttle import Throttle


@strawberry.type
class Celebrity:
    name: str
    descriptors: int = strawberry.field(description="Enrolment photos stored for this person")
    created_at: datetime


@strawberry.type
class CelebrityQuery:
    @strawberry.field(permission_classes=[IsAdmin], description="Admin: the enrolled people")
    async def celebrities(self, info: strawberry.Info) -> list[Celebrity]:
        return [Celebrity(name=c.name, descriptors=c.descriptors, created_at=c.created_at)
                for c in await info.context.services.gallery.enrolled()]


@strawberry.type
class CelebrityMutation:
    @strawberry.mutation(permission_classes=[IsAdmin], extensions=[Throttle(Action.ENROLMENT)],
                         description="Admin: enrol a person from photos that each show exactly one face")
    async def enroll_celebrity(self, info: strawberry.Info, name: str, files: list[Upload]) -> Celebrity:
        c = await resolvers.enroll_celebrity(info, name, files)
        return Celebrity(name=c.name, descriptors=c.descriptors, created_at=c.created_at)

    @strawberry.mutation(permission_classes=[IsAdmin], description="Admin: remove a person from the gallery")
    async def remove_celebrity(self, info: strawberry.Info, name: str) -> bool:
        return await resolvers.remove_celebrity(info, name)
