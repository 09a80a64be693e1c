"""Moderation on the root types: reports and blocks for players, the queue and decisions for admins."""

from __future__ import annotations

import strawberry

from accounts.rate_limits import Action
from api.permissions import IsAdmin, IsAuthenticated, described
from api.resolvers import blocks
from api.resolvers import moderation as resolvers
from api.schema.common import Connection
from api.schema.moderation import ModerationCase
from api.schema.photos import Photo
from api.throttle import Throttle


@strawberry.type
class ModerationQuery:
    moderation_queue: Connection[ModerationCase] = strawberry.field(
        resolver=resolvers.moderation_queue, permission_classes=[IsAdmin],
        description=described(resolvers.moderation_queue),
    )


@strawberry.type
class ModerationMutation:
    report_photo: bool = strawberry.mutation(
        resolver=resolvers.report_photo, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.EDIT)],
        description=described(resolvers.report_photo),
    )
    moderate_photo: Photo = strawberry.mutation(
        resolver=resolvers.moderate_photo, permission_classes=[IsAdmin],
        description=described(resolvers.moderate_photo),
    )
    block_user: bool = strawberry.mutation(
        resolver=blocks.block_user, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.EDIT)],
        description=described(blocks.block_user),
    )
    unblock_user: bool = strawberry.mutation(
        resolver=blocks.unblock_user, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.EDIT)],
        description=described(blocks.unblock_user),
    )
