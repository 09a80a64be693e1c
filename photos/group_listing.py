"""How the photo services tell the similarity groups' listing that a photo's showing changed.

The listing (`groups(category, first, after)`) is ordered by stored summaries (`storage.groups`), kept by a
worker chore (`gaming.duels.group_ranks`). A moderator's decision, reports that hide a photo, a deletion
or an owner's new category change what a group shows (its best photo, its size, its category) without
changing its membership, so the services that make those changes hand the photos they changed to this
hook, which summarises their groups at once (`GroupRanks.refresh_photos`). Passed in by the wiring, so the
services need nothing of the game; the default does nothing (the chore's sweep then catches up).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

# The photos as written (each with its `group_id`, if it has one); awaited before the request answers.
RefreshGroups = Callable[[Sequence[Mapping[str, Any]]], Awaitable[object]]


async def no_refresh(photos: Sequence[Mapping[str, Any]]) -> None:
    """No listing to keep current (tools and tests that build a service alone)."""
