"""What deleting a photo and erasing an account answer."""

from __future__ import annotations

from datetime import datetime

import strawberry


@strawberry.type(description="A photo's deletion: the same answer however often it is asked for")
class PhotoDeletion:
    photo_id: strawberry.ID = strawberry.field(
        description="The deleted photo: from now on in no list, search, similar photos, featured set or duel, "
                    "and its image URLs answer 404")
    deleted_at: datetime = strawberry.field(
        description="When it was deleted; its files, vectors and notifications are removed shortly after, by a "
                    "job; its votes stay in the log, so no other photo's rating moves")


@strawberry.type(description="An account's erasure, under way")
class AccountDeletion:
    user_id: strawberry.ID = strawberry.field(description="The account being erased")
    requested_at: datetime = strawberry.field(
        description="When its erasure was first asked for. From then on the account's requests get FORBIDDEN "
                    "and its photos are gone; a job removes the rest (devices, notifications, files, its uid on "
                    "its votes), and once it is done a sign-in with the same uid starts a new, empty account")
