"""The photo reads the API offers: a photo as its viewer may see it, lists by tag or category, similar photos.

Filters are normalised here, the way the values were stored: a tag filter goes through `normalise_tag`,
the function accepted tags went through, so any spelling that would store a tag finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from bson import ObjectId

from ml.vocabulary import normalise_tag
from storage.base import Doc
from storage.pagination import Page
from storage.photos import BEST, DELETED, NEWEST, OLDEST, READY, PhotoRepository


class Order(Enum):
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"
    SCORE = "SCORE"


SORTS = {Order.NEWEST: NEWEST, Order.OLDEST: OLDEST, Order.SCORE: BEST}


@dataclass(frozen=True)
class Viewer:
    uid: str | None
    admin: bool = False


class InvalidFilter(ValueError):
    """A filter value that no stored value could equal; `argument` names the filter."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


def visible(doc: Doc, viewer: Viewer) -> bool:
    """READY photos are public; one still processing or failed is visible to its owner and admins; a
    deleted one (its tombstone) to no one."""
    if doc["status"] == DELETED:
        return False
    return bool(doc["status"] == READY or viewer.admin or (viewer.uid is not None and viewer.uid == doc.get("owner")))


def category_filter(category: str) -> str:
    """Categories are stored lower-case, from the vocabulary's names."""
    return category.strip().lower()


class PhotoQueries:
    def __init__(self, photos: PhotoRepository) -> None:
        self.photos = photos

    async def browse(self, order: Order, *, tag: str | None = None, category: str | None = None, first: int,
                     after: str | None, excluding_owners: Sequence[str] = ()) -> Page:
        """READY photos in `order`, optionally with a tag or of a category, none of `excluding_owners`
        (the viewer's blocked users). Raises InvalidFilter for a tag that cannot be one, InvalidCursor
        for a cursor that is not ours."""
        if tag:
            try:
                tag = normalise_tag(tag)
            except ValueError as exc:
                raise InvalidFilter(str(exc), argument="tag") from None
        return await self.photos.browse(SORTS[order], tag=tag or None,
                                        category=category_filter(category) if category else None,
                                        excluding_owners=excluding_owners, first=first, after=after)

    async def owned(self, owner: str, *, status: str | None = None, first: int, after: str | None) -> Page:
        """The owner's own photos, every status unless one is asked for (PROCESSING and FAILED included,
        the failure with its reason on the document), newest first. Raises InvalidCursor."""
        return await self.photos.owned(owner, status=status, first=first, after=after)

    async def similar(self, doc: Doc, *, limit: int, excluding_owners: Sequence[str] = ()) -> list[tuple[Doc, float]]:
        """The photo's kept neighbours that are READY, most similar first, with their similarity; none of
        `excluding_owners`."""
        entries: Sequence[Doc] = doc.get("neighbours", [])
        ids: list[ObjectId] = [e["id"] for e in entries]
        found = {d["_id"]: d for d in await self.photos.ready_many(ids, excluding_owners=excluding_owners)}
        return [(found[e["id"]], float(e["similarity"])) for e in entries if e["id"] in found][:limit]
