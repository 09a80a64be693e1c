"""The Relay `Node` interface: every object a client may cache and fetch again by id alone.

Ids are the stored ones, unchanged (ObjectIds for photos, groups and notifications; Firebase uids for
people): they are already unique across these types, so `node(id:)` finds the type from the id and no
client that kept an id from before this interface has to migrate. See docs/API.md, "Ids and node".
"""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An object with an id that is unique across all types; `node(id:)` fetches it "
                                  "again by that id alone (a client cache's refetch)")
class Node:
    id: strawberry.ID = strawberry.field(description="Unique across every type that implements Node; opaque to "
                                                     "clients (keep it as a string, never parse it)")
