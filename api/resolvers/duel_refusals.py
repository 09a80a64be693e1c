"""A duel service's refusals (`gaming.duels.answers.DuelError` and its codes) as the API errors clients act
on: one mapping for every duel, series round and private series resolver."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from api.errors import ApiError
from gaming.duels.service import DuelError


@contextlib.asynccontextmanager
async def duel_refusals(on_refusal: Callable[[], Awaitable[object]] | None = None) -> AsyncIterator[None]:
    """A refusal becomes an ApiError with the refusal's own code (NOT_FOUND, FORBIDDEN, ALREADY_VOTED, ...);
    `on_refusal` runs first (a `nextDuel` refused gives its throttle ticket back)."""
    try:
        yield
    except DuelError as exc:
        if on_refusal is not None:
            await on_refusal()
        raise ApiError(str(exc), code=exc.code) from None
