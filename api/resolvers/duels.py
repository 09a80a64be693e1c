from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.resolvers.blocks import blocked_owners
from api.resolvers.duel_refusals import duel_refusals
from api.schema.common import Connection, connection, page_size, paged
from api.schema.duel_types import Duel, DuelChoice, LeaderboardPeriod, VoteResult
from api.schema.photos import Photo
from api.throttle import release_ticket
from gaming.duels.promotion import Period
from gaming.ratings import Outcome

ONE_PER_GROUP = ("At most one photo per similarity group (each group's best photo among those listed), so the "
                 "list shows the best of each subject rather than near-duplicates of one")
DUEL_ID = "The duel's `id`, as nextDuel returned it"


async def next_duel(info: Info, category: Annotated[str | None, strawberry.argument(
        description="Only photos of this category (one of `categories`, any case); any category when null")] = None,
                     ) -> Duel | None:
    player = info.context.require_user()
    async with duel_refusals(lambda: release_ticket(info)):
        picked = await info.context.services.duels.next_duel(player, category.strip().lower() if category else None)
    if picked is None:
        await release_ticket(info)
        return None
    return Duel(id=strawberry.ID(picked.id), left=Photo.from_doc(picked.left, blind=True),
                right=Photo.from_doc(picked.right, blind=True), expires_at=picked.ticket.expires_at)


async def vote_duel(info: Info, duel_id: Annotated[strawberry.ID, strawberry.argument(description=DUEL_ID)],
                    choice: Annotated[DuelChoice, strawberry.argument(
                        description="Which photo is better, or DRAW")]) -> VoteResult:
    player = info.context.require_user()
    async with duel_refusals():
        outcome = await info.context.services.duels.vote(str(duel_id), player, Outcome(choice.value),
                                                         anonymous=info.context.principal.anonymous_account)
    if outcome.accepted:
        await release_ticket(info)
    return VoteResult(accepted=outcome.accepted, applied=outcome.applied, left=Photo.from_doc(outcome.left),
                      right=Photo.from_doc(outcome.right))


async def skip_duel(info: Info, duel_id: Annotated[strawberry.ID, strawberry.argument(description=DUEL_ID)]) -> bool:
    player = info.context.require_user()
    async with duel_refusals():
        return await info.context.services.duels.skip(str(duel_id), player)


async def leaderboard(info: Info,
                      category: Annotated[str | None, strawberry.argument(
                          description="One category's photos (any case); all categories when null")] = None,
                      period: Annotated[LeaderboardPeriod | None, strawberry.argument(
                          description="Only photos uploaded in this period; ALL when null")] = None,
                      first: int | None = None, after: str | None = None,
                      one_per_group: Annotated[bool, strawberry.argument(description=ONE_PER_GROUP)] = False,
                      ) -> Connection[Photo]:
    size = page_size(first, info.context.services.settings.max_page_size)
    chosen = Period[period.value] if period is not None else Period.ALL
    with paged():
        page = await info.context.services.promotion.leaderboard(
            category.strip().lower() if category else None, chosen, first=size, after=after,
            excluding_owners=await blocked_owners(info), one_per_group=one_per_group)
    return connection(page, Photo.from_doc)


async def featured_connection(
    info: Info, first: int | None = None, after: str | None = None,
    category: Annotated[str | None, strawberry.argument(description="One category's featured photos; all when null")
                        ] = None,
    one_per_group: Annotated[bool, strawberry.argument(description=ONE_PER_GROUP)] = True,
) -> Connection[Photo]:
    """The best settled photos, best first, a page at a time; by default one per similarity group."""
    return await leaderboard(info, category, None, first, after, one_per_group)


async def featured(info: Info, first: int | None = None,
                   one_per_group: Annotated[bool, strawberry.argument(description=ONE_PER_GROUP)] = True,
                   ) -> list[Photo]:
    size = page_size(first, info.context.services.settings.max_page_size)
    featured = await info.context.services.promotion.featured(first=size, excluding_owners=await blocked_owners(info),
                                                              one_per_group=one_per_group)
    return [Photo.from_doc(d) for d in featured]
