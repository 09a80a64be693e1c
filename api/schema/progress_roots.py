"""Player progress on the root types: the time zone days are counted in. The stats are `me { stats }`."""

from __future__ import annotations

import strawberry

from accounts.rate_limits import Action
from api.permissions import IsAuthenticated
from api.resolvers import progress as resolvers
from api.schema.progress import PlayerStats
from api.throttle import Throttle


@strawberry.type
class ProgressMutation:
    set_time_zone: PlayerStats = strawberry.mutation(
        resolver=resolvers.set_time_zone, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.EDIT)],
        description="Count the player's days (streak, daily goal) in this IANA time zone, e.g. 'Europe/Paris', from "
                    "the next vote on; unknown names are BAD_USER_INPUT. The default is UTC",
    )
