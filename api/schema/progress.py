"""Player progress types: `User.stats` and what `setTimeZone` answers. Roots: `progress_roots`."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from gaming.duels.player_progress import PlayerStats as Stats


@strawberry.enum(description="A badge a player earns once")
class BadgeKind(Enum):
    FIRST_VOTE = strawberry.enum_value("FIRST_VOTE", description="Judged a first duel")
    VOTES_100 = strawberry.enum_value("VOTES_100", description="Judged 100 duels")
    WEEK_STREAK = strawberry.enum_value("WEEK_STREAK", description="Voted on seven days in a row (the player's "
                                                                   "days, in their time zone)")
    PHOTO_FEATURED = strawberry.enum_value("PHOTO_FEATURED", description="A photo of the player's entered a "
                                                                         "featured set")


@strawberry.type(description="A badge the player holds")
class Badge:
    kind: BadgeKind = strawberry.field(description="Which badge")
    earned_at: datetime = strawberry.field(description="When the vote (or the featuring) that earned it happened")


@strawberry.type(description="The player's votes today against the daily goal; today is the player's local day")
class DailyGoal:
    day: date = strawberry.field(description="Today in the player's time zone")
    votes: int = strawberry.field(description="Votes counted today")
    goal: int = strawberry.field(description="Votes a day that reach the goal (the same for every player)")
    reached: bool = strawberry.field(description="votes >= goal (announced once a day as a DAILY_GOAL notification)")


@strawberry.type(description="A player's progress. Counts follow the vote log: a vote is counted once the "
                             "ratings took it in, usually within a second of voteDuel")
class PlayerStats:
    votes: int = strawberry.field(description="Votes cast (skips are not votes)")
    streak_days: int = strawberry.field(description="Consecutive days with at least one vote, up to today or "
                                                    "yesterday (a vote today extends it); 0 once a day was missed")
    longest_streak_days: int = strawberry.field(description="The longest streak so far")
    time_zone: str = strawberry.field(description="The IANA zone days are counted in (setTimeZone); UTC until set")
    today: DailyGoal = strawberry.field(description="Today's votes and the daily goal")
    badges: list[Badge] = strawberry.field(description="The badges held, in the order earned")
    player: strawberry.Private[str]

    @classmethod
    def from_stats(cls, stats: Stats) -> PlayerStats:
        day = stats.day
        return cls(
            votes=day.votes, streak_days=day.streak_days, longest_streak_days=day.longest_streak_days,
            time_zone=stats.zone,
            today=DailyGoal(day=day.today, votes=day.today_votes, goal=day.goal, reached=day.today_votes >= day.goal),
            badges=[Badge(kind=BadgeKind(kind), earned_at=at) for kind, at in stats.badges
                    if kind in BadgeKind.__members__],
            player=stats.player,
        )

    @strawberry.field(description="How often the player's votes picked the photo the settled ratings now favour, "
                                  "from 0 to 1 (about 0.5 is a coin; voting like the consensus scores higher); "
                                  "null until enough of the player's votes are between rated photos")
    async def agreement(self, info: Info) -> float | None:
        return await info.context.services.progress.agreement(self.player)
