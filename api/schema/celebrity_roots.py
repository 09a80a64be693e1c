"""Admin: the celebrity gallery (enrol, remove, list)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.file_uploads import Upload

from accounts.rate_limits import Action
from api.permissions import IsAdmin
from api.resolvers import celebrities as resolvers
from api.schema.common import Connection, page_size
from api.schema.ranked import ranked_connection, ranked_position
from api.throttle import Throttle


@strawberry.type(description="A person enrolled in the celebrity gallery (admin)")
class Celebrity:
    name: str = strawberry.field(description="The person's name, with runs of spaces collapsed: the gallery's key")
    descriptors: int = strawberry.field(description="Enrolment photos stored for this person")
    created_at: datetime = strawberry.field(description="When the person was first enrolled")


@strawberry.type
class CelebrityQuery:
    @strawberry.field(permission_classes=[IsAdmin], description="Admin: the enrolled people, by name, paged")
    async def celebrities_connection(self, info: strawberry.Info, first: int | None = None,
                                     after: str | None = None) -> Connection[Celebrity]:
        size = page_size(first, info.context.services.settings.max_page_size)
        start = ranked_position(after)
        enrolled = sorted(await info.context.services.gallery.enrolled(), key=lambda c: c.name)
        return ranked_connection(enrolled, start, size, lambda c: Celebrity(name=c.name, descriptors=c.descriptors,
                                                                            created_at=c.created_at))

    @strawberry.field(permission_classes=[IsAdmin], description="Admin: the enrolled people",
                      deprecation_reason="Use celebritiesConnection: it pages (first/after) like every other "
                                         "growing list")
    async def celebrities(self, info: strawberry.Info) -> list[Celebrity]:
        return [Celebrity(name=c.name, descriptors=c.descriptors, created_at=c.created_at)
                for c in await info.context.services.gallery.enrolled()]


@strawberry.type
class CelebrityMutation:
    @strawberry.mutation(permission_classes=[IsAdmin], extensions=[Throttle(Action.ENROLMENT)],
                         description="Admin: enrol a person from photos that each show exactly one face")
    async def enroll_celebrity(
        self, info: strawberry.Info,
        name: Annotated[str, strawberry.argument(
            description="The person's name, 1 to 200 characters; an enrolled name gets these photos added")],
        files: Annotated[list[Upload], strawberry.argument(
            description="1 to 20 photos (GraphQL multipart request), each showing exactly one face: this person's")],
    ) -> Celebrity:
        c = await resolvers.enroll_celebrity(info, name, files)
        return Celebrity(name=c.name, descriptors=c.descriptors, created_at=c.created_at)

    @strawberry.mutation(permission_classes=[IsAdmin], description="Admin: remove a person from the gallery")
    async def remove_celebrity(self, info: strawberry.Info, name: Annotated[str, strawberry.argument(
            description="The enrolled name; NOT_FOUND when there is none")]) -> bool:
        return await resolvers.remove_celebrity(info, name)
