"""Deleting a photo and erasing an account: the mutations."""

from __future__ import annotations

import strawberry

from accounts.rate_limits import Action
from api.permissions import IsAuthenticated
from api.resolvers import deletion as resolvers
from api.schema.deletion import AccountDeletion, PhotoDeletion
from api.throttle import Throttle


@strawberry.type
class DeletionMutation:
    delete_photo: PhotoDeletion = strawberry.mutation(
        resolver=resolvers.delete_photo, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.EDIT)],
        description="The owner (or an admin) deletes a photo, at once and for good; idempotent (a repeat "
                    "answers the same). Another user's: FORBIDDEN; an unknown id: NOT_FOUND",
    )
    delete_account: AccountDeletion = strawberry.mutation(
        resolver=resolvers.delete_account, permission_classes=[IsAuthenticated],
        description="Erase the signed-in user's account: its photos, devices, notifications and profile; its "
                    "votes stay under a random id, so no photo's rating moves. `userId`: an admin erases "
                    "another user's account (others: FORBIDDEN; an unknown user: NOT_FOUND). The client "
                    "signs out afterwards: every request of the account is refused",
    )
