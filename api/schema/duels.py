"""Duels, votes and promotion on the root types."""

from __future__ import annotations

import strawberry

from accounts.rate_limits import Action
from api.permissions import IsAuthenticated
from api.resolvers import duels as resolvers
from api.schema.common import Connection
from api.schema.duel_types import Duel, VoteResult
from api.schema.photos import Photo
from api.throttle import Throttle


@strawberry.type
class DuelQuery:
    next_duel: Duel | None = strawberry.field(
        resolver=resolvers.next_duel, permission_classes=[IsAuthenticated],
        extensions=[Throttle(Action.DUEL, Action.OPEN_TICKET)],
        description="The next pair for the signed-in player; null when no pair is available",
    )
    leaderboard: Connection[Photo] = strawberry.field(
        resolver=resolvers.leaderboard, description="Settled photos, best first, per category and period"
    )
    featured_connection: Connection[Photo] = strawberry.field(
        resolver=resolvers.featured_connection,
        description="The best settled photos, best first, paged; by default one per similarity group",
    )
    featured: list[Photo] = strawberry.field(
        resolver=resolvers.featured, description="The best settled photos",
        deprecation_reason="Use featuredConnection: it pages (first/after) like every other growing list",
    )


@strawberry.type
class DuelMutation:
    vote_duel: VoteResult = strawberry.mutation(
        resolver=resolvers.vote_duel, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.VOTE)],
        description="Judge a duel: once, by the player it was issued to, before expiresAt. Repeating a counted vote "
                    "answers it again (accepted: false). DUEL_EXPIRED, ALREADY_VOTED (answered otherwise), "
                    "FORBIDDEN (another player's duel), NOT_FOUND",
    )
    skip_duel: bool = strawberry.mutation(
        resolver=resolvers.skip_duel, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.SKIP)],
        description="Pass on a duel without judging it (also after it expired): its pair is not offered to this "
                    "player again. true; ALREADY_VOTED if it was voted on",
    )
