"""Photo fields on the root types: browsing, search, upload and tag review."""

from __future__ import annotations

import strawberry
from strawberry.file_uploads import Upload

from accounts.rate_limits import Action
from api.permissions import IsAdmin, IsAuthenticated
from api.resolvers import photos as resolvers
from api.schema.common import Connection
from api.schema.photos import Photo, SimilarPhoto
from api.throttle import Throttle


@strawberry.type
class PhotoQuery:
    photo: Photo | None = strawberry.field(resolver=resolvers.photo, description="A photo by id; null if unknown")
    photos: Connection[Photo] = strawberry.field(
        resolver=resolvers.photos, description="READY photos, newest first by default; filter by tag or category"
    )
    search_photos: list[Photo] = strawberry.field(
        resolver=resolvers.search_photos, description="Text to image search (CLIP), best match first",
        extensions=[Throttle(Action.SEARCH)],
    )
    similar_photos: list[SimilarPhoto] = strawberry.field(
        resolver=resolvers.similar_photos, description="Visually nearest READY photos, most similar first"
    )
    tag_vocabulary: list[str] = strawberry.field(
        resolver=resolvers.tag_vocabulary, description="Tags the tagger can suggest"
    )


@strawberry.type
class PhotoMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated], extensions=[Throttle(Action.UPLOAD)],
                         description="Upload a photo (GraphQL multipart request). Returns at once, PROCESSING.")
    async def upload_photo(self, info: strawberry.Info, file: Upload, title: str | None = None) -> Photo:
        return await resolvers.upload_photo(info, file, title)

    accept_tags: Photo = strawberry.mutation(resolver=resolvers.accept_tags, permission_classes=[IsAuthenticated],
                                             extensions=[Throttle(Action.TAG_EDIT)])
    reject_tags: Photo = strawberry.mutation(resolver=resolvers.reject_tags, permission_classes=[IsAuthenticated],
                                             extensions=[Throttle(Action.TAG_EDIT)])
    update_photo: Photo = strawberry.mutation(
        resolver=resolvers.update_photo, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.EDIT)],
        description="The owner (or an admin) changes the title: the upload's rule; null or blank removes it",
    )
    set_category: Photo = strawberry.mutation(
        resolver=resolvers.set_category, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.EDIT)],
        description="The owner (or an admin) moves a READY photo to another known category; the model's "
                    "choice stays in modelCategory",
    )
    add_vocabulary_tags: list[str] = strawberry.mutation(
        resolver=resolvers.add_vocabulary_tags, permission_classes=[IsAdmin], extensions=[Throttle(Action.TAG_EDIT)],
        description="Admin: add tags to the suggestion vocabulary",
    )
