"""Player progress as the player sees it: what the API and the chores call.

The counters are the progress projector's (`gaming.duels.progress_projector`); here they are shown for the
player's today, the zone is set, the featured badge is awarded, and a player's progress is forgotten
(account erasure). Agreement is not stored: it compares the player's votes with the ratings as they
stand now, the statistic the voter screening uses (`VoterScreening.agreement`), so it is read when asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from gaming.duels.progress_projector import Announce, progress_from_doc
from gaming.progress import (
    DEFAULT_ZONE,
    PHOTO_FEATURED,
    Achievement,
    DayView,
    as_of,
    local_day,
    time_zone,
    zone_or_default,
)
from gaming.vote_integrity import Agreement
from storage.base import Doc
from storage.clock import utcnow
from storage.player_progress import PlayerProgressRepository


@dataclass(frozen=True)
class PlayerStats:
    player: str
    zone: str
    day: DayView
    badges: list[tuple[str, datetime]]  # (badge, earned_at), in the order earned


class PlayerProgress:
    def __init__(self, progress: PlayerProgressRepository, *, goal: int,
                 agreement: Callable[[str], Awaitable[Agreement]], agreement_min_votes: int,
                 announce: Announce) -> None:
        self.progress = progress
        self.goal = goal
        self._agreement = agreement
        self.agreement_min_votes = agreement_min_votes
        self.announce = announce

    def _stats(self, player: str, doc: Doc | None, now: datetime) -> PlayerStats:
        zone_name = (doc or {}).get("zone") or DEFAULT_ZONE
        progress = progress_from_doc(doc)
        day = as_of(progress, local_day(now, zone_or_default(zone_name)), self.goal)
        badges = sorted(progress.badges.items(), key=lambda b: (b[1], b[0]))
        return PlayerStats(player=player, zone=zone_name, day=day, badges=badges)

    async def stats(self, player: str, *, now: datetime | None = None) -> PlayerStats:
        """The player's progress on their today (`now`'s day in their zone)."""
        return self._stats(player, await self.progress.get(player), now or utcnow())

    async def set_time_zone(self, player: str, name: str) -> PlayerStats:
        """Days are counted in this zone from the next vote on. Raises `gaming.progress.InvalidTimeZone`."""
        time_zone(name)
        return self._stats(player, await self.progress.set_zone(player, name), utcnow())

    async def agreement(self, player: str) -> float | None:
        """How often the player picked the photo the settled ratings favour; None below the minimum of
        votes it is measured on (a rate over a handful of votes is mostly luck)."""
        measured = await self._agreement(player)
        if measured.votes < self.agreement_min_votes:
            return None
        return measured.rate

    async def photo_featured(self, owner: str, *, at: datetime | None = None) -> bool:
        """A photo of `owner` entered a featured set: the badge, once. Announced first (keyed, once per
        player and badge), so a crash before the award repeats the key rather than losing the news."""
        achievement = Achievement(owner, at or utcnow(), badge=PHOTO_FEATURED)
        await self.announce(achievement)
        return await self.progress.award(owner, PHOTO_FEATURED, achievement.at)

    async def forget(self, player: str) -> bool:
        """Erase the player's progress (account erasure); True if there was any."""
        return await self.progress.forget(player)
