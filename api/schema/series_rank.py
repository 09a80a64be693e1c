"""A photo's place in its owner's private series (`Photo.seriesRank`): its own module, since Photo refers
to it and it refers to nothing."""

from __future__ import annotations

import strawberry


@strawberry.type(description="Where a photo stands among its owner's photos of its similarity group, by the "
                             "owner's own private comparisons (nextSeriesDuel); the model's quality score "
                             "orders them before any comparison")
class SeriesRank:
    rank: int = strawberry.field(description="1 for the owner's best photo of the group")
    size: int = strawberry.field(description="How many READY photos the owner has in the group")
    votes: int = strawberry.field(description="The owner's private comparisons this photo was in")
