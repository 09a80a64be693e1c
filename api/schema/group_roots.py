"""Similarity groups on the root types."""

from __future__ import annotations

import strawberry

from api.resolvers import groups as resolvers
from api.schema.common import Connection
from api.schema.photos import PhotoGroup


@strawberry.type
class GroupQuery:
    groups: Connection[PhotoGroup] = strawberry.field(
        resolver=resolvers.groups,
        description="Similarity groups (one subject each) with a READY photo, optionally of a category (their "
                    "best photo's), best first: ordered by the best photo's conservative skill as of the last "
                    "summary, which follows the ratings within PHOTODUEL_MAINTENANCE_SECONDS",
    )
