"""Series rounds and the photographer's private series: parse the ids, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

import strawberry
from bson import ObjectId
from strawberry.types import Info

from api.errors import BadUserInput, NotFound
from api.resolvers.duel_refusals import duel_refusals
from api.schema.common import capped
from api.schema.duel_types import DuelChoice
from api.schema.photos import Photo
from api.schema.series import SeriesDuel, SeriesDuelResult, SeriesRound, SeriesVoteResult
from api.throttle import release_ticket
from gaming.ratings import Outcome
from gaming.series import MAX_SERIES
from storage.base import parse_object_id


def _photo_id(raw: strawberry.ID, argument: str) -> ObjectId:
    oid = parse_object_id(str(raw))
    if oid is None:
        raise BadUserInput(f"{argument} is not a photo id", argument=argument)
    return oid


ROUND_ID = strawberry.argument(description="The round's id (SeriesRound.id)")


async def next_series_round(
    info: Info,
    category: Annotated[str | None, strawberry.argument(description="Only photos of this category")] = None,
) -> SeriesRound | None:
    player = info.context.require_user()
    async with duel_refusals(lambda: release_ticket(info)):
        issued = await info.context.services.series_rounds.next_round(
            player, category.strip().lower() if category else None)
    if issued is None:
        await release_ticket(info)
        return None
    return SeriesRound(id=strawberry.ID(issued.id), photos=[Photo.from_doc(p, blind=True) for p in issued.photos],
                       expires_at=issued.ticket.expires_at)


async def vote_series_round(
    info: Info, round_id: Annotated[strawberry.ID, ROUND_ID],
    best: Annotated[strawberry.ID, strawberry.argument(description="The photo picked as the best")],
    order: Annotated[list[strawberry.ID] | None, strawberry.argument(
        description="Optionally every photo of the round, best first: a full order says more than a pick. It "
                    "must start with `best`")] = None,
) -> SeriesVoteResult:
    player = info.context.require_user()
    ranked = [_photo_id(p, "order") for p in capped(order, "order", MAX_SERIES)] if order else None
    async with duel_refusals():
        outcome = await info.context.services.series_rounds.vote(
            str(round_id), player, _photo_id(best, "best"), ranked, anonymous=info.context.principal.anonymous_account)
    if outcome.accepted:
        await release_ticket(info)
    return SeriesVoteResult(accepted=outcome.accepted, applied=outcome.applied,
                            photos=[Photo.from_doc(p) for p in outcome.photos])


async def skip_series_round(info: Info, round_id: Annotated[strawberry.ID, ROUND_ID]) -> bool:
    player = info.context.require_user()
    async with duel_refusals():
        return await info.context.services.series_rounds.skip(str(round_id), player)


async def next_series_duel(
    info: Info,
    group_id: Annotated[strawberry.ID, strawberry.argument(description="A similarity group you have photos in")],
) -> SeriesDuel | None:
    owner = info.context.require_user()
    group = parse_object_id(str(group_id))
    if group is None:
        raise NotFound("no such group", argument="groupId")
    async with duel_refusals():
        issued = await info.context.services.private_series.next_duel(owner, group)
    if issued is None:
        return None
    return SeriesDuel(id=strawberry.ID(issued.id), left=Photo.from_doc(issued.left, blind=True),
                      right=Photo.from_doc(issued.right, blind=True), expires_at=issued.ticket.expires_at)


async def vote_series_duel(
    info: Info,
    duel_id: Annotated[strawberry.ID, strawberry.argument(description="The series duel's id (SeriesDuel.id)")],
    choice: Annotated[DuelChoice, strawberry.argument(description="The better photo, or DRAW")],
) -> SeriesDuelResult:
    owner = info.context.require_user()
    async with duel_refusals():
        outcome = await info.context.services.private_series.vote(str(duel_id), owner, Outcome(choice.value))
    return SeriesDuelResult(accepted=outcome.accepted, left=Photo.from_doc(outcome.left),
                            right=Photo.from_doc(outcome.right))
