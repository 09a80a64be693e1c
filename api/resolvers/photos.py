from __future__ import annotations

import contextlib
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from api.errors import BadUserInput, Forbidden, NotFound, Unavailable
from api.resolvers.blocks import blocked_owners
from api.resolvers.photo_refusals import photo_refusals
from api.schema.common import Connection, capped, connection, page_size, paged
from api.schema.photos import Photo, PhotoOrder, SimilarPhoto
from api.schema.ranked import ranked_connection, ranked_position, ranked_window
from ml.images import ImageRejected
from ml.pipelines.models import ModelNotReady
from ml.pipelines.search import search_by_text
from ml.vocabulary import normalise_tag
from photos.editing import InvalidEdit
from photos.queries import InvalidFilter, Order
from photos.queries import visible as visible_to
from photos.upload_rules import UploadArgumentError, UploadRules
from storage.base import parse_object_id
from storage.photos import MAX_TAGS_PER_PHOTO, TagLimitExceeded

#: Tags an admin adds to the vocabulary in one call.
MAX_VOCABULARY_TAGS = 100

# Argument descriptions used by several fields.
PHOTO_ID = "The photo's id"
OWN_PHOTO_ID = "The id of one of the caller's photos (FORBIDDEN for another user's)"
SEARCH_TEXT = "What to look for, in words (1 to 300 characters), e.g. 'red car in the snow'"
SIMILAR_TO = "The photo to compare with; NOT_FOUND when unknown or not visible to the caller"
TAG_LIST = "1 to 30 tags; each trimmed and lower-cased, at most 64 characters"


async def photo(info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=PHOTO_ID)]) -> Photo | None:
    oid = parse_object_id(id)
    if oid is None:
        return None
    doc = await info.context.loaders.photo.load(oid)
    if doc is None or not visible(info, doc):
        return None
    return Photo.from_doc(doc)


def visible(info: Info, doc: dict[str, Any]) -> bool:
    return visible_to(doc, info.context.viewer)


async def photos(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    tag: Annotated[str | None, strawberry.argument(
        description="Only photos with this accepted tag (any case); all when null")] = None,
    category: Annotated[str | None, strawberry.argument(
        description="Only photos of this category (one of `categories`, any case); all when null")] = None,
    order_by: Annotated[PhotoOrder, strawberry.argument(description="The sort order")] = PhotoOrder.NEWEST,
) -> Connection[Photo]:
    size = page_size(first, info.context.services.settings.max_page_size)
    try:
        with paged():
            page = await info.context.services.photo_queries.browse(
                Order(order_by.value), tag=tag, category=category, first=size, after=after,
                excluding_owners=await blocked_owners(info))
    except InvalidFilter as exc:
        raise BadUserInput(str(exc), argument=exc.argument) from None
    return connection(page, Photo.from_doc)


async def upload_photo(info: Info, file: Any, title: str | None) -> Photo:
    """Steps 2 and 3 of `photos.upload_rules`: the arguments here, the bytes in the upload service."""
    services = info.context.services
    owner = info.context.require_user()
    data = await read_upload(services.uploads.rules, file)
    try:
        result = await services.uploads.upload(
            owner, data, declared_type=getattr(file, "content_type", None),
            filename=getattr(file, "filename", None), title=services.uploads.rules.title(title),
        )
    except UploadArgumentError as exc:
        raise BadUserInput(str(exc), argument=exc.argument) from None
    except ImageRejected as exc:
        raise BadUserInput(str(exc), reason=exc.reason, argument="file") from None
    return Photo.from_doc(result.photo)


async def read_upload(rules: UploadRules, file: Any) -> bytes:
    try:
        return await rules.read_file(file)
    except UploadArgumentError as exc:
        raise BadUserInput(str(exc), argument=exc.argument) from None


async def _own_photo(info: Info, photo_id: str) -> Any:
    uid = info.context.require_user()
    oid = parse_object_id(photo_id)
    doc = await info.context.services.photos.get(oid) if oid else None
    if doc is None:
        raise NotFound("no such photo", argument="photoId")
    if doc["owner"] != uid:
        raise Forbidden("only the photo's owner may review its tags")
    return doc


def _normalised(tags: list[str], cap: int) -> list[str]:
    if not tags:
        raise BadUserInput("give at least one tag", argument="tags")
    capped(tags, "tags", cap)
    try:
        return list(dict.fromkeys(normalise_tag(t) for t in tags))
    except ValueError as exc:
        raise BadUserInput(str(exc), argument="tags") from None


async def accept_tags(info: Info, photo_id: Annotated[strawberry.ID, strawberry.argument(description=OWN_PHOTO_ID)],
                      tags: Annotated[list[str], strawberry.argument(
                          description=f"The tags to add: {TAG_LIST}")]) -> Photo:
    wanted = _normalised(tags, MAX_TAGS_PER_PHOTO)
    doc = await _own_photo(info, photo_id)
    try:
        updated = await info.context.services.photos.accept_tags(doc["_id"], wanted)
    except TagLimitExceeded as exc:
        raise BadUserInput(str(exc), argument="tags") from None
    if updated is None:
        raise NotFound("no such photo", argument="photoId")
    return Photo.from_doc(updated)


async def reject_tags(info: Info, photo_id: Annotated[strawberry.ID, strawberry.argument(description=OWN_PHOTO_ID)],
                      tags: Annotated[list[str], strawberry.argument(
                          description=f"The tags to remove and stop suggesting: {TAG_LIST}")]) -> Photo:
    unwanted = _normalised(tags, MAX_TAGS_PER_PHOTO)
    doc = await _own_photo(info, photo_id)
    updated = await info.context.services.photos.reject_tags(doc["_id"], unwanted)
    if updated is None:
        raise NotFound("no such photo", argument="photoId")
    return Photo.from_doc(updated)


async def _searched(info: Info, text: str, limit: int) -> list[dict[str, Any]]:
    text = text.strip()
    if not text or len(text) > 300:
        raise BadUserInput("`text` must be 1 to 300 characters", argument="text")
    try:
        services = info.context.services
        return await search_by_text(services.analyzer, services.vectors, services.photos, text, limit=limit,
                                    excluding_owners=await blocked_owners(info))
    except ModelNotReady as exc:
        raise Unavailable(f"search is unavailable while the model is not ready: {exc}") from None


async def search_photos(info: Info, text: Annotated[str, strawberry.argument(description=SEARCH_TEXT)],
                        first: int | None = None) -> list[Photo]:
    size = page_size(first, info.context.services.settings.max_page_size)
    return [Photo.from_doc(d) for d in await _searched(info, text, size)]


async def search_photos_connection(info: Info, text: Annotated[str, strawberry.argument(description=SEARCH_TEXT)],
                                   first: int | None = None,
                                   after: str | None = None) -> Connection[Photo]:
    size = page_size(first, info.context.services.settings.max_page_size)
    start = ranked_position(after)
    return ranked_connection(await _searched(info, text, ranked_window(start, size)), start, size, Photo.from_doc)


async def _similar(info: Info, photo_id: strawberry.ID, limit: int) -> list[SimilarPhoto]:
    oid = parse_object_id(photo_id)
    doc = await info.context.loaders.photo.load(oid) if oid else None
    if doc is None or not visible(info, doc):
        raise NotFound("no such photo", argument="photoId")
    similar = await info.context.services.photo_queries.similar(doc, limit=limit,
                                                                excluding_owners=await blocked_owners(info))
    return [SimilarPhoto(photo=Photo.from_doc(d), similarity=similarity) for d, similarity in similar]


async def similar_photos(info: Info, photo_id: Annotated[strawberry.ID, strawberry.argument(description=SIMILAR_TO)],
                         first: int | None = None) -> list[SimilarPhoto]:
    return await _similar(info, photo_id, page_size(first, info.context.services.settings.max_page_size))


async def similar_photos_connection(info: Info,
                                    photo_id: Annotated[strawberry.ID, strawberry.argument(description=SIMILAR_TO)],
                                    first: int | None = None,
                                    after: str | None = None) -> Connection[SimilarPhoto]:
    size = page_size(first, info.context.services.settings.max_page_size)
    start = ranked_position(after)
    return ranked_connection(await _similar(info, photo_id, ranked_window(start, size)), start, size,
                             lambda similar: similar)


async def tag_vocabulary(info: Info) -> list[str]:
    services = info.context.services
    extra = await services.vocabulary.extra_tags()
    return list(services.analyzer.base_vocabulary.with_tags(extra).tags)


def categories(info: Info) -> list[str]:
    return list(info.context.services.photo_editor.categories)


async def add_vocabulary_tags(info: Info, tags: Annotated[list[str], strawberry.argument(
        description="1 to 100 tags; each trimmed and lower-cased, at most 64 characters")]) -> list[str]:
    uid = info.context.require_user()  # IsAdmin on the field checked the rights
    normalised = _normalised(tags, MAX_VOCABULARY_TAGS)
    await info.context.services.vocabulary.add_tags(normalised, added_by=uid)
    return normalised


def _edit_refusals() -> contextlib.AbstractContextManager[None]:
    return photo_refusals("only the photo's owner or an admin may edit it", InvalidEdit)


async def update_photo(info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The photo to change")],
                       title: Annotated[str | None, strawberry.argument(
                           description="The new title, at most 200 characters; null or blank removes it")] = None,
                       ) -> Photo:
    with _edit_refusals():
        doc = await info.context.services.photo_editor.update_title(info.context.require_viewer(), str(id), title)
    return Photo.from_doc(doc)


async def set_category(info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The photo to move")],
                       category: Annotated[str, strawberry.argument(
                           description="One of `categories` (any case)")]) -> Photo:
    with _edit_refusals():
        doc = await info.context.services.photo_editor.set_category(info.context.require_viewer(), str(id), category)
    return Photo.from_doc(doc)
