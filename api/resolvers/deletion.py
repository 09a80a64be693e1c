from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.errors import Forbidden, NotFound
from api.resolvers.photo_refusals import photo_refusals
from api.schema.deletion import AccountDeletion, PhotoDeletion
from photos.account_erasure import NotYourAccount, UnknownAccount


async def delete_photo(info: Info, id: Annotated[strawberry.ID, strawberry.argument(
        description="The photo to delete")]) -> PhotoDeletion:
    with photo_refusals("only the photo's owner or an admin may delete it"):
        deletion = await info.context.services.photo_deletion.delete(info.context.require_viewer(), str(id))
    return PhotoDeletion(photo_id=strawberry.ID(str(deletion.photo_id)), deleted_at=deletion.deleted_at)


async def delete_account(info: Info, user_id: Annotated[strawberry.ID | None, strawberry.argument(
        description="Admins only: the account to erase; the caller's own when null")] = None) -> AccountDeletion:
    try:
        erasure = await info.context.services.account_erasure.request(info.context.require_viewer(),
                                                                      str(user_id) if user_id else None)
    except UnknownAccount:
        raise NotFound("no such user", argument="userId") from None
    except NotYourAccount:
        raise Forbidden("only an admin may delete another user's account") from None
    return AccountDeletion(user_id=strawberry.ID(erasure.uid), requested_at=erasure.requested_at)
