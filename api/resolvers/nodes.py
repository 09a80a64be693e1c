"""`node(id:)` and `nodes(ids:)`: an id to the object it names, by the id's shape then one indexed read per
candidate type, so refetching by id costs what the type's own root field costs.

What the caller may not see reads as null, exactly like an unknown id: a hidden photo, another user's
notification, a group with no READY member, a person with nothing public.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import strawberry
from bson import ObjectId
from strawberry.types import Info

from api.resolvers.photos import visible
from api.schema.common import capped
from api.schema.node import Node
from api.schema.notifications import Notification
from api.schema.photos import Photo, PhotoGroup
from api.schema.profiles import PublicProfile
from storage.base import parse_object_id

#: `nodes(ids:)` takes at most this many ids: a client refetching a page, not a bulk export.
MAX_NODE_IDS = 100


async def _by_object_id(info: Info, oid: ObjectId) -> Node | None:
    photo = await info.context.loaders.photo.load(oid)
    if photo is not None:
        return Photo.from_doc(photo) if visible(info, photo) else None
    view = await info.context.loaders.group.load(oid)
    if view.members:
        return PhotoGroup.of(oid)
    uid = info.context.principal.uid
    if uid is not None:
        record = await info.context.loaders.notification.load((uid, oid))
        if record is not None:
            return Notification.from_record(record)
    return None


async def _by_uid(info: Info, uid: str) -> Node | None:
    profile = await info.context.loaders.owner.load(uid)
    if profile.display_name is None and profile.photo_count == 0:
        return None
    return PublicProfile.from_profile(profile)


async def _resolve(info: Info, raw: str) -> Node | None:
    raw = raw.strip()
    if not raw or len(raw) > 128:
        return None
    oid = parse_object_id(raw)
    found = await _by_object_id(info, oid) if oid is not None else None
    # a uid may look like an ObjectId (custom auth uids are the deployment's choice): people last
    return found if found is not None else await _by_uid(info, raw)


async def node(info: Info, id: Annotated[strawberry.ID, strawberry.argument(
        description="The `id` of any Node")]) -> Node | None:
    return await _resolve(info, str(id))


async def nodes(info: Info, ids: Annotated[list[strawberry.ID], strawberry.argument(
        description=f"Ids of any Nodes, at most {MAX_NODE_IDS}")]) -> list[Node | None]:
    capped(ids, "ids", MAX_NODE_IDS)
    # together, so the DataLoaders read each type's candidates in one batch
    return list(await asyncio.gather(*(_resolve(info, str(i)) for i in ids)))
