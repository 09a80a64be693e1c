"""Similarity groups on the root: the listing of groups, best first."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.schema.common import Connection, connection, page_size, paged
from api.schema.photos import PhotoGroup
from photos.queries import category_filter

CATEGORY = "Only the groups whose best photo is of this category; all groups when null"


async def groups(info: Info,
                 category: Annotated[str | None, strawberry.argument(description=CATEGORY)] = None,
                 first: int | None = None,
                 after: str | None = None,
                 ) -> Connection[PhotoGroup]:
    size = page_size(first, info.context.services.settings.max_page_size)
    with paged():
        page = await info.context.services.group_reads.ranked(category_filter(category) if category else None,
                                                              first=size, after=after)
    return connection(page, lambda doc: PhotoGroup.of(doc["_id"]))
