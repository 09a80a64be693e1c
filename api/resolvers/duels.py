from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.errors import ApiError
from api.schema.common import Connection, connection, page_size, paged
from api.schema.duel_types import Duel, DuelChoice, LeaderboardPeriod, VoteResult
from api.schema.photos import Photo
from api.throttle import release_ticket
from gaming.duels.promotion import Period
from gaming.duels.service import DuelError
from gaming.ratings import Outcome


async def next_duel(info: Info, category: str | None = None) -> Duel | None:
    player = info.context.require_user()
    try:
        picked = await info.context.services.duels.next_duel(player, category.strip().lower() if category else None)
    except DuelError as exc:
        await release_ticket(info)
        raise ApiError(str(exc), code=exc.code) from None
    if picked is None:
        await release_ticket(info)
        return None
    return Duel(id=strawberry.ID(picked.id), left=Photo.from_doc(picked.left, blind=True),
                right=Photo.from_doc(picked.right, blind=True), expires_at=picked.ticket.expires_at)


async def vote_duel(info: Info, duel_id: strawberry.ID, choice: DuelChoice) -> VoteResult:
    player = info.context.require_user()
    try:
        outcome = await info.context.services.duels.vote(str(duel_id), player, Outcome(choice.value),
                                                         anonymous=info.context.principal.anonymous_account)
    except DuelError as exc:
        raise ApiError(str(exc), code=exc.code) from None
    if outcome.accepted:
        await release_ticket(info)
    return VoteResult(accepted=outcome.accepted, applied=outcome.applied, left=Photo.from_doc(outcome.left),
                      right=Photo.from_doc(outcome.right))


async def skip_duel(info: Info, duel_id: strawberry.ID) -> bool:
    player = info.context.require_user()
    try:
        return await info.context.services.duels.skip(str(duel_id), player)
    except DuelError as exc:
        raise ApiError(str(exc), code=exc.code) from None


async def leaderboard(info: Info, category: str | None = None, period: LeaderboardPeriod | None = None,
                      first: int | None = None, after: str | None = None) -> Connection[Photo]:
    size = page_size(first, info.context.services.settings.max_page_size)
    chosen = Period[period.value] if period is not None else Period.ALL
    with paged():
        page = await info.context.services.promotion.leaderboard(
            category.strip().lower() if category else None, chosen, first=size, after=after)
    return connection(page, Photo.from_doc)


async def featured(info: Info, first: int | None = None) -> list[Photo]:
    size = page_size(first, info.context.services.settings.max_page_size)
    return [Photo.from_doc(d) for d in await info.context.services.promotion.featured(first=size)]
