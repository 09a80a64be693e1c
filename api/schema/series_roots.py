"""Series rounds and the photographer's private series on the root types."""

from __future__ import annotations

import strawberry

from accounts.rate_limits import Action
from api.permissions import IsAuthenticated
from api.resolvers import series as resolvers
from api.schema.series import SeriesDuel, SeriesDuelResult, SeriesRound, SeriesVoteResult
from api.throttle import Throttle


@strawberry.type
class SeriesQuery:
    next_series_round: SeriesRound | None = strawberry.field(
        resolver=resolvers.next_series_round, permission_classes=[IsAuthenticated],
        extensions=[Throttle(Action.DUEL, Action.OPEN_TICKET)],
        description="The next series round for the signed-in player (PHOTODUEL_SERIES_SIZE photos at most, three "
                    "at least), optionally of one category; null when none is available. Counted as a duel by "
                    "the rate limits",
    )
    next_series_duel: SeriesDuel | None = strawberry.field(
        resolver=resolvers.next_series_duel, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.DUEL)],
        description="Two of your own photos of this similarity group to compare privately (your verdicts rank "
                    "them for you in Photo.seriesRank, never in public ratings); null when you have fewer than two "
                    "READY photos there or compared every pair. FORBIDDEN unless you have a photo in the group",
    )


@strawberry.type
class SeriesMutation:
    vote_series_round: SeriesVoteResult = strawberry.mutation(
        resolver=resolvers.vote_series_round, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.VOTE)],
        description="Answer a series round once: the best photo, optionally a full order. Rated into the public "
                    "ratings like duel votes; BAD_USER_INPUT for a photo the round did not show")
    skip_series_round: bool = strawberry.mutation(
        resolver=resolvers.skip_series_round, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.SKIP)],
        description="Pass on a series round: its photos are not offered together again")
    vote_series_duel: SeriesDuelResult = strawberry.mutation(
        resolver=resolvers.vote_series_duel, permission_classes=[IsAuthenticated], extensions=[Throttle(Action.VOTE)],
        description="Answer one of your private series duels: recorded for your ranking only")
