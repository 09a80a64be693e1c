"""The signed-in user's root field."""

from __future__ import annotations

import strawberry

from api.resolvers import users as resolvers
from api.schema.users import User


@strawberry.type
class UserQuery:
    me: User | None = strawberry.field(resolver=resolvers.me, description="The signed-in user; null when anonymous")
