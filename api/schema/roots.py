"""Root types. Each domain module contributes its own Query/Mutation/Subscription part; merged here.

To add a domain: define `@strawberry.type class XQuery` (and/or XMutation, XSubscription) in its own
module under api/schema/ and add it to the tuples below.
"""

from __future__ import annotations

from strawberry.tools import merge_types

from api.schema.celebrity_roots import CelebrityMutation, CelebrityQuery
from api.schema.deletion_roots import DeletionMutation
from api.schema.duels import DuelMutation, DuelQuery
from api.schema.group_roots import GroupQuery
from api.schema.moderation_roots import ModerationMutation, ModerationQuery
from api.schema.node_roots import NodeQuery
from api.schema.notification_roots import NotificationMutation, NotificationQuery, NotificationSubscription
from api.schema.photo_roots import PhotoMutation, PhotoQuery
from api.schema.progress_roots import ProgressMutation
from api.schema.series_roots import SeriesMutation, SeriesQuery
from api.schema.user_roots import UserMutation, UserQuery

Query = merge_types("Query", (UserQuery, PhotoQuery, DuelQuery, NotificationQuery, CelebrityQuery,
                             ModerationQuery, GroupQuery, NodeQuery, SeriesQuery))
Mutation = merge_types("Mutation", (UserMutation, PhotoMutation, DuelMutation, NotificationMutation, CelebrityMutation,
                                   ProgressMutation, ModerationMutation, DeletionMutation, SeriesMutation))
SUBSCRIPTIONS: tuple[type, ...] = (NotificationSubscription,)
Subscription = merge_types("Subscription", SUBSCRIPTIONS) if SUBSCRIPTIONS else None
