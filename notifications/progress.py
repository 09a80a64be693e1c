"""Player progress announcements: a badge earned, a day's vote goal reached. Kinds BADGE and DAILY_GOAL,
muted like every other kind (`notifications.preferences`).

Keyed like every outbox record: a badge once per player (`badge:<player>:<badge>`), a goal once per
player and local day (`goal:<player>:<day>`), so the projector repeating a batch, or the featured chore
repeating a photo, never announces twice. The badge names are the game's (`gaming.progress`); the words
shown for them are here, with the other notifications' copy.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from notifications.outbox import BADGE, DAILY_GOAL, Outbox

PROGRESS_LINK = "photoduel://me/progress"

BADGE_COPY = {
    "FIRST_VOTE": ("First vote!", "You judged your first duel. Welcome to PhotoDuel."),
    "VOTES_100": ("100 votes!", "You have judged 100 duels."),
    "WEEK_STREAK": ("A week's streak!", "You voted seven days in a row."),
    "PHOTO_FEATURED": ("Featured photographer!", "One of your photos made it into the featured set."),
}


async def announce_badge(outbox: Outbox, user: str, badge: str) -> tuple[dict[str, Any], bool]:
    """"You earned a badge", once per user and badge."""
    title, body = BADGE_COPY.get(badge, ("New badge!", "You earned a badge."))
    return await outbox.record(
        key=f"badge:{user}:{badge}", user=user, kind=BADGE, title=title, body=body,
        data={"kind": BADGE, "badge": badge, "deepLink": PROGRESS_LINK},
    )


async def announce_daily_goal(outbox: Outbox, user: str, day: date, goal: int) -> tuple[dict[str, Any], bool]:
    """"Daily goal reached", once per user and (their local) day."""
    noun = "vote" if goal == 1 else "votes"
    return await outbox.record(
        key=f"goal:{user}:{day.isoformat()}", user=user, kind=DAILY_GOAL, title="Daily goal reached!",
        body=f"{goal} {noun} today. Come back tomorrow to keep your streak going.",
        data={"kind": DAILY_GOAL, "day": day.isoformat(), "goal": str(goal), "deepLink": PROGRESS_LINK},
    )
