"""What anyone may see of a user: a photo's owner, without email or admin flag."""

from __future__ import annotations

import strawberry

from accounts.profiles import PublicProfile as Profile
from api.schema.node import Node


@strawberry.type(description="A user as others see them")
class PublicProfile(Node):
    display_name: str | None = strawberry.field(description="null until the user chooses one (setDisplayName)")
    photo_count: int = strawberry.field(description="The user's READY photos")

    @classmethod
    def from_profile(cls, profile: Profile) -> PublicProfile:
        return cls(id=strawberry.ID(profile.id), display_name=profile.display_name, photo_count=profile.photo_count)
