"""Series types: a public series round (several photos, pick the best), its result, and a photographer's
private duel between their own photos of one group (their private rank: `api.schema.series_rank`)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.schema.photos import Photo


@strawberry.type(description="Three or more photos side by side, shown without owner or score: which is the "
                             "best? Photos of one subject while its best is not settled, else photos as close "
                             "in level as a duel's. One answer counts as more than one duel vote.")
class SeriesRound:
    id: strawberry.ID = strawberry.field(
        description="The signed round ticket: answer it once, with voteSeriesRound or skipSeriesRound, before "
                    "expiresAt")
    photos: list[Photo] = strawberry.field(description="The photos, in the order to show them")
    expires_at: datetime = strawberry.field(description="When the ticket stops being answerable")


@strawberry.type(description="What a series round's answer did")
class SeriesVoteResult:
    accepted: bool = strawberry.field(description="false when this repeated an answer already counted")
    applied: bool = strawberry.field(
        description="true: photos carry the ratings right after this answer; false: the answer is recorded and "
                    "will be applied shortly, photos show the ratings as they stand")
    photos: list[Photo] = strawberry.field(description="The round's photos, in the order shown")


@strawberry.type(description="Two of your own photos of one similarity group: which is better? A private "
                             "comparison: it ranks your photos for you (Photo.seriesRank) and never changes any "
                             "public rating")
class SeriesDuel:
    id: strawberry.ID = strawberry.field(
        description="The signed ticket: pass it to voteSeriesDuel before expiresAt (one answer)")
    left: Photo = strawberry.field(description="One of the two photos")
    right: Photo = strawberry.field(description="The other photo")
    expires_at: datetime = strawberry.field(description="When the ticket stops being answerable")


@strawberry.type(description="What a private series duel's answer did")
class SeriesDuelResult:
    accepted: bool = strawberry.field(description="false when this repeated a verdict already recorded")
    left: Photo = strawberry.field(description="The duel's left photo (its seriesRank includes this verdict)")
    right: Photo = strawberry.field(description="The duel's right photo")
