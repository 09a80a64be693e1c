"""Duel types: the pair shown to a player, the vote result, and the enums."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from api.schema.photos import Photo


@strawberry.enum
class DuelChoice(Enum):
    LEFT = "LEFT"
    RIGHT = "RIGHT"
    DRAW = "DRAW"


@strawberry.enum
class LeaderboardPeriod(Enum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    ALL = "ALL"


@strawberry.type(description="Two visually similar photos: which is better? Shown without owner or score.")
class Duel:
    id: strawberry.ID = strawberry.field(
        description="The signed duel ticket: pass it to voteDuel or skipDuel before expiresAt (one answer)")
    left: Photo
    right: Photo
    expires_at: datetime


@strawberry.type
class VoteResult:
    accepted: bool = strawberry.field(description="false when this repeated a vote already counted")
    applied: bool = strawberry.field(
        description="true: left/right carry the ratings right after this vote; false: the vote is recorded and "
                    "will be applied shortly, left/right show the ratings as they stand")
    left: Photo
    right: Photo
