"""Photo fields on the root types: browsing, search, upload and tag review."""

from __future__ import annotations

from typing import Annotated

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
    search_photos_connection: Connection[Photo] = strawberry.field(
        resolver=resolvers.search_photos_connection,
        description="Text to image search (CLIP), best match first, paged (at most 500 deep: past that a "
                    "text match is noise)",
        extensions=[Throttle(Action.SEARCH)],
    )
    similar_photos_connection: Connection[SimilarPhoto] = strawberry.field(
        resolver=resolvers.similar_photos_connection,
        description="Visually nearest READY photos, most similar first, paged",
    )
    search_photos: list[Photo] = strawberry.field(
        resolver=resolvers.search_photos, description="Text to image search (CLIP), best match first",
        extensions=[Throttle(Action.SEARCH)],
        deprecation_reason="Use searchPhotosConnection: it pages (first/after) like every other growing list",
    )
    similar_photos: list[SimilarPhoto] = strawberry.field(
        resolver=resolvers.similar_photos, description="Visually nearest READY photos, most similar first",
        deprecation_reason="Use similarPhotosConnection: it pages (first/after) like every other growing list",
    )
    tag_vocabulary: list[str] = strawberry.field(
        resolver=resolvers.tag_vocabulary, description="Tags the tagger can suggest"
    )
    categories: list[str] = strawberry.field(
        resolver=resolvers.categories,
        description="The categories a photo can have (nextDuel, leaderboard, setCategory), in display order",
    )


@strawberry.type
class PhotoMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated], extensions=[Throttle(Action.UPLOAD)],
                         description="Upload a photo (GraphQL multipart request). Returns at once, PROCESSING.")
    async def upload_photo(
        self, info: strawberry.Info,
        file: Annotated[Upload, strawberry.argument(
            description="The image: JPEG, PNG, WebP or HEIF, at most 25 MiB and 50 megapixels by default")],
        title: Annotated[str | None, strawberry.argument(
            description="A title, at most 200 characters; trimmed, blank is none")] = None,
    ) -> Photo:
        return await resolvers.upload_photo(info, file, title)

    accept_tags: Photo = strawberry.mutation(
        resolver=resolvers.accept_tags, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.TAG_EDIT)],
        description="The owner adds tags, suggested or their own: `photos(tag:)` then finds the photo. At most 30 "
                    "tags per photo (BAD_USER_INPUT past that)",
    )
    reject_tags: Photo = strawberry.mutation(
        resolver=resolvers.reject_tags, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.TAG_EDIT)],
        description="The owner removes tags: they leave `tags` and are no longer suggested",
    )
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
