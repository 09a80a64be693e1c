"""Moderation: players report photos; admins read the queue and decide. Thin: the rules are
`photos.moderation`. Blocks are `api.resolvers.blocks`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.errors import BadUserInput, Forbidden, NotFound
from api.schema.common import Connection, connection, page_size, paged
from api.schema.moderation import ModerationCase, ReportReason
from api.schema.photo_moderation import ModerationDecision
from api.schema.photos import Photo
from photos.moderation import MAX_TEXT, NotPhotoOwner, PhotoNotFound, RefusedModeration
from photos.queries import Viewer

PhotoId = Annotated[strawberry.ID, strawberry.argument(description="The photo's id")]


@contextlib.contextmanager
def _moderation_errors() -> Iterator[None]:
    try:
        yield
    except RefusedModeration as exc:
        raise BadUserInput(str(exc), argument=exc.argument) from None
    except PhotoNotFound:
        raise NotFound("no such photo", argument="id") from None
    except NotPhotoOwner:
        raise Forbidden("you cannot report your own photo") from None


async def report_photo(
    info: Info, id: PhotoId,
    reason: Annotated[ReportReason, strawberry.argument(description="What is wrong with it")],
    text: Annotated[str | None, strawberry.argument(
        description=f"Anything the moderators should know, at most {MAX_TEXT} characters")] = None,
) -> bool:
    """Report a photo to the moderators (anyone's but your own: FORBIDDEN). True when recorded, false when
    you had reported it already. Once enough players have reported it, it is hidden until an admin decides."""
    uid = info.context.require_user()
    principal = info.context.principal
    with _moderation_errors():
        return await info.context.services.moderation.report(
            Viewer(uid=uid, admin=principal.admin), str(id), reason.value, text,
            counted=not principal.anonymous_account)


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
    with _moderation_errors():
        doc = await info.context.services.moderation.decide(admin, str(id), decision.value, note)
    return Photo.from_doc(doc)
