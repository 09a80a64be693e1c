"""Rate limits at the API's edges: a field extension that checks before a resolver runs, and the per-IP
limit on whole HTTP requests (429 with Retry-After) before anything is parsed.

The limits themselves, and the buckets shared by every process, are in accounts/rate_limits.py.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import FieldExtension
from strawberry.extensions.field_extension import AsyncExtensionResolver
from strawberry.types import Info

from accounts.rate_limits import Action, RateLimiter, RateLimitExceeded, ip_subject, user_subject
from api.errors import RateLimited, is_unavailable

log = structlog.get_logger(__name__)

# The per-IP check's own deadline: far above its usual milliseconds, and short, because a database too
# slow for it lets the request through (it is not refused for the limiter's sake).
IP_CHECK_DEADLINE_SECONDS = 1.0

# The probes an orchestrator sends every few seconds from one address: never limited.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})


def client_address(scope_or_request: Any) -> str:
    client = getattr(scope_or_request, "client", None)
    if client is None and isinstance(scope_or_request, dict):
        client = scope_or_request.get("client")
    return str(client[0]) if client else "unknown"


def rate_limited(exc: RateLimitExceeded) -> RateLimited:
    return RateLimited(str(exc), retryAfter=exc.retry_after, limit=exc.limit)


class Throttle(FieldExtension):
    """Takes one of each `action` from the caller's buckets before the resolver runs; refused, the field
    is a RATE_LIMITED error with `retryAfter` and nothing of the resolver ran. Placed after the permission
    classes (which strawberry runs first), so an anonymous caller of a signed-in field is told to sign in
    and costs no token."""

    def __init__(self, *actions: Action) -> None:
        super().__init__()
        self.actions = actions

    async def resolve_async(self, next_: AsyncExtensionResolver, source: Any, info: Info, **kwargs: Any) -> Any:
        context = info.context
        uid = context.principal.uid
        subject = user_subject(uid) if uid is not None else ip_subject(client_address(context.request))
        limiter: RateLimiter = context.services.rate_limits
        try:
            await limiter.take_all(self.actions, subject)
        except RateLimitExceeded as exc:
            raise rate_limited(exc) from None
        return await next_(source, info, **kwargs)


async def release_ticket(info: Info) -> None:
    """An accepted vote frees its open ticket at once, as does a `nextDuel` that found no pair. Best
    effort: the work is done by now, and a token not given back comes back with time anyway."""
    uid = info.context.principal.uid
    if uid is None:
        return
    try:
        await info.context.services.rate_limits.give_back(Action.OPEN_TICKET, user_subject(uid))
    except Exception as exc:
        log.warning("rate_limits.give_back_failed", error=f"{type(exc).__name__}: {exc}")


class IpRateLimitMiddleware:
    """Every HTTP request but the health probes takes a token from its client address's bucket; refused,
    the request gets 429 with Retry-After and a GraphQL-shaped body, before auth or parsing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter = scope["app"].state.services.rate_limits
        try:
            await limiter.take(Action.REQUEST, ip_subject(client_address(scope)),
                               deadline_seconds=IP_CHECK_DEADLINE_SECONDS)
        except RateLimitExceeded as exc:
            error = rate_limited(exc)
            body = json.dumps({"data": None, "errors": [{"message": error.message,
                                                         "extensions": error.extensions}]}).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(exc.retry_after).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # Unchecked rather than refused: the request meets the same database and answers for itself
            # (a field's UNAVAILABLE, a 503), as it would without this limit.
            log.warning("rate_limits.unchecked", path=scope.get("path"), error=f"{type(exc).__name__}: {exc}")
        await self.app(scope, receive, send)
