"""Admin: the celebrity gallery (enrol, remove, list)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.file_uploads import Upload

from accounts.rate_limits import Action
from api.permissions import IsAdmin
from api.resolvers import celebrities as resolvers
from api.schema.common import Connection, connection, page_size, paged
from api.throttle import Throttle
from storage.celebrities import Celebrity as GalleryEntry


@strawberry.type(description="A person enrolled in the celebrity gallery (admin)")
class Celebrity:
    name: str = strawberry.field(description="The person's name, with runs of spaces collapsed: the gallery's key")
    descriptors: int = strawberry.field(description="Enrolment photos stored for this person")
    created_at: datetime = strawberry.field(description="When the person was first enrolled")

    @classmethod
    def of(cls, c: GalleryEntry) -> Celebrity:
        return cls(name=c.name, descriptors=c.descriptors, created_at=c.created_at)


@strawberry.type
class CelebrityQuery:
    @strawberry.field(permission_classes=[IsAdmin], description="Admin: the enrolled people, by name, paged")
    async def celebrities_connection(self, info: strawberry.Info, first: int | None = None,
                                     after: str | None = None) -> Connection[Celebrity]:
        size = page_size(first, info.context.services.settings.max_page_size)
        gallery = info.context.services.gallery
        with paged():
            page = await gallery.page(first=size, after=after)
        return connection(page, lambda doc: Celebrity.of(gallery.celebrity(doc)))

    @strawberry.field(permission_classes=[IsAdmin], description="Admin: the enrolled people",
                      deprecation_reason="Use celebritiesConnection: it pages (first/after) like every other "
                                         "growing list")
    async def celebrities(self, info: strawberry.Info) -> list[Celebrity]:
        return [Celebrity.of(c) for c in await info.context.services.gallery.enrolled()]


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
        return Celebrity.of(await resolvers.enroll_celebrity(info, name, files))

    @strawberry.mutation(permission_classes=[IsAdmin], description="Admin: remove a person from the gallery")
    async def remove_celebrity(self, info: strawberry.Info, name: Annotated[str, strawberry.argument(
            description="The enrolled name; NOT_FOUND when there is none")]) -> bool:
        return await resolvers.remove_celebrity(info, name)
