"""`node(id:)` and `nodes(ids:)` on the root Query: a client cache refetches any Node by id alone."""

from __future__ import annotations

import strawberry

from api.resolvers import nodes as resolvers
from api.schema.node import Node


@strawberry.type
class NodeQuery:
    node: Node | None = strawberry.field(
        resolver=resolvers.node,
        description="The object with this id, whatever its type; null when unknown or not visible to the caller",
    )
    nodes: list[Node | None] = strawberry.field(
        resolver=resolvers.nodes,
        description="The objects with these ids, in the same order, null for each unknown or not visible; at most "
                    "100 ids",
    )
