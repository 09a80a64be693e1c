"""Duel types: the pair shown to a player, the vote result, and the enums."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from api.schema.photos import Photo


@strawberry.enum(description="A player's answer to a duel")
class DuelChoice(Enum):
    _value_: str  # the values are these strings; mypy would type them as enum_value's EnumValueDefinition
    LEFT = strawberry.enum_value("LEFT", description="The left photo is better")
    RIGHT = strawberry.enum_value("RIGHT", description="The right photo is better")
    DRAW = strawberry.enum_value("DRAW", description="Both are equally good")


@strawberry.enum(description="Which photos a leaderboard ranks, by when they were uploaded")
class LeaderboardPeriod(Enum):
    _value_: str  # the values are these strings; mypy would type them as enum_value's EnumValueDefinition
    DAY = strawberry.enum_value("DAY", description="Photos uploaded in the last 24 hours")
    WEEK = strawberry.enum_value("WEEK", description="Photos uploaded in the last 7 days")
    MONTH = strawberry.enum_value("MONTH", description="Photos uploaded in the last 30 days")
    ALL = strawberry.enum_value("ALL", description="All photos, whenever uploaded")


@strawberry.type(description="Two visually similar photos: which is better? Shown without owner or score.")
class Duel:
    id: strawberry.ID = strawberry.field(
        description="The signed duel ticket: pass it to voteDuel or skipDuel before expiresAt (one answer)")
    left: Photo = strawberry.field(description="One photo, shown blind: owner, rating, quality and celebrity are null")
    right: Photo = strawberry.field(
        description="The other photo, shown blind: owner, rating, quality and celebrity are null")
    expires_at: datetime = strawberry.field(
        description="When the ticket lapses (10 minutes after issue by default); voteDuel then answers DUEL_EXPIRED")


@strawberry.type(description="The answer to voteDuel: whether the vote counted, and both photos unblinded")
class VoteResult:
    accepted: bool = strawberry.field(description="false when this repeated a vote already counted")
    applied: bool = strawberry.field(
        description="true: left/right carry the ratings right after this vote; false: the vote is recorded and "
                    "will be applied shortly, left/right show the ratings as they stand")
    left: Photo = strawberry.field(description="The duel's left photo, now with owner and rating")
    right: Photo = strawberry.field(description="The duel's right photo, now with owner and rating")
