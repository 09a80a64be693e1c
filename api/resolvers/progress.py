"""Thin resolvers for player progress: who may see it, the zone argument, the service's answer shaped."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.errors import BadUserInput, Forbidden
from api.schema.progress import PlayerStats
from gaming.progress import InvalidTimeZone


async def player_stats(info: Info, uid: str) -> PlayerStats:
    """`User.stats`: the user's own, or any user's for an admin."""
    principal = info.context.principal
    if principal.uid != uid and not principal.admin:
        raise Forbidden("only the player sees their own progress")
    return PlayerStats.from_stats(await info.context.services.progress.stats(uid))


async def set_time_zone(info: Info, zone: Annotated[str, strawberry.argument(
        description="An IANA time zone name, e.g. 'Europe/Paris' or 'UTC'")]) -> PlayerStats:
    uid = info.context.require_user()
    try:
        stats = await info.context.services.progress.set_time_zone(uid, zone)
    except InvalidTimeZone as exc:
        raise BadUserInput(str(exc), argument="zone") from None
    return PlayerStats.from_stats(stats)
