"""Player progress rules: the vote count, the daily streak in the player's time zone, the daily goal and
the badges. Pure: the projector (`gaming.duels.progress_projector`) feeds votes in, the service shows a day.

Days are the player's calendar days: a vote belongs to the day its instant falls on in the player's IANA
zone, so a vote at 23:59 and one at 00:01 local time are two days whatever UTC says, and a 23- or
25-hour day (a DST change) is still one day. The streak is the run of consecutive local days with at
least one vote, ending on the day of the latest vote; it is shown while it can still be extended (the
latest vote was today or yesterday). A vote whose local day is earlier than the latest one (the player
moved the clock back by changing zone) counts as a vote and leaves the days alone: a streak only grows
forwards.

Each badge is earned once, at the vote (or the featuring) that first met its rule; each day's goal is
reached once, by the vote that makes the day's count equal the goal.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from types import MappingProxyType

DEFAULT_ZONE = "UTC"

FIRST_VOTE = "FIRST_VOTE"
VOTES_100 = "VOTES_100"
WEEK_STREAK = "WEEK_STREAK"
PHOTO_FEATURED = "PHOTO_FEATURED"
BADGES = (FIRST_VOTE, VOTES_100, WEEK_STREAK, PHOTO_FEATURED)
# What each vote badge asks for: a number of votes, or a streak of that many days.
VOTE_BADGES = ((FIRST_VOTE, 1), (VOTES_100, 100))
STREAK_BADGES = ((WEEK_STREAK, 7),)

# An achievement older than this when it is found (a backlog replayed after an outage, a first run over
# an existing vote log) is recorded without a notification: a push about last month's vote is noise.
ANNOUNCE_WITHIN = timedelta(days=1)


class InvalidTimeZone(ValueError):
    """Not an IANA time zone name (`Europe/Paris`, `America/New_York`, `UTC`)."""


@functools.cache
def _known_zones() -> frozenset[str]:
    # `localtime` is listed where the system's zone directory links it: the server's zone, not a name
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone called `name`. Only the zone database's names are accepted: `ZoneInfo` would also open
    other files found under the zone directories (`posixrules`, paths), which no client can mean.
    Raises InvalidTimeZone."""
    if name not in _known_zones():
        raise InvalidTimeZone(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'")
    return zoneinfo.ZoneInfo(name)


def zone_or_default(name: str | None) -> zoneinfo.ZoneInfo:
    """The stored zone, or UTC when the player never set one (or it left the database)."""
    try:
        return time_zone(name or DEFAULT_ZONE)
    except InvalidTimeZone:
        return zoneinfo.ZoneInfo(DEFAULT_ZONE)


def local_day(moment: datetime, zone: tzinfo) -> date:
    """The calendar day `moment` falls on in `zone`; a naive `moment` is taken as UTC (as stored)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).date()


@dataclass(frozen=True)
class Progress:
    """One player's counters. `streak` is the run of days ending on `last_day`; `day_votes` the votes on
    `last_day`. `badges`: badge -> when it was earned."""

    votes: int = 0
    streak: int = 0
    longest_streak: int = 0
    last_day: date | None = None
    day_votes: int = 0
    badges: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Achievement:
    """Something to tell the player: a badge earned, or a day's goal reached (`day`, `goal`)."""

    player: str
    at: datetime
    badge: str | None = None
    day: date | None = None
    goal: int | None = None


def _next_days(progress: Progress, day: date) -> Progress:
    """The streak and day counters after one more vote on `day`."""
    last = progress.last_day
    if last is not None and day < last:
        return progress
    if last == day:
        return replace(progress, day_votes=progress.day_votes + 1)
    streak = progress.streak + 1 if last is not None and day - last == timedelta(days=1) else 1
    return replace(progress, streak=streak, longest_streak=max(progress.longest_streak, streak), last_day=day,
                   day_votes=1)


def _new_badges(progress: Progress) -> list[str]:
    met = [badge for badge, votes in VOTE_BADGES if progress.votes >= votes]
    met += [badge for badge, days in STREAK_BADGES if progress.longest_streak >= days]
    return [badge for badge in met if badge not in progress.badges]


def after_vote(progress: Progress, player: str, at: datetime, zone: tzinfo,
               goal: int) -> tuple[Progress, list[Achievement]]:
    """The counters after one vote cast at `at`, and what it achieved."""
    day = local_day(at, zone)
    before_day_votes = progress.day_votes if progress.last_day == day else 0
    counted = _next_days(replace(progress, votes=progress.votes + 1), day)
    achieved = [Achievement(player, at, badge=b) for b in _new_badges(counted)]
    if counted.last_day == day and before_day_votes < goal <= counted.day_votes:
        achieved.append(Achievement(player, at, day=day, goal=goal))
    if achieved:
        earned = {a.badge: a.at for a in achieved if a.badge is not None}
        counted = replace(counted, badges=MappingProxyType({**counted.badges, **earned}))
    return counted, achieved


def after_votes(progress: Progress, player: str, times: Iterable[datetime], zone: tzinfo,
                goal: int) -> tuple[Progress, list[Achievement]]:
    """`after_vote` for each vote in order."""
    achieved: list[Achievement] = []
    for at in times:
        progress, new = after_vote(progress, player, at, zone, goal)
        achieved += new
    return progress, achieved


def worth_announcing(achievement: Achievement, now: datetime) -> bool:
    return now - achievement.at <= ANNOUNCE_WITHIN


@dataclass(frozen=True)
class DayView:
    """Progress as the player sees it on `today` (their local day)."""

    votes: int
    streak_days: int
    longest_streak_days: int
    today: date
    today_votes: int
    goal: int


def as_of(progress: Progress, today: date, goal: int) -> DayView:
    """A streak whose last vote was before yesterday is broken (0); today's count is 0 until a vote today."""
    alive = progress.last_day is not None and progress.last_day >= today - timedelta(days=1)
    return DayView(
        votes=progress.votes, streak_days=progress.streak if alive else 0,
        longest_streak_days=progress.longest_streak, today=today,
        today_votes=progress.day_votes if progress.last_day == today else 0, goal=goal,
    )
