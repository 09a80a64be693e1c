"""What an owner (or an admin) may change of a photo: its title and its category.

Who may: the owner and admins. A photo the caller may not even see (another user's, still processing or
failed) is answered as missing, not as forbidden, so its existence is not told.

A new category is one of the vocabulary's (`ml/data/categories.txt`); the model's choice is kept on the
photo (`category_model`, see `storage.photos`). Matchmaking's catalogue learns the change through
`on_recategorised`: at once in this process, in the others at their full reload
(`PHOTODUEL_CATALOGUE_RELOAD_SECONDS`); until then they may pair the photo in its old category, which
costs a less fitting pair, nothing more (see `gaming.duels.catalogue`). The lists (`photos(category:)`)
read the database, so they show the change at once everywhere; the similarity groups' listing is
ordered by stored summaries, so the photo's group is summarised again before the request answers
(`refresh_groups`, `photos.group_listing`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bson import ObjectId

from photos.group_listing import RefreshGroups, no_refresh
from photos.queries import Viewer, category_filter, visible
from photos.upload_rules import UploadArgumentError, UploadRules
from storage.base import Doc, parse_object_id
from storage.photos import READY, PhotoRepository


class PhotoNotFound(LookupError):
    """No photo of that id that the caller may see."""


class NotPhotoOwner(PermissionError):
    """The caller sees the photo but neither owns it nor is an admin."""


class InvalidEdit(ValueError):
    """An argument the edit cannot take; `argument` names it."""

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


async def visible_photo(photos: PhotoRepository, viewer: Viewer, photo_id: str) -> Doc:
    """The photo of that public id if the viewer may see it; PhotoNotFound otherwise (a bad id, an
    unknown photo, or one not theirs to see: its existence is not told)."""
    oid: ObjectId | None = parse_object_id(photo_id)
    doc = await photos.get(oid) if oid is not None else None
    if doc is None or not visible(doc, viewer):
        raise PhotoNotFound(photo_id)
    return doc


class PhotoEditor:
    def __init__(self, photos: PhotoRepository, rules: UploadRules, categories: Iterable[str], *,
                 on_recategorised: Callable[[Mapping[str, Any]], None] = lambda doc: None,
                 refresh_groups: RefreshGroups = no_refresh) -> None:
        self.photos = photos
        self.rules = rules
        self.categories = tuple(categories)
        self.on_recategorised = on_recategorised
        self.refresh_groups = refresh_groups

    async def update_title(self, viewer: Viewer, photo_id: str, title: str | None) -> Doc:
        """The same rule as an upload's title (`UploadRules.title`): trimmed, a blank one removes it."""
        try:
            wanted = self.rules.title(title)
        except UploadArgumentError as exc:
            raise InvalidEdit(str(exc), argument=exc.argument) from None
        doc = await self._editable(viewer, photo_id)
        updated = await self.photos.set_title(doc["_id"], wanted)
        if updated is None:
            raise PhotoNotFound(photo_id)
        return updated

    async def set_category(self, viewer: Viewer, photo_id: str, category: str) -> Doc:
        wanted = category_filter(category)
        if wanted not in self.categories:
            raise InvalidEdit(f"unknown category {category!r}: one of {', '.join(self.categories)}",
                              argument="category")
        doc = await self._editable(viewer, photo_id)
        if doc["status"] != READY:
            raise InvalidEdit("the photo is not READY: its category is chosen once it is processed", argument="id")
        updated = await self.photos.set_category(doc["_id"], wanted)
        if updated is None:
            raise PhotoNotFound(photo_id)
        self.on_recategorised(updated)
        await self.refresh_groups([updated])
        return updated

    async def _editable(self, viewer: Viewer, photo_id: str) -> Doc:
        doc = await visible_photo(self.photos, viewer, photo_id)
        if not viewer.admin and doc.get("owner") != viewer.uid:
            raise NotPhotoOwner(photo_id)
        return doc
