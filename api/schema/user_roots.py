"""The signed-in user's root fields."""

from __future__ import annotations

import strawberry

from accounts.rate_limits import Action
from api.permissions import IsAuthenticated
from api.resolvers import users as resolvers
from api.schema.users import User
from api.throttle import Throttle


@strawberry.type
class UserQuery:
    me: User | None = strawberry.field(resolver=resolvers.me, description="The signed-in user; null when anonymous")


@strawberry.type
class UserMutation:
    set_display_name: User = strawberry.mutation(
        resolver=resolvers.set_display_name, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.EDIT)],
        description="Choose the public name: 3-30 letters, digits, spaces and . _ -, starting and ending with a "
                    "letter or digit; unique regardless of case (DISPLAY_NAME_TAKEN)",
    )
