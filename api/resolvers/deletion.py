from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.errors import Forbidden, NotFound
from api.schema.deletion import AccountDeletion, PhotoDeletion
from photos.account_erasure import NotYourAccount, UnknownAccount
from photos.deletion import NotPhotoOwner, PhotoNotFound
from photos.queries import Viewer


def _viewer(info: Info) -> Viewer:
    return Viewer(uid=info.context.require_user(), admin=info.context.principal.admin)


async def delete_photo(info: Info, id: Annotated[strawberry.ID, strawberry.argument(
        description="The photo to delete")]) -> PhotoDeletion:
    try:
        deletion = await info.context.services.photo_deletion.delete(_viewer(info), str(id))
    except PhotoNotFound:
        raise NotFound("no such photo", argument="id") from None
    except NotPhotoOwner:
        raise Forbidden("only the photo's owner or an admin may delete it") from None
    return PhotoDeletion(photo_id=strawberry.ID(str(deletion.photo_id)), deleted_at=deletion.deleted_at)


async def delete_account(info: Info, user_id: Annotated[strawberry.ID | None, strawberry.argument(
        description="Admins only: the account to erase; the caller's own when null")] = None) -> AccountDeletion:
    try:
        erasure = await info.context.services.account_erasure.request(_viewer(info), str(user_id) if user_id else None)
    except UnknownAccount:
        raise NotFound("no such user", argument="userId") from None
    except NotYourAccount:
        raise Forbidden("only an admin may delete another user's account") from None
    return AccountDeletion(user_id=strawberry.ID(erasure.uid), requested_at=erasure.requested_at)
