"""Blocks: a player blocks and unblocks users, and every list the player reads leaves their photos out
(`blocked_owners`). Thin: the rules are `accounts.blocks`. Apart from the moderation resolvers because the
schema's list fields import `blocked_owners`, and those resolvers import the schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import strawberry
from strawberry.types import Info

from accounts.blocks import BlockLimitReached, CannotBlockSelf, UnknownUser
from api.errors import BadUserInput, NotFound

UserId = Annotated[strawberry.ID, strawberry.argument(description="The user's id (`PublicProfile.id`, e.g. a "
                                                                  "photo's `owner.id`)")]


async def blocked_owners(info: Info) -> list[str]:
    """The signed-in viewer's blocked users, whose photos the lists leave out (read once per request)."""
    uid = info.context.principal.uid
    if uid is None:
        return []
    return await info.context.loaders.blocked.load(uid)


@contextlib.contextmanager
def _block_errors() -> Iterator[None]:
    try:
        yield
    except CannotBlockSelf as exc:
        raise BadUserInput(str(exc), argument="id") from None
    except UnknownUser:
        raise NotFound("no such user", argument="id") from None
    except BlockLimitReached as exc:
        raise BadUserInput(f"you have blocked the most users you can ({exc}): unblock someone first",
                           argument="id") from None


async def block_user(info: Info, id: UserId) -> bool:
    """Never see this user's photos again in your duels or lists (they are not told). True when newly
    blocked, false when already; yourself: BAD_USER_INPUT; an unknown user: NOT_FOUND."""
    uid = info.context.require_user()
    with _block_errors():
        return await info.context.services.blocks.block(uid, str(id))


async def unblock_user(info: Info, id: UserId) -> bool:
    """See this user's photos again. True when they were blocked; an unknown user: NOT_FOUND."""
    uid = info.context.require_user()
    with _block_errors():
        return await info.context.services.blocks.unblock(uid, str(id))
