"""Moderation: players report photos; admins read the queue and decide. Thin: the rules are
`photos.moderation`. Blocks are `api.resolvers.blocks`."""

from __future__ import annotations

import contextlib
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.resolvers.photo_refusals import photo_refusals
from api.schema.common import Connection, connection, page_size, paged
from api.schema.moderation import ModerationCase, ReportReason
from api.schema.photo_moderation import ModerationDecision
from api.schema.photos import Photo
from photos.moderation import MAX_TEXT, RefusedModeration

PhotoId = Annotated[strawberry.ID, strawberry.argument(description="The photo's id")]


def _moderation_refusals() -> contextlib.AbstractContextManager[None]:
    return photo_refusals("you cannot report your own photo", RefusedModeration)


async def report_photo(
    info: Info, id: PhotoId,
    reason: Annotated[ReportReason, strawberry.argument(description="What is wrong with it")],
    text: Annotated[str | None, strawberry.argument(
        description=f"Anything the moderators should know, at most {MAX_TEXT} characters")] = None,
) -> bool:
    """Report a photo to the moderators (anyone's but your own: FORBIDDEN). True when recorded, false when
    you had reported it already. Once enough players have reported it, it is hidden until an admin decides."""
    with _moderation_refusals():
        return await info.context.services.moderation.report(
            info.context.require_viewer(), str(id), reason.value, text,
            counted=not info.context.principal.anonymous_account)


async def moderation_queue(
    info: Info, first: Annotated[int | None, strawberry.argument(description="Page size (at most 100)")] = None,
    after: Annotated[str | None, strawberry.argument(description="The endCursor of the page before")] = None,
) -> Connection[ModerationCase]:
    """Admin: photos held back pending review, the longest waiting first, with why and how many reported them."""
    size = page_size(first, info.context.services.settings.max_page_size)
    with paged():
        page, cases = await info.context.services.moderation.queue(first=size, after=after)
    by_id = {case.photo["_id"]: ModerationCase.from_case(case) for case in cases}
    return connection(page, lambda doc: by_id[doc["_id"]])


async def moderate_photo(
    info: Info, id: PhotoId,
    decision: Annotated[ModerationDecision, strawberry.argument(description="APPROVE or REJECT")],
    note: Annotated[str | None, strawberry.argument(
        description=f"Why, at most {MAX_TEXT} characters: kept with the decision and sent to the owner")] = None,
) -> Photo:
    """Admin: APPROVE (visible again; the reports that hid it never count again) or REJECT (hidden for good)
    a photo; recorded with who and when, and its owner is told. The same decision again changes nothing."""
    admin = info.context.require_user()  # IsAdmin on the field checked the rights
    with _moderation_refusals():
        doc = await info.context.services.moderation.decide(admin, str(id), decision.value, note)
    return Photo.from_doc(doc)
