from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from api.errors import BadUserInput, Forbidden, NotFound, Unavailable
from api.schema.common import Connection, Edge, PageInfo, page_size
from api.schema.photos import Photo, PhotoOrder, SimilarPhoto
from ml.images import ImageRejected
from ml.pipelines.models import ModelNotReady
from ml.pipelines.search import search_by_text
from ml.vocabulary import normalise_tag
from storage.base import parse_object_id
from storage.pagination import InvalidCursor
from storage.photos import BEST, NEWEST, OLDEST, READY, Page, PhotoRepository, TagLimitExceeded
from storage.photos import accept_tags as accept_photo_tags
from storage.photos import reject_tags as reject_photo_tags

ORDERS = {PhotoOrder.NEWEST: NEWEST, PhotoOrder.OLDEST: OLDEST, PhotoOrder.SCORE: BEST}


async def photo(info: Info, id: strawberry.ID) -> Photo | None:
    oid = parse_object_id(id)
    if oid is None:
        return None
    doc = await info.context.loaders.photo.load(oid)
    if doc is None or not visible(info, doc):
        return None
    return Photo.from_doc(doc)


def visible(info: Info, doc: dict[str, Any]) -> bool:
    """READY photos are public; one still processing or failed is visible to its owner and admins."""
    principal = info.context.principal
    return doc["status"] == READY or principal.admin or principal.uid == doc.get("owner")


def to_connection(page: Page) -> Connection[Photo]:
    edges = [Edge(cursor=c, node=Photo.from_doc(d)) for d, c in zip(page.docs, page.cursors, strict=True)]
    return Connection(edges=edges, page_info=PageInfo(has_next_page=page.has_next,
                                                       end_cursor=page.cursors[-1] if page.cursors else None))


async def paginate(info: Info, query: dict[str, Any], order: PhotoOrder, first: int | None,
                   after: str | None) -> Connection[Photo]:
    size = page_size(first, info.context.services.settings.max_page_size)
    try:
        page = await PhotoRepository(info.context.services.db).page(query, ORDERS[order], first=size, after=after)
    except InvalidCursor as exc:
        raise BadUserInput(str(exc), argument="after") from None
    return to_connection(page)


async def photos(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    tag: str | None = None,
    category: str | None = None,
    order_by: PhotoOrder = PhotoOrder.NEWEST,
) -> Connection[Photo]:
    query: dict[str, Any] = {"status": READY}
    if tag:
        query["tags"] = tag.strip().lower()
    if category:
        query["category"] = category.strip().lower()
    if order_by == PhotoOrder.SCORE:
        query["rating.conservative"] = {"$exists": True}
    return await paginate(info, query, order_by, first, after)


async def upload_photo(info: Info, file: Any, title: str | None) -> Photo:
    services = info.context.services
    owner = info.context.require_user()
    data = await read_upload(file, services.settings.max_upload_bytes)
    try:
        result = await services.uploads.upload(
            owner, data, declared_type=getattr(file, "content_type", None),
            filename=getattr(file, "filename", None), title=title,
        )
    except ImageRejected as exc:
        raise BadUserInput(str(exc), reason=exc.reason, argument="file") from None
    except ValueError as exc:
        raise BadUserInput(str(exc), argument="title") from None
    return Photo.from_doc(result.photo)


async def read_upload(file: Any, max_bytes: int) -> bytes:
    """Read at most max_bytes + 1, so an oversized file is refused without holding all of it."""
    if not hasattr(file, "read"):
        raise BadUserInput("`file` must be a file part of a multipart request", argument="file")
    data = await file.read(max_bytes + 1)
    return bytes(data)


async def _own_photo(info: Info, photo_id: str) -> Any:
    uid = info.context.require_user()
    oid = parse_object_id(photo_id)
    doc = await info.context.services.photos.get(oid) if oid else None
    if doc is None:
        raise NotFound("no such photo", argument="photoId")
    if doc["owner"] != uid:
        raise Forbidden("only the photo's owner may review its tags")
    return doc


def _normalised(tags: list[str]) -> list[str]:
    if not tags:
        raise BadUserInput("give at least one tag", argument="tags")
    try:
        return list(dict.fromkeys(normalise_tag(t) for t in tags))
    except ValueError as exc:
        raise BadUserInput(str(exc), argument="tags") from None


async def accept_tags(info: Info, photo_id: strawberry.ID, tags: list[str]) -> Photo:
    doc = await _own_photo(info, photo_id)
    try:
        updated = await accept_photo_tags(info.context.services.photos, doc["_id"], _normalised(tags))
    except TagLimitExceeded as exc:
        raise BadUserInput(str(exc), argument="tags") from None
    if updated is None:
        raise NotFound("no such photo", argument="photoId")
    return Photo.from_doc(updated)


async def reject_tags(info: Info, photo_id: strawberry.ID, tags: list[str]) -> Photo:
    doc = await _own_photo(info, photo_id)
    updated = await reject_photo_tags(info.context.services.photos, doc["_id"], _normalised(tags))
    if updated is None:
        raise NotFound("no such photo", argument="photoId")
    return Photo.from_doc(updated)


async def search_photos(info: Info, text: str, first: int | None = None) -> list[Photo]:
    text = text.strip()
    if not text or len(text) > 300:
        raise BadUserInput("`text` must be 1 to 300 characters", argument="text")
    size = page_size(first, info.context.services.settings.max_page_size)
    try:
        services = info.context.services
        docs = await search_by_text(services.analyzer, services.vectors, services.photos, text, limit=size)
    except ModelNotReady as exc:
        raise Unavailable(f"search is unavailable while the model is not ready: {exc}") from None
    return [Photo.from_doc(d) for d in docs]


async def similar_photos(info: Info, photo_id: strawberry.ID, first: int | None = None) -> list[SimilarPhoto]:
    size = page_size(first, info.context.services.settings.max_page_size)
    oid = parse_object_id(photo_id)
    doc = await info.context.loaders.photo.load(oid) if oid else None
    if doc is None or not visible(info, doc):
        raise NotFound("no such photo", argument="photoId")
    result: list[SimilarPhoto] = []
    for entry in doc.get("neighbours", []):
        neighbour = await info.context.loaders.photo.load(entry["id"])
        if neighbour is not None and neighbour["status"] == READY:
            result.append(SimilarPhoto(photo=Photo.from_doc(neighbour), similarity=entry["similarity"]))
        if len(result) >= size:
            break
    return result


async def tag_vocabulary(info: Info) -> list[str]:
    services = info.context.services
    extra = await services.vocabulary.extra_tags()
    return list(services.analyzer.base_vocabulary.with_tags(extra).tags)


async def add_vocabulary_tags(info: Info, tags: list[str]) -> list[str]:
    uid = info.context.require_admin()
    normalised = _normalised(tags)
    await info.context.services.vocabulary.add_tags(normalised, added_by=uid)
    return normalised
