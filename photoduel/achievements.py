"""How player progress is announced: the game's achievements (`gaming.progress`) as notifications.

Here, in the wiring, because the game and the notifications share a layer and do not know each other.
"""

from __future__ import annotations

from gaming.duels.progress_projector import Announce
from gaming.progress import Achievement
from notifications.service import NotificationService


def progress_announcer(notifications: NotificationService) -> Announce:
    async def announce(achievement: Achievement) -> None:
        if achievement.badge is not None:
            await notifications.announce_badge(achievement.player, achievement.badge)
        elif achievement.day is not None and achievement.goal is not None:
            await notifications.announce_daily_goal(achievement.player, achievement.day, achievement.goal)

    return announce
